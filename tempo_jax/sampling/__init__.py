ENGINES = ("static", "continuous")  # generate(engine=...): kept here, free of jax, for the CLI
