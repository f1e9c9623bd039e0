"""The command line: convert, eval and train entry points on the tiny assets (in-process)."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tempo_jax.cli import main
from tempo_jax.models.safetensors_io import SafetensorsFile
from tempo_jax.train.tiny import ensure_tiny_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return ensure_tiny_assets(str(tmp_path_factory.mktemp("cli_assets")))


def test_convert_round_trips_the_checkpoint(assets, tmp_path):
    out = tmp_path / "copy"
    assert main(["convert", assets["model"], str(out)]) == 0
    a = SafetensorsFile(os.path.join(assets["model"], "model.safetensors"))
    b = SafetensorsFile(out / "model.safetensors")
    assert sorted(a.keys()) == sorted(b.keys())
    for k in a.keys():
        np.testing.assert_array_equal(a.get(k), b.get(k))


def test_eval_writes_table_and_samples(assets, tmp_path):
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            "--hf",
            assets["model"],
            "--datasets",
            assets["unlabeled"],
            "--out",
            str(out),
            "--n",
            "2",
            "--max-new-tokens",
            "8",
            "--template",
            "plain",
            "--limit",
            "3",
        ]
    )
    assert code == 0
    table = (out / "results.md").read_text()
    assert "avg@2" in table
    samples = [json.loads(ln) for ln in (out / "unlabeled_samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6
    assert {"question_id", "response", "extracted", "correct", "length", "finish_reason"} <= set(samples[0])
    assert [s["question_id"] for s in samples] == ["toy-100", "toy-100", "toy-101", "toy-101", "toy-102", "toy-102"]


def _eval_args(model: str, data: str, out, *extra: str) -> list[str]:
    """A small `tempo-jax eval` of the tiny model: 4 questions x 2 samples = 8 rows (a multiple of data x fsdp)."""
    return ["eval", "--hf", model, "--datasets", data, "--out", str(out), "--n", "2", "--max-new-tokens", "8"] + [
        "--template",
        "plain",
        "--limit",
        "4",
        *extra,
    ]


def _eval_outputs(out) -> tuple[list, dict]:
    """(the samples, the metrics) of an evaluation of the unlabeled toy set, without timings."""
    samples = [json.loads(ln) for ln in (out / "unlabeled_samples.jsonl").read_text().splitlines()]
    metrics = json.loads((out / "results.json").read_text())["datasets"]["unlabeled"]["metrics"]
    return samples, metrics


@pytest.fixture(scope="module")
def one_device_eval(assets, tmp_path_factory):
    """The reference: the tiny model evaluated on one device (no --mesh)."""
    out = tmp_path_factory.mktemp("eval_one_device")
    assert main(_eval_args(assets["model"], assets["unlabeled"], out)) == 0
    return _eval_outputs(out)


@pytest.mark.parametrize("mesh", ["2,2,2", "auto"])
def test_eval_on_a_mesh_matches_one_device(assets, one_device_eval, mesh, tmp_path):
    import jax

    assert jax.device_count() == 8  # tests/conftest.py: 8 fake CPU devices
    assert main(_eval_args(assets["model"], assets["unlabeled"], tmp_path, "--mesh", mesh)) == 0
    samples, metrics = _eval_outputs(tmp_path)
    want_samples, want_metrics = one_device_eval
    assert len(samples) == 8
    assert [(s["response"], s["length"]) for s in samples] == [(s["response"], s["length"]) for s in want_samples]
    assert metrics == want_metrics


def test_eval_mesh_must_cover_every_device(assets, tmp_path, capsys):
    assert main(_eval_args(assets["model"], assets["unlabeled"], tmp_path, "--mesh", "1,2,2")) == 1
    err = capsys.readouterr().err
    assert err.startswith("tempo-jax: error: --mesh=(1, 2, 2) uses 4 devices but 8 are available"), err
    assert len(err.strip().splitlines()) == 1
    for bad in ("1,2", "a,b,c"):
        with pytest.raises(SystemExit) as exc:
            main(_eval_args(assets["model"], assets["unlabeled"], tmp_path, "--mesh", bad))
        assert exc.value.code == 2
        assert "DATA,FSDP,TENSOR" in capsys.readouterr().err


def test_eval_as_two_processes_matches_one_device(assets, one_device_eval, tmp_path):
    """A `jax.distributed` job of 2 local processes x 2 CPU devices started as train is (TEMPO_JAX_COORDINATOR
    ...), mesh 2,2,1 (the data axis spans the processes): process 0 alone writes the one-device results."""
    from tempo_jax.testing.multiprocess import describe, run_local_job

    out = tmp_path / "eval"
    args = _eval_args(assets["model"], assets["unlabeled"], out, "--mesh", "2,2,1")
    results = run_local_job("tempo_jax.cli", args, tmp_path / "logs", timeout_s=240, via_env=True)
    assert all(r.returncode == 0 for r in results), describe(results)
    samples, metrics = _eval_outputs(out)
    want_samples, want_metrics = one_device_eval
    assert [(s["response"], s["length"]) for s in samples] == [(s["response"], s["length"]) for s in want_samples]
    assert metrics == want_metrics


def test_train_rejects_unknown_override_in_one_line(capsys):
    config = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "tiny.py") + ":tempo"
    assert main(["train", "--config", config, "--config.train.not_a_key=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tempo-jax: error: unknown config key 'train.not_a_key'; known keys here:")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unexpected_errors_name_their_type_and_point_to_v(tmp_path, capsys):
    from tempo_jax.cli import error_line

    assert error_line(ZeroDivisionError("division by zero")) == (
        "tempo-jax: error: ZeroDivisionError: division by zero (run with -v for the traceback)"
    )
    assert error_line(IsADirectoryError(21, "Is a directory", str(tmp_path))) == (
        f"tempo-jax: error: [Errno 21] Is a directory: '{tmp_path}'"
    )


def test_eval_from_a_run_checkpoint_via_its_recipe(assets, tmp_path):
    from tempo_jax.train.loop import Trainer
    from tempo_jax.train.tiny import tiny_recipe

    cfg = tiny_recipe(
        "tempo",
        assets,
        run_dir=str(tmp_path / "run"),
        train__total_steps=1,
        log__tensorboard=False,
        checkpoint__async_save=False,
        grader__workers=1,
    )
    Trainer(cfg).run()
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            "--checkpoint",
            cfg.run_dir,
            "--datasets",
            assets["unlabeled"],
            "--out",
            str(out),
            "--n",
            "2",
            "--max-new-tokens",
            "8",
            "--limit",
            "2",
        ]
    )  # the run's own template and lengths
    assert code == 0
    assert "critic" in (out / "unlabeled_summary.json").read_text()
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["template"] == "plain" and settings["max_prompt_tokens"] == cfg.data.max_prompt_tokens

    # the run's actor and critic restored straight onto a mesh: the same samples and critic values
    on_mesh = tmp_path / "eval_on_mesh"
    args = ["eval", "--checkpoint", cfg.run_dir, "--datasets", assets["unlabeled"], "--out", str(on_mesh)]
    assert main([*args, "--n", "2", "--max-new-tokens", "8", "--limit", "2", "--mesh", "1,4,2"]) == 0
    rows = [[json.loads(ln) for ln in (d / "unlabeled_samples.jsonl").read_text().splitlines()] for d in (out, on_mesh)]
    assert [(r["response"], r["length"]) for r in rows[1]] == [(r["response"], r["length"]) for r in rows[0]]
    np.testing.assert_allclose([r["value"] for r in rows[1]], [r["value"] for r in rows[0]], rtol=1e-5, atol=1e-6)


def test_demo_rejects_a_seed_count_below_one(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--seeds", "0"])
    assert exc.value.code == 2
    assert "--seeds: must be at least 1, got 0" in capsys.readouterr().err


def test_plot_writes_the_run_plots_or_says_why_not(tmp_path, capsys):
    rows = [
        {"step": s, "eval/toy/avg@16": 0.1 * s, "eval/toy/pass@8": 0.2 * s, "eval/toy/critic/auroc": 0.6}
        for s in (2, 4)
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["plot", str(tmp_path)]) == 0
    for name in ("accuracy_vs_step.png", "critic_auroc.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text('{"step": 1, "actor/loss": 0.5}\n')
    assert main(["plot", str(empty)]) == 1
    assert "no periodic evaluation" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("train", "eval", "convert", "demo", "plot", "plan"):
        assert command in out


def _options(parser, name: str):
    """(command name, action) of every argument of ``parser`` and its subcommands, -h/--help left out."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for command, sub in action.choices.items():
                assert helps.get(command), f"`{name} {command}` has no help line in `{name} --help`"
                yield from _options(sub, f"{name} {command}")
        else:
            yield name, action


def test_every_option_has_help_that_names_its_default():
    from tempo_jax.cli import build_parser
    from tempo_jax.plan.planner import plan_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {"train", "eval", "convert", "demo", "plot", "plan"}
    options = [*_options(parser, "tempo-jax"), *_options(plan_parser(), "tempo-jax plan")]
    assert len(options) > 25
    for command, action in options:
        what = f"{command} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help != argparse.SUPPRESS, f"{what} has no help"
        text = action.help % {"default": action.default, "prog": command}  # as --help shows it
        flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
        if not flag and not action.required and action.default not in (None, "", argparse.SUPPRESS):
            assert "default" in text, f"{what}: the help does not name the default {action.default!r}: {text!r}"


def test_the_entry_point_imports_no_heavy_module():
    """`tempo_jax.cli` is __main__ of every tempo-jax process, and the grading pool's forkserver
    children import __main__ again: importing it must not pull in jax (seconds per pool start)."""
    code = "import sys, tempo_jax.cli; print(sorted(m for m in ('jax', 'transformers', 'flax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]
