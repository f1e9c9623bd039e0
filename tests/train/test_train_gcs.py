"""A run whose every file lives in a GCS bucket: a real local GCS server (fake-gcs-server), the real CLI.

The model, tokenizer and data are read from ``gs://``; the run directory is ``gs://``: checkpoints
(Orbax + TensorStore straight to the bucket, its own commit marker, no renames), metrics,
TensorBoard, config, tokenizer, export and evaluation outputs. Killed with SIGKILL after a
committed checkpoint, it resumes bitwise-identically to a run that was never interrupted.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from tempo_jax import storage
from tempo_jax.testing.gcs_emulator import apply_env, gcs_emulator, restore_env
from tempo_jax.train.metrics import read_metrics
from tempo_jax.train.tiny import ensure_tiny_assets

REPO = pathlib.Path(__file__).resolve().parents[2]
BUCKET = "gs://tempo-test"
VOLATILE = ("time/", "perf/")


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """The emulator, this process pointed at it, and the tiny assets uploaded to the bucket."""
    with gcs_emulator("tempo-test") as env:
        before = apply_env(env)
        try:
            local = tmp_path_factory.mktemp("assets")
            ensure_tiny_assets(str(local))
            storage.upload_tree(str(local), f"{BUCKET}/assets")
            yield env
        finally:
            restore_env(before)


def _cli(cwd, env, *args):
    """The CLI in a subprocess; its output goes to a file (a pipe nobody reads while the test polls
    the bucket would fill up and block the run's logging)."""
    cmd = [sys.executable, "-m", "tempo_jax.cli", *args]
    log = open(pathlib.Path(cwd) / f"cli_{time.monotonic_ns()}.log", "w+")  # closed in _finish
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = log
    return proc


def _output(proc) -> str:
    proc.log.seek(0)
    return proc.log.read()


def _train(cwd, env, run_dir, *extra):
    return _cli(
        cwd,
        env,
        "train",
        "--config",
        f"{REPO / 'configs' / 'tiny.py'}:tempo",
        f"--config.run_dir={run_dir}",
        f"--config.model.actor_hf={BUCKET}/assets/model",
        f"--config.data.labeled={BUCKET}/assets/labeled.jsonl",
        f"--config.data.unlabeled={BUCKET}/assets/unlabeled.jsonl",
        "--config.grader.workers=1",
        "--config.train.total_steps=4",
        "--config.checkpoint.save_every=2",
        *extra,
    )


def _finish(proc, timeout=600):
    proc.wait(timeout=timeout)
    out = _output(proc)
    proc.log.close()
    assert proc.returncode == 0, out[-3000:]
    return out


def _train_rows(run_dir):
    return {
        r["step"]: {k: v for k, v in r.items() if not k.startswith(VOLATILE)}
        for r in read_metrics(run_dir)
        if "actor/loss" in r
    }


def _actor_bytes(run_dir):
    return storage.as_path(f"{run_dir}/export/actor/model.safetensors").read_bytes()


def test_gcs_run_directory_end_to_end(bucket, tmp_path):
    straight, killed = f"{BUCKET}/runs/straight", f"{BUCKET}/runs/killed"
    _finish(_train(tmp_path, bucket, straight))

    proc = _train(tmp_path, bucket, killed)
    marker = f"{killed}/checkpoints/2/commit_success.txt"  # Orbax's commit on an object store
    start = time.time()
    while not storage.isfile(marker):
        assert proc.poll() is None, "the run finished before it could be killed: " + _output(proc)[-2000:]
        assert time.time() - start < 600, "timed out waiting for the step-2 checkpoint"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.log.close()
    assert not storage.exists(f"{killed}/export")
    _finish(_train(tmp_path, bucket, killed, "--resume"))

    assert _actor_bytes(killed) == _actor_bytes(straight)
    assert _train_rows(killed) == _train_rows(straight)
    assert sorted(_train_rows(killed)) == [1, 2, 3, 4]
    files = set(storage.listdir(killed))
    assert {"config.json", "model_config.json", "metrics.jsonl", "tokenizer", "tensorboard", "export"} <= files
    assert any(n.startswith("events.out.tfevents") for n in storage.listdir(f"{killed}/tensorboard"))
    assert {"config.json", "model.safetensors"} <= set(storage.listdir(f"{killed}/export/critic"))
    assert {"tokenizer_config.json", "generation_config.json"} <= set(storage.listdir(f"{killed}/export/actor"))
    assert not [n for n in storage.listdir(f"{killed}/checkpoints") if "tmp" in n]  # no rename leftovers

    out = f"{BUCKET}/eval/killed"
    _finish(
        _cli(
            tmp_path,
            bucket,
            "eval",
            "--checkpoint",
            killed,
            "--datasets",
            f"{BUCKET}/assets/unlabeled.jsonl",
            *"--n 2 --max-new-tokens 8 --limit 2".split(),
            "--out",
            out,
        )
    )
    assert {"results.md", "results.json", "unlabeled_samples.jsonl"} <= set(storage.listdir(out))
    assert not (tmp_path / "gs:").exists(), "a gs:// path was written as a local folder"


def test_remote_paths_without_their_package_say_what_to_install(monkeypatch):
    monkeypatch.setitem(storage.SCHEME_PACKAGES, "gs", ("no_such_gcs_package", "gcs"))
    monkeypatch.setattr(storage, "_has_backend", lambda package: False)
    with pytest.raises(storage.MissingStorageBackendError, match=r"pip install 'tempo-jax\[gcs\]'"):
        storage.as_path("gs://bucket/run")
