"""Ablation: TEMPO with the sequence-level `em` estimator (group-normalised, clamped V_T)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tiny_common import tiny  # noqa: E402


def get_config():
    return tiny("tempo", run_dir="runs/tiny_tempo_em", algo__adv_estimator="em")
