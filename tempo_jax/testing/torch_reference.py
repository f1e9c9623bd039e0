"""Helpers for parity tests against transformers (imports torch lazily: only tests need it)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any


def randomize(model, seed: int) -> None:
    """Re-draw a torch model's weights at std 0.15 (norm weights around 1) so logits are O(1)
    and a 1e-4 parity bound is meaningful (HF's default init makes near-constant logits)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))


def hf_config_from(kwargs: dict):
    """A transformers config from ``{model_type, ...}`` kwargs, with eager attention (the reference)."""
    import transformers

    kwargs = copy.deepcopy(kwargs)
    cfg = transformers.AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
    cfg._attn_implementation = "eager"
    return cfg


class HFCheckpointCache:
    """Tiny random HF checkpoints saved under ``root`` once per session, with their torch models.

    ``make_config(case)`` gives the transformers config; ``seed_of(case, critic)`` the seed of
    :func:`randomize`. ``get(case, critic=True)`` builds a token-classification (value) model
    with one label, saved as ``<case>_critic``."""

    def __init__(self, root: str, make_config: Callable[[str], Any], seed_of: Callable[[str, bool], int]):
        self.root = root
        self.make_config = make_config
        self.seed_of = seed_of
        self._cache: dict = {}

    def get(self, case: str, critic: bool = False):
        """(directory, torch model) of the causal-LM (or token-classification) checkpoint."""
        import torch
        import transformers

        key = (case, critic)
        if key not in self._cache:
            torch.manual_seed(0)
            cfg = self.make_config(case)
            if critic:
                cfg.num_labels = 1
                model = transformers.AutoModelForTokenClassification.from_config(cfg)
            else:
                model = transformers.AutoModelForCausalLM.from_config(cfg)
            randomize(model, seed=self.seed_of(case, critic))
            model.eval()
            path = os.path.join(self.root, f"{case}{'_critic' if critic else ''}")
            model.save_pretrained(path)
            self._cache[key] = (path, model)
        return self._cache[key]
