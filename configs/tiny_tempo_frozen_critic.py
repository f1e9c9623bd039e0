"""Ablation: TEMPO with critic lr 0 (no recalibration; the reference's OLMo/Qwen3-8B setting)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tiny_common import tiny  # noqa: E402


def get_config():
    return tiny("tempo", run_dir="runs/tiny_tempo_frozen_critic", train__critic_lr=0.0)
