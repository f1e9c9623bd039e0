"""Operator mistakes and faults, met through the CLI as a user meets them: each ends in one line
on stderr (exit status 1, no traceback) that names the thing and what to do, and nothing already
saved is changed. (Crash-resume exactness under SIGKILL / SIGTERM lives in tests/train/test_train_resume.py.)
"""

import json
import os
import pathlib

import pytest

from tempo_jax.cli import main
from tempo_jax.train.metrics import read_metrics

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "tiny.py") + ":tempo"
QUIET = ["--config.checkpoint.async_save=False", "--config.log.tensorboard=False", "--config.grader.workers=1"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One directory for the module: the tiny recipes create their assets under ./runs/tiny_assets once."""
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture
def cli(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)

    def run(*args):
        capsys.readouterr()
        rc = main(list(args))
        return rc, capsys.readouterr().err

    return run


def train(run_dir, *extra):
    return ["train", "--config", CONFIG, f"--config.run_dir={run_dir}", *QUIET, *extra]


def snapshot(directory):
    """Every path under ``directory`` with its bytes (directories map to None)."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), directory)] = None
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                out[os.path.relpath(os.path.join(root, name), directory)] = fh.read()
    return out


def one_line(err, needle):
    assert err.startswith("tempo-jax: error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 3, err  # a recipe listing several problems may take a few lines
    assert needle in err, err


@pytest.fixture
def trained(cli, tmp_path):
    """A finished 2-step run with a checkpoint at each step."""
    run_dir = tmp_path / "run"
    rc, err = cli(*train(run_dir, "--config.train.total_steps=2", "--config.checkpoint.save_every=1"))
    assert rc == 0, err
    return run_dir


# ---------------------------------------------------------------------------------------------- history
def test_1_fresh_run_into_a_used_run_dir_is_refused(cli, trained):
    before = snapshot(trained)
    rc, err = cli(*train(trained, "--config.train.total_steps=3"))
    assert rc == 1
    one_line(err, f"run directory {trained} already holds a run (checkpoints at steps 1, 2")
    assert "--resume" in err and snapshot(trained) == before


def test_2_storage_failure_is_not_taken_for_corruption(cli, trained, monkeypatch):
    from tempo_jax.train.checkpoint import Checkpointer

    before = snapshot(trained)

    def denied(self, step, abstract):
        raise PermissionError(13, "Permission denied", str(trained / "checkpoints" / str(step) / "actor"))

    monkeypatch.setattr(Checkpointer, "_read_step", denied)
    rc, err = cli(*train(trained, "--config.train.total_steps=3", "--resume"))
    assert rc == 1
    one_line(err, "the storage failed, not necessarily the checkpoint, so nothing was moved or changed")
    assert snapshot(trained) == before


def test_2_resume_with_every_checkpoint_set_aside_is_refused(cli, trained):
    ckpts = trained / "checkpoints"
    for step in ("1", "2"):
        (ckpts / step).rename(ckpts / f"{step}.corrupt-0")
    before = snapshot(trained)
    rc, err = cli(*train(trained, "--config.train.total_steps=3", "--resume"))
    assert rc == 1
    one_line(err, "--resume: no usable checkpoint")
    assert "2.corrupt-0" in err and "metrics.jsonl with" in err and snapshot(trained) == before


def test_3_torn_last_metrics_line_resumes(cli, trained):
    with open(trained / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"step": 3, "actor/lo')  # a crash mid-write
    rc, err = cli(*train(trained, "--config.train.total_steps=3", "--config.checkpoint.save_every=1", "--resume"))
    assert rc == 0, err
    steps = [r["step"] for r in read_metrics(str(trained)) if "actor/loss" in r]
    assert steps == [1, 2, 3]


def test_4_unwritable_run_dir_is_named_at_start(cli, tmp_path, monkeypatch):
    """EROFS is injected at the write probe (this suite runs as root, which ignores chmod)."""
    import builtins
    import errno

    real_open = builtins.open

    def read_only(path, mode="r", *args, **kwargs):
        if ".tempo_jax_write_probe_" in str(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    rc, err = cli(*train(tmp_path / "ro"))
    monkeypatch.setattr(builtins, "open", real_open)
    assert rc == 1
    one_line(err, f"cannot write to {tmp_path / 'ro'} (Read-only file system)")


# a failed Orbax read leaves its other pending reads to fail after the asyncio loop closed
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_5_eval_of_a_run_changes_nothing_in_it(cli, trained, tmp_path, workdir):
    """Even with a damaged newest step and a half-written save, which a training run would set aside and clean up."""
    for data in (trained / "checkpoints" / "2" / "actor").rglob("*"):
        if data.is_file() and data.parent.name == "d":
            data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    (trained / "checkpoints" / "3.orbax-checkpoint-tmp-1700000000").mkdir()
    before = snapshot(trained)
    rc, err = cli(
        "eval",
        "--checkpoint",
        str(trained),
        "--datasets",
        str(workdir / "runs/tiny_assets/unlabeled.jsonl"),
        "--out",
        str(tmp_path / "eval"),
        "--n",
        "2",
        "--max-new-tokens",
        "8",
        "--template",
        "plain",
        "--limit",
        "2",
    )
    assert rc == 0, err
    assert snapshot(trained) == before


def test_demo_into_a_used_output_directory_is_refused(cli, tmp_path):
    (tmp_path / "demo" / "seed_0").mkdir(parents=True)
    (tmp_path / "demo" / "seed_0" / "results.md").write_text("earlier results")
    rc, err = cli("demo", "--out", str(tmp_path / "demo"))
    assert rc == 1
    one_line(err, "already holds demo output (seed_0); give another --out")
    assert (tmp_path / "demo" / "seed_0" / "results.md").read_text() == "earlier results"


# ---------------------------------------------------------------------------------------------- bad input
def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_6_mixed_file_as_labeled_keeps_test_labels_out(cli, tmp_path, caplog):
    rows = [{"id": f"l{i}", "problem": f"{i}+1", "answer": str(i + 1)} for i in range(8)]
    rows += [{"id": f"u{i}", "problem": f"{i}+{i}", "is_labeled": False} for i in range(4)]  # no answers
    mixed = _jsonl(tmp_path / "mixed.jsonl", rows)
    rc, err = cli(
        *train(
            tmp_path / "run",
            f"--config.data.labeled={mixed}",
            "--config.data.unlabeled=",
            "--config.train.total_steps=1",
        )
    )
    assert rc == 0, err
    # the user sees this warning on stderr (pytest routes log records to caplog)
    assert "4 row(s) flagged is_labeled=false join D_U; their answers are never used for training" in caplog.text


def test_6_labeled_flag_inside_unlabeled_file_is_refused(cli, tmp_path):
    du = _jsonl(tmp_path / "du.jsonl", [{"id": "a", "problem": "1+1", "answer": "2", "is_labeled": True}])
    rc, err = cli(*train(tmp_path / "run", f"--config.data.unlabeled={du}"))
    assert rc == 1
    one_line(err, "has 1 row(s) flagged is_labeled=true (e.g. ['a'])")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    "override,needle",
    [
        ("--config.model.tokenizer={qwen3}", "tokens but the model's vocab_size is"),
        ("--config.rollout.max_new_tokens=4000", "exceeds the model's max_position_embeddings=2048"),
    ],
)
def test_7_model_must_fit_tokenizer_and_lengths(cli, tmp_path, data_dir, override, needle):
    rc, err = cli(*train(tmp_path / "run", override.format(qwen3=data_dir / "tokenizers" / "qwen3")))
    assert rc == 1
    one_line(err, needle)


@pytest.mark.parametrize(
    "override,needle",
    [
        ("--config.algo.value_options.labeled_only=Treu", "algo.value_options.labeled_only='Treu' is not a boolean"),
        ("--config.algo.policy_options.clip_low=-0.5", "algo.policy_options.clip_low=-0.5 must be > 0"),
        ("--config.train.total_steps=0", "train.total_steps=0 must be >= 1"),
        ("--config.train.ppo_epochs=0", "train.ppo_epochs=0 must be >= 1"),
        ("--config.algo.adv_estimator=gea", "algo.adv_estimator='gea' is not registered"),
        ("--config.algo.policy_loss=nope", "algo.policy_loss='nope' is not registered"),
        ("--config.train.nope=1", "unknown config key 'train.nope'"),
    ],
)
def test_8_config_values_that_cannot_work(cli, tmp_path, override, needle):
    rc, err = cli(*train(tmp_path / "run", override))
    assert rc == 1
    one_line(err, needle)
    assert not (tmp_path / "run").exists()


def test_8_data_files_that_cannot_work(cli, tmp_path):
    nulled = _jsonl(tmp_path / "nulled.jsonl", [{"id": "a", "problem": "1+1", "answer": None}])
    rc, err = cli(*train(tmp_path / "run", f"--config.data.labeled={nulled}"))
    assert rc == 1
    one_line(err, "nulled.jsonl, line 1: field 'answer' is null")
    numeric = _jsonl(tmp_path / "numeric.jsonl", [{"id": "a", "problem": "1+1", "answer": 2}])
    rc, err = cli(*train(tmp_path / "run", f"--config.data.labeled={numeric}"))
    one_line(err, "set data.coerce_numbers=True to accept numbers")
    rc, err = cli(*train(tmp_path / "run", f"--config.data.labeled={tmp_path}"))
    assert rc == 1
    one_line(err, "is a directory, not a data file")


# ---------------------------------------------------------------------------------------------- reporting
def test_9_traceback_only_with_v(cli, tmp_path):
    rc, err = cli(*train(tmp_path / "run", "--config.train.total_steps=0"))
    assert rc == 1 and "Traceback" not in err
    rc, err = cli(*train(tmp_path / "run", "--config.train.total_steps=0"), "-v")
    assert rc == 1 and err.startswith("Traceback") and "train.total_steps=0 must be >= 1" in err
