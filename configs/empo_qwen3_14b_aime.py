"""Paper recipe: empo on qwen3_14b (TEMPO_SPEC §2/§4), planned for mesh.topology (see configs/paper_common.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from paper_common import paper  # noqa: E402


def get_config():
    return paper("qwen3_14b", "empo")
