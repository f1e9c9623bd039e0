"""Tiny CPU recipe: empo (see configs/tiny_common.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tiny_common import tiny  # noqa: E402


def get_config():
    return tiny("empo")
