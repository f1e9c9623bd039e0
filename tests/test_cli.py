"""The command line: convert, eval and train entry points on the tiny assets (in-process)."""

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


def test_the_entry_point_imports_no_heavy_module():
    """`tempo_jax.cli` is __main__ of every tempo-jax process, and the grading pool's forkserver
    children import __main__ again: importing it must not pull in jax (seconds per pool start)."""
    code = "import sys, tempo_jax.cli; print(sorted(m for m in ('jax', 'transformers', 'flax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]
