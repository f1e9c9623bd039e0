"""Run-directory guards, the cases that must pass (the refusals are in tests/reliability/)."""

import os

from tempo_jax.train.loop import Trainer
from tempo_jax.train.run_dir import run_history


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
