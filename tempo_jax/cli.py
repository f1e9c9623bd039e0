"""`tempo-jax train | eval | demo | convert | plot | plan` — the command-line entry point."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from tempo_jax.errors import UserError
from tempo_jax.sampling import ENGINES

# This module is the __main__ of every process `tempo-jax` starts, and multiprocessing's
# forkserver/spawn children (the grading pool's workers) import __main__ again: at module level it
# imports only the standard library, and each command imports what it runs (jax, models, data).


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    from tempo_jax.train.config import load_config
    from tempo_jax.train.loop import Trainer

    cfg = load_config(args.config, overrides)
    result = Trainer(cfg, resume=args.resume).run()
    print(f"run directory: {result['run_dir']}")
    if result["stopped_by"]:
        print(f"stopped by {result['stopped_by']} after saving a checkpoint; continue with --resume")
    return 0


def _eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from tempo_jax.eval.model_eval import eval_main, evaluate_model
    from tempo_jax.models.tokenizer import load_tokenizer
    from tempo_jax.train.config import load_config
    from tempo_jax.train.periodic_eval import eval_datasets, recipe_eval_settings
    from tempo_jax.train.run_files import load_from_run, read_run_config
    from tempo_jax.train.stream import run_template

    settings = dict(
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        limit=args.limit or None,
        data_dir=args.data_dir or None,
        template=args.template,
        seed=args.seed,
        engine=args.engine,
        decode_slots=args.decode_slots,
    )
    datasets = args.datasets
    if args.config:  # the recipe supplies datasets, sampling length, template and run directory
        cfg = load_config(args.config, overrides)
        datasets = datasets or ",".join(eval_datasets(cfg))
        settings.update(recipe_eval_settings(cfg))
        if not (args.hf or args.checkpoint):
            args.checkpoint = cfg.run_dir
    names = [d for d in (datasets or "aime24").split(",") if d]
    if args.checkpoint and not args.config and args.template is None:  # prompt as the run was trained
        run_cfg = read_run_config(args.checkpoint)
        settings.update(template=run_template(run_cfg), max_prompt_tokens=run_cfg.data.max_prompt_tokens)
    settings["template"] = settings["template"] or "auto"
    if not (args.checkpoint or args.hf):
        raise SystemExit("tempo-jax eval: give --hf DIR, --checkpoint RUN_DIR or --config RECIPE")
    mesh = _eval_mesh(args.mesh)
    if args.checkpoint:
        actor, critic = load_from_run(args.checkpoint, need_critic=True, mesh=mesh, critic_if_missing=False)
        tokenizer = load_tokenizer(args.tokenizer or os.path.join(args.checkpoint, "tokenizer"))
        evaluate_model(actor, tokenizer, names, out_dir=args.out, critic=critic, mesh=mesh, **settings)
    else:
        critic_dir, tokenizer_path = args.critic or None, args.tokenizer or None
        eval_main(args.hf, names, args.out, critic_dir=critic_dir, tokenizer_path=tokenizer_path, mesh=mesh, **settings)
    print(f"results: {os.path.join(args.out, 'results.md')}")
    return 0


def _eval_mesh(shape: tuple[int, ...] | None):
    """The mesh of ``eval --mesh``, after joining a multi-host job as ``train`` does (``init_distributed``:
    TEMPO_JAX_COORDINATOR ... or a TPU pod; a no-op on one host). ``None``: one device, no mesh."""
    import jax

    from tempo_jax.parallel.distributed import init_distributed
    from tempo_jax.parallel.mesh import make_mesh, resolve_shape, suggest_shapes

    init_distributed()
    if shape is None:
        if jax.device_count() > 1:
            logging.getLogger(__name__).warning(
                "evaluating on one of %d devices; --mesh auto (or DATA,FSDP,TENSOR, e.g. %s) uses them all",
                jax.device_count(),
                ",".join(map(str, suggest_shapes(jax.device_count())[0])),
            )
        return None
    return make_mesh(resolve_shape(shape, jax.device_count(), "--mesh"))


def _convert(args: argparse.Namespace, overrides: list[str]) -> int:
    from tempo_jax.models.hf_io import from_hf, to_hf

    model = from_hf(args.src, critic=args.critic)
    to_hf(model, args.dst)
    print(f"wrote {args.dst}")
    return 0


def _demo(args: argparse.Namespace, overrides: list[str]) -> int:
    from tempo_jax.demo import run_demo

    run_demo(
        out_dir=args.out,
        quick=args.quick,
        overrides=overrides,
        seed=args.seed,
        seeds=args.seeds,
        diagnose_only=args.diagnose,
    )
    return 0


def _plot(args: argparse.Namespace, overrides: list[str]) -> int:
    from tempo_jax.eval.plots import plot_run

    paths = plot_run(args.run_dir, args.out or None)
    if not paths:
        raise UserError(
            f"{args.run_dir}: its metrics hold no periodic evaluation (eval/<dataset>/avg@16, pass@8) "
            "and no critic AUROC to plot; train with eval.test_freq > 0"
        )
    for path in paths:
        print(f"wrote {path}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _mesh_shape(text: str) -> tuple[int, ...]:
    """``--mesh DATA,FSDP,TENSOR`` (one entry may be -1: the remaining devices) or ``auto`` (= 1,-1,1)."""
    if text.strip().lower() == "auto":
        return (1, -1, 1)
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3:
        raise argparse.ArgumentTypeError(f"{text!r}: give DATA,FSDP,TENSOR (three whole numbers, e.g. 1,4,2) or auto")
    return shape


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tempo-jax", description=__doc__)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log progress and show the traceback of an error (anywhere on the line)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train",
        help="train with a recipe: tempo-jax train --config=configs/<file>.py[:<config "
        "string>] [--config.section.key=value ...] [--resume]",
    )
    p.add_argument(
        "--config",
        required=True,
        help="a recipe file, with its config string after a colon (ml_collections config_flags style): "
        "configs/paper.py:<model>,<method> or configs/tiny.py:<method>",
    )
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of run_dir")
    p.set_defaults(fn=_train)

    p = sub.add_parser("eval", help="avg@n / pass@k evaluation of a HF checkpoint or a run directory")
    p.add_argument("--hf", default="", help="HF directory of the actor")
    p.add_argument("--checkpoint", default="", help="a tempo-jax run directory (its latest checkpoint)")
    p.add_argument("--config", default="", help="a recipe: datasets, lengths, template and run directory")
    p.add_argument("--critic", default="", help="optional HF directory of a critic (adds calibration metrics)")
    p.add_argument("--datasets", default="", help="comma-separated names or files (default: aime24)")
    p.add_argument("--out", default="runs/eval", help="output directory (default: %(default)s)")
    p.add_argument("--n", type=int, default=16, help="samples per question (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="per sample (default: %(default)s)")
    p.add_argument("--limit", type=int, default=0, help="first N questions of each dataset (default: all)")
    p.add_argument(
        "--data-dir", default="", help="where named datasets live (default: $TEMPO_JAX_DATA_DIR or ../shared/data)"
    )
    p.add_argument(
        "--template", default=None, help="prompt template (default: the run's own with --checkpoint, else auto)"
    )
    p.add_argument("--tokenizer", default="", help="tokenizer directory (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="static",
        help="rollout engine: static batches, or continuous batching over --decode-slots slots refilled as "
        "rows stop (same samples) (default: %(default)s; with --config, the recipe's rollout.engine)",
    )
    p.add_argument(
        "--decode-slots",
        type=int,
        default=0,
        help="the continuous engine's decode slots (default: %(default)s = a quarter of the rows per call)",
    )
    p.add_argument(
        "--mesh",
        type=_mesh_shape,
        default=None,
        metavar="DATA,FSDP,TENSOR",
        help="shard the models over a device mesh, e.g. 1,4,2 (the product must be the device count of the "
        "whole job; one entry may be -1), or auto: every device on fsdp; with several processes, run the same "
        "command on each (TEMPO_JAX_COORDINATOR ..., as for train) (default: one device, no mesh)",
    )
    p.set_defaults(fn=_eval)

    p = sub.add_parser("convert", help="load a HF checkpoint and write it back (validates the mapping)")
    p.add_argument("src", help="HF checkpoint directory")
    p.add_argument("dst", help="where to write the copy")
    p.add_argument("--critic", action="store_true", help="the checkpoint is a critic (scalar value head)")
    p.set_defaults(fn=_convert)

    p = sub.add_parser("demo", help="the CPU demo: TEMPO vs baselines on a synthetic task")
    p.add_argument("--out", default="runs/demo", help="output directory (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="a CI-sized version (minutes)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of everything random: task data, model init, SFT order, sampling (default: %(default)s)",
    )
    p.add_argument(
        "--seeds",
        type=_positive_int,
        default=1,
        help="run seeds SEED .. SEED+K-1 and report means with paired standard errors (default: %(default)s)",
    )
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="stages 0-1 only: can the critic rank answers better than majority voting?",
    )
    p.set_defaults(fn=_demo)

    p = sub.add_parser("plot", help="accuracy_vs_step.png and critic_auroc.png of a run directory")
    p.add_argument("run_dir", help="a tempo-jax run directory (its metrics.jsonl)")
    p.add_argument("--out", default="", help="where to write the PNGs (default: the run directory)")
    p.set_defaults(fn=_plot)

    # `plan` parses its own options (see main); listed here so that --help shows it
    sub.add_parser(
        "plan",
        add_help=False,
        help="compile a recipe for a TPU slice on this CPU and report memory: "
        "tempo-jax plan --config <recipe> --topology v5p-64",
    )
    return parser


def enable_compilation_cache() -> None:
    """Reuse XLA executables across runs (the demo and recipes compile the same programs often).
    ``TEMPO_JAX_COMPILATION_CACHE`` picks the directory (default ``~/.cache/tempo_jax/xla``);
    ``off`` disables it. An explicit ``JAX_COMPILATION_CACHE_DIR`` wins.
    """
    where = os.environ.get("TEMPO_JAX_COMPILATION_CACHE", os.path.expanduser("~/.cache/tempo_jax/xla"))
    if where == "off" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return

    import jax

    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


VERBOSE_FLAGS = ("-v", "--verbose")


def error_line(err: BaseException) -> str:
    """One line for the user: the message of a :class:`UserError` or a file-system error as is,
    anything else prefixed by its type (it is likely a bug) with a pointer to ``-v``."""
    text = err.args[0] if len(err.args) == 1 and isinstance(err.args[0], str) else str(err)
    if isinstance(err, (UserError, OSError)):
        return f"tempo-jax: error: {text or type(err).__name__}"
    return f"tempo-jax: error: {type(err).__name__}: {text} (run with -v for the traceback)"


def main(argv: list[str] | None = None) -> int:
    """Run a command; an error ends it with one line on stderr and exit status 1 (``-v``: traceback too)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in VERBOSE_FLAGS for a in argv)
    try:
        return _dispatch([a for a in argv if a not in VERBOSE_FLAGS], verbose)
    except Exception as err:  # the CLI's one place that turns errors into messages
        if verbose:
            traceback.print_exc()
        print(error_line(err), file=sys.stderr)
        return 1


def _dispatch(argv: list[str], verbose: bool) -> int:
    if argv[:1] == ["plan"]:  # `tempo-jax plan --config <recipe> --topology <name>` has its own options
        from tempo_jax.plan.planner import plan_main

        return plan_main(argv[1:])
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    overrides = [a for a in rest if a.startswith("--config.")]
    unknown = [a for a in rest if not a.startswith("--config.")]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from tempo_jax.parallel.platforms import skip_absent_tpu

    skip_absent_tpu()
    enable_compilation_cache()
    return args.fn(args, overrides)


if __name__ == "__main__":
    sys.exit(main())
