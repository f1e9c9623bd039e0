"""Forward passes over (prompt ++ response) sequences: response log-probs, entropy and values.

Sequences are laid out as [left-padded prompt (P) | response (T)]. The token at response
position t is predicted by the logits at absolute position P + t - 1, and the critic's V_t is
read at the same position (V(x, y_<t), TEMPO_SPEC §1.3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tempo_jax.models.critic import Critic
from tempo_jax.models.decoder import CausalLM, prompt_response_inputs, shift_to_response_tokens
from tempo_jax.parallel.mesh import constrain_rows


def sequence_inputs(prompt_tokens, prompt_valid, response_tokens):
    """:func:`~tempo_jax.models.decoder.prompt_response_inputs`, rows over (data, fsdp) under a mesh."""
    return constrain_rows(prompt_response_inputs(prompt_tokens, prompt_valid, response_tokens))


def response_logprobs(
    actor: CausalLM, prompt_tokens, prompt_valid, response_tokens, response_mask, with_entropy: bool = False
):
    """log pi(y_t | x, y_<t) [R, T] (and the per-token entropy of pi when asked)."""
    plen, tlen = prompt_tokens.shape[1], response_tokens.shape[1]
    tokens, positions, valid = sequence_inputs(prompt_tokens, prompt_valid, response_tokens)
    hidden, _ = actor.model(tokens, positions, valid)
    hidden = shift_to_response_tokens(hidden, plen, tlen)
    logits = actor.logits_from_hidden(hidden)
    logp_all = jax.nn.log_softmax(logits, axis=-1)
    logp = jnp.take_along_axis(logp_all, response_tokens[..., None], axis=-1)[..., 0]
    if not with_entropy:
        return logp, None
    entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
    return logp, entropy


def response_values(critic: Critic, prompt_tokens, prompt_valid, response_tokens, response_mask):
    """Run ``critic`` on the sequences: V_t [R, T] for every response token, read one position earlier."""
    plen, tlen = prompt_tokens.shape[1], response_tokens.shape[1]
    tokens, positions, valid = sequence_inputs(prompt_tokens, prompt_valid, response_tokens)
    return shift_to_response_tokens(critic(tokens, positions, valid), plen, tlen)


def micro_batched(fn, batch: dict, micro_rows: int):
    """Apply ``fn(micro_batch) -> pytree`` over row chunks with ``lax.map`` and re-join rows."""
    rows = next(iter(batch.values())).shape[0]
    if rows % micro_rows:
        raise ValueError(f"{rows} rows do not split into micro-batches of {micro_rows}")
    chunks = jax.tree.map(lambda x: x.reshape((rows // micro_rows, micro_rows) + x.shape[1:]), batch)
    out = jax.lax.map(fn, chunks)
    return jax.tree.map(lambda x: x.reshape((rows,) + x.shape[2:]), out)
