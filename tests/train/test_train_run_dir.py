"""A fresh run never erases an earlier run's history; --resume never restarts over it."""
import os

import pytest

from tempo_jax.train.loop import Trainer
from tempo_jax.train.run_dir import RunDirError, run_history


def _snapshot(run_dir):
    out = {}
    for root, _, files in os.walk(run_dir):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, run_dir)] = fh.read()
    return out


def test_fresh_run_into_a_used_directory_is_refused_and_changes_nothing(tiny_config):
    cfg = tiny_config("tempo", train__total_steps=2, checkpoint__save_every=1)
    Trainer(cfg).run()
    history = run_history(cfg.run_dir)
    assert history.checkpoint_steps == (1, 2) and history.metric_steps >= 2
    before = _snapshot(cfg.run_dir)
    again = tiny_config("tempo", train__total_steps=1)
    with pytest.raises(RunDirError, match=r"already holds a run \(checkpoints at steps 1, 2.*--resume"):
        Trainer(again)
    assert _snapshot(cfg.run_dir) == before


def test_resume_with_every_checkpoint_set_aside_is_refused(tiny_config):
    cfg = tiny_config("tempo", train__total_steps=1)
    os.makedirs(os.path.join(cfg.run_dir, "checkpoints", "3.corrupt-0"))
    with open(os.path.join(cfg.run_dir, "metrics.jsonl"), "w", encoding="utf-8") as fh:
        fh.write('{"step": 1, "loss": 1.0}\n')
    with pytest.raises(RunDirError, match=r"no usable checkpoint .* set aside as 3.corrupt-0 and metrics.jsonl "
                                          r"with 1 step"):
        Trainer(cfg, resume=True)
    assert open(os.path.join(cfg.run_dir, "metrics.jsonl"), encoding="utf-8").read() == '{"step": 1, "loss": 1.0}\n'


def test_resume_of_a_run_that_died_before_its_first_save_restarts(tiny_config):
    cfg = tiny_config("tempo", train__total_steps=1)
    os.makedirs(cfg.run_dir)
    with open(os.path.join(cfg.run_dir, "metrics.jsonl"), "w", encoding="utf-8") as fh:
        fh.write('{"step": 1, "loss": 1.0}\n')
    assert Trainer(cfg, resume=True).start_step == 0


def test_an_empty_or_new_directory_is_fine(tiny_config, tmp_path):
    cfg = tiny_config("tempo", train__total_steps=1, run_dir=str(tmp_path / "empty"))
    os.makedirs(cfg.run_dir)
    assert run_history(cfg.run_dir).empty
    Trainer(cfg)  # no error


def test_unwritable_run_directory_is_named_before_anything_runs(tiny_config, monkeypatch):
    """A read-only mount (EROFS; root ignores chmod, so the failure is injected at ``open``)."""
    import builtins
    import errno

    real_open = builtins.open

    def read_only_fs(path, mode="r", *args, **kwargs):
        if ".tempo_jax_write_probe_" in str(path) and "w" in mode:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, mode, *args, **kwargs)

    cfg = tiny_config("tempo", train__total_steps=1)
    monkeypatch.setattr(builtins, "open", read_only_fs)
    with pytest.raises(RunDirError, match=r"cannot write to .*run_tempo \(Read-only file system\).*--config.run_dir"):
        Trainer(cfg)
