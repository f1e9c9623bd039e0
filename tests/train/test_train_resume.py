"""Exact resume after SIGKILL, clean stop on SIGTERM, fall-back from a corrupt latest checkpoint.

These run the real CLI in subprocesses (cwd = a temp dir, so the tiny assets are created there).
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from tempo_jax.train.loop import Trainer
from tempo_jax.train.metrics import read_metrics

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "tiny.py") + ":tempo"
COMMON = ["--config.checkpoint.async_save=False", "--config.log.tensorboard=False", "--config.grader.workers=1"]
VOLATILE = ("time/", "perf/")


def _cli(cwd, run_dir, *extra):
    cmd = [
        sys.executable,
        "-m",
        "tempo_jax.cli",
        "train",
        "--config",
        CONFIG,
        f"--config.run_dir={run_dir}",
        *COMMON,
        *extra,
    ]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _train_rows(run_dir):
    return {
        r["step"]: {k: v for k, v in r.items() if not k.startswith(VOLATILE)}
        for r in read_metrics(str(run_dir))
        if "actor/loss" in r
    }


def _committed(ckpt_dir, step):
    d = pathlib.Path(ckpt_dir) / str(step)
    return d.is_dir() and any(d.iterdir())


def _wait_for(predicate, proc, timeout=600):
    start = time.time()
    while not predicate():
        if proc.poll() is not None:
            return False
        if time.time() - start > timeout:
            proc.kill()
            pytest.fail("timed out waiting for the training subprocess")
        time.sleep(0.1)
    return True


def _actor_bytes(run_dir):
    return (pathlib.Path(run_dir) / "export" / "actor" / "model.safetensors").read_bytes()


def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    steps = ["--config.train.total_steps=6", "--config.checkpoint.save_every=3"]
    _finish(_cli(tmp_path, tmp_path / "straight", *steps))

    killed = tmp_path / "killed"
    proc = _cli(tmp_path, killed, *steps)
    # Kill -9 once step 3's checkpoint is committed and step 4 has started (or at least step 3 logged).
    reached = _wait_for(lambda: _committed(killed / "checkpoints", 3), proc)
    assert reached, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "export").exists()
    _finish(_cli(tmp_path, killed, *steps, "--resume"))

    assert _actor_bytes(killed) == _actor_bytes(tmp_path / "straight")
    straight_rows, resumed_rows = _train_rows(tmp_path / "straight"), _train_rows(killed)
    assert sorted(resumed_rows) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):
        assert resumed_rows[step] == straight_rows[step], f"metrics differ at step {step}"


def test_sigterm_saves_exits_cleanly_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    steps = ["--config.train.total_steps=5", "--config.checkpoint.save_every=100"]
    proc = _cli(tmp_path, run_dir, *steps)
    assert _wait_for(
        lambda: (
            (run_dir / "metrics.jsonl").exists()
            and any("actor/loss" in ln for ln in (run_dir / "metrics.jsonl").read_text().splitlines())
        ),
        proc,
    )
    proc.send_signal(signal.SIGTERM)
    out = _finish(proc)
    assert "SIGTERM" in out and "--resume" in out
    saved = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and saved[-1] < 5
    _finish(_cli(tmp_path, run_dir, *steps, "--resume"))
    assert sorted(_train_rows(run_dir)) == [1, 2, 3, 4, 5]


def test_corrupt_latest_checkpoint_falls_back_and_keeps_it(tiny_config):
    cfg = tiny_config("tempo", train__total_steps=3)
    Trainer(cfg).run()
    latest = pathlib.Path(cfg.run_dir) / "checkpoints" / "3"
    victims = [p for p in latest.rglob("*") if p.is_file() and p.stat().st_size > 0 and "actor" in str(p)]
    assert victims
    for p in victims:
        p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])
    resumed = Trainer(cfg, resume=True)
    assert resumed.start_step == 2
    moved = [p for p in latest.parent.iterdir() if p.name.startswith("3.corrupt")]
    assert moved, "the corrupt checkpoint must be kept aside, not deleted"
    resumed.run()
    assert resumed.checkpointer.latest_step() == 3
