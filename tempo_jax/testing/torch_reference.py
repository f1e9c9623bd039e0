"""Helpers for parity tests against transformers (imports torch lazily: only tests need it)."""
from __future__ import annotations


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
