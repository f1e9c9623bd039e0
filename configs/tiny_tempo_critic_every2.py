"""Ablation: TEMPO with the critic recalibrated every 2 steps."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tiny_common import tiny  # noqa: E402


def get_config():
    return tiny("tempo", run_dir="runs/tiny_tempo_critic_every2", algo__critic_update_every=2)
