"""The value critic: the actor's backbone with a scalar ``Linear(hidden, 1)`` head.

Value of response token t is read from the hidden state at position t-1, i.e.
V_t = V(x, y_<t) (TEMPO_SPEC §1.3); :func:`tempo_jax.models.decoder.shift_to_response_tokens`
does that shift.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tempo_jax.models.config import ModelConfig
from tempo_jax.models.decoder import CausalLM, Decoder, default_positions
from tempo_jax.models.layers import linear


def value_head(cfg: ModelConfig, rngs: nnx.Rngs) -> nnx.Linear:
    """HF's token-classification head with one label: Linear(hidden, 1) with a bias (zero at init)."""
    return linear(cfg, cfg.hidden_size, 1, True, rngs)


class Critic(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.model = Decoder(cfg, rngs)
        # HF token classification head: Linear(hidden, num_labels=1) with bias.
        self.score = value_head(cfg, rngs)

    def __call__(
        self, tokens: jax.Array, positions: jax.Array | None = None, valid: jax.Array | None = None
    ) -> jax.Array:
        """Per-position values [B, L] in float32."""
        positions, valid = default_positions(tokens, positions, valid)
        hidden, _ = self.model(tokens, positions, valid)
        return self.score(hidden)[..., 0].astype(jnp.float32)


def critic_from_actor(actor: CausalLM, seed: int = 0) -> Critic:
    """An independent critic: a copy of the actor's backbone with a fresh value head."""
    cfg = actor.cfg
    critic = nnx.eval_shape(lambda: Critic(cfg, nnx.Rngs(seed)))
    backbone_state = nnx.state(actor.model)
    copied = jax.tree.map(lambda x: jnp.array(x, copy=True), backbone_state)
    nnx.update(critic.model, copied)
    head = value_head(cfg, nnx.Rngs(seed))
    critic.score = head
    return critic
