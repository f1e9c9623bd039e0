"""Small, fast fixtures (a character tokenizer, a tiny random model, toy data) for tests and smoke runs."""
