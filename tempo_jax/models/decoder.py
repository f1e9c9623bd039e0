"""The decoder backbone and the causal LM (actor) built on it.

Layers are a list of blocks, or (``scan_layers``) one block with stacked parameters run by
``lax.scan`` so compile time and HLO size stay flat in depth. ``remat`` checkpoints each
block. Attention masks come from a per-token ``valid`` flag (left padding) plus slot order,
so the same code serves training (no cache), prefill and decode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tempo_jax.models.cache import KVCache, LayerKVCache, init_cache
from tempo_jax.models.config import SLIDING, ModelConfig
from tempo_jax.models.layers import NO_WINDOW, Block, MaskSpec, RMSNorm, param_init
from tempo_jax.models.rope import rope_cos_sin


def _make_layers(cfg: ModelConfig, rngs: nnx.Rngs):
    if not cfg.scan_layers:
        return nnx.List([Block(cfg, rngs) for _ in range(cfg.num_layers)])

    @nnx.split_rngs(splits=cfg.num_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make(r: nnx.Rngs) -> Block:
        return Block(cfg, r)

    return make(rngs)


class Decoder(nnx.Module):
    """Embedding + blocks + final norm. Returns final hidden states [B, L, hidden]."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed_tokens = nnx.Embed(
            cfg.vocab_size,
            cfg.hidden_size,
            dtype=cfg.jnp_dtype,
            param_dtype=cfg.jnp_param_dtype,
            embedding_init=param_init(),
            rngs=rngs,
        )
        self.layers = _make_layers(cfg, rngs)
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg)

    def __call__(
        self, tokens: jax.Array, positions: jax.Array, valid: jax.Array, cache: KVCache | LayerKVCache | None = None
    ) -> tuple[jax.Array, KVCache | LayerKVCache | None]:
        """Hidden states [B, L, hidden] and the cache (same layout as given) with the L new
        tokens written at ``cache.index``."""
        cfg = self.cfg
        x = self.embed_tokens(tokens).astype(cfg.jnp_dtype)
        length = tokens.shape[1]
        full = rope_cos_sin(positions, cfg.rope, cfg.head_dim)
        sliding = rope_cos_sin(positions, cfg.sliding_rope, cfg.head_dim) if cfg.sliding_rope else full
        if cache is None:
            q_slots = jnp.arange(length, dtype=jnp.int32)
            kv_valid, write_index = valid, None
        else:
            q_slots = cache.index + jnp.arange(length, dtype=jnp.int32)
            kv_valid = jax.lax.dynamic_update_slice(cache.valid, valid, (0, cache.index))
            write_index = cache.index
        is_sliding = [t == SLIDING for t in cfg.layer_types]
        windows = [cfg.sliding_window if t else NO_WINDOW for t in is_sliding]
        stacked = isinstance(cache, KVCache)
        ring = isinstance(cache, LayerKVCache) and cache.ring
        # Self-attention over these tokens only (training, prefill into an empty cache): the
        # mask covers them alone and attention may take a fused kernel (MaskSpec.self_only).
        self_only = cache is None or (isinstance(cache, LayerKVCache) and cache.empty)
        mask_slots, mask_valid = (jnp.arange(length, dtype=jnp.int32), valid) if self_only else (q_slots, kv_valid)

        def run(graphdef, state, h, cos, sin, mask, kv):
            block = nnx.merge(graphdef, state)
            return block(h, cos, sin, mask, kv, write_index)

        if cfg.remat:
            run = jax.checkpoint(run, static_argnums=(0,), prevent_cse=not cfg.scan_layers)

        def new_rows(kv):  # the rows just written, [B, KVH, L, D] each
            return tuple(jax.lax.dynamic_slice_in_dim(a, write_index, length, axis=2) for a in kv)

        layer_kv: list[tuple[jax.Array, jax.Array] | None] | None
        layer_rows: list[tuple[jax.Array, ...] | None] | None
        if cfg.scan_layers:
            graphdef, state = nnx.split(self.layers)
            flags = jnp.asarray(is_sliding)
            win = jnp.asarray(windows, jnp.int32)

            def body(h, xs):
                layer_state, flag, w, kv = xs
                cos = jnp.where(flag, sliding[0], full[0])
                sin = jnp.where(flag, sliding[1], full[1])
                # Built inside the body: a [B, L, S] mask passed into the loop would be materialised
                # (long training sequences); here it fuses into the attention scores.
                mask = MaskSpec(mask_slots, mask_valid, w, ring, self_only)
                h, kv = run(graphdef, layer_state, h, cos, sin, mask, kv)
                return h, (None if kv is None else new_rows(kv))

            if cache is None:
                kv_in = None
            elif isinstance(cache, KVCache):
                kv_in = (jnp.swapaxes(cache.k, 2, 3), jnp.swapaxes(cache.v, 2, 3))
            else:
                kv_in = (jnp.stack(cache.k), jnp.stack(cache.v))
            x, rows = jax.lax.scan(body, x, (state, flags, win, kv_in))
            layer_rows = None if cache is None else [(rows[0][i], rows[1][i]) for i in range(cfg.num_layers)]
            layer_kv = None
        else:
            # One mask spec for full attention, one for sliding layers (identical dense masks are CSE'd).
            full_mask = MaskSpec(mask_slots, mask_valid, NO_WINDOW, ring, self_only)
            sliding_mask = MaskSpec(mask_slots, mask_valid, cfg.sliding_window or NO_WINDOW, ring, self_only)
            layer_kv, layer_rows = [], []
            for i, block in enumerate(self.layers):
                graphdef, state = nnx.split(block)
                cos, sin = sliding if is_sliding[i] else full
                mask = sliding_mask if is_sliding[i] else full_mask
                if cache is None:
                    kv = None
                elif isinstance(cache, KVCache):
                    kv = (jnp.swapaxes(cache.k[i], 1, 2), jnp.swapaxes(cache.v[i], 1, 2))
                else:
                    kv = (cache.k[i], cache.v[i])
                x, kv = run(graphdef, state, x, cos, sin, mask, kv)
                layer_kv.append(kv)
                layer_rows.append(None if kv is None or not stacked else new_rows(kv))
        x = self.norm(x)
        if cache is None:
            return x, None
        return x, _updated_cache(cache, length, kv_valid, layer_kv, layer_rows)


def _updated_cache(cache: KVCache | LayerKVCache, length: int, kv_valid: jax.Array, layer_kv, layer_rows):
    """The cache after ``length`` new tokens: ``layer_kv`` (per-layer buffers the blocks wrote, unrolled
    layers) or only ``layer_rows`` (the new rows, stacked buffer or scanned layers) written at ``cache.index``."""
    index = cache.index + length
    if isinstance(cache, KVCache):  # write only the new rows into the stacked buffer
        start = (0, 0, cache.index, 0, 0)
        k = jax.lax.dynamic_update_slice(cache.k, jnp.stack([jnp.swapaxes(r[0], 1, 2) for r in layer_rows]), start)
        v = jax.lax.dynamic_update_slice(cache.v, jnp.stack([jnp.swapaxes(r[1], 1, 2) for r in layer_rows]), start)
        return KVCache(k=k, v=v, valid=kv_valid, index=index)
    if layer_kv is None:  # scanned layers: write the new rows into each layer's buffer
        layer_start = (0, 0, cache.index, 0)
        layer_kv = [
            (
                jax.lax.dynamic_update_slice(kb, r[0].astype(kb.dtype), layer_start),
                jax.lax.dynamic_update_slice(vb, r[1].astype(vb.dtype), layer_start),
            )
            for kb, vb, r in zip(cache.k, cache.v, layer_rows)
        ]
    if cache.ring:  # the write index wraps around (a write never straddles the end: one token per step)
        index = index % cache.max_len
    return LayerKVCache(
        k=tuple(kv[0] for kv in layer_kv),
        v=tuple(kv[1] for kv in layer_kv),
        valid=kv_valid,
        index=index,
        ring=cache.ring,
    )


class CausalLM(nnx.Module):
    """The actor: decoder + LM head (tied to the embedding or separate)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.model = Decoder(cfg, rngs)
        if not cfg.tie_word_embeddings:
            self.lm_head = nnx.Linear(
                cfg.hidden_size,
                cfg.vocab_size,
                use_bias=False,
                dtype=cfg.jnp_dtype,
                param_dtype=cfg.jnp_param_dtype,
                kernel_init=param_init(),
                rngs=rngs,
            )

    def logits_from_hidden(self, hidden: jax.Array) -> jax.Array:
        """LM-head projection in float32 (sampling and log-probs need the precision)."""
        if self.cfg.tie_word_embeddings:
            table = self.model.embed_tokens.embedding[...].astype(hidden.dtype)
            return jnp.einsum("...d,vd->...v", hidden, table, preferred_element_type=jnp.float32)
        return self.lm_head(hidden).astype(jnp.float32)

    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array | None = None,
        valid: jax.Array | None = None,
        cache: KVCache | LayerKVCache | None = None,
    ) -> tuple[jax.Array, KVCache | LayerKVCache | None]:
        positions, valid = default_positions(tokens, positions, valid)
        hidden, cache = self.model(tokens, positions, valid, cache)
        return self.logits_from_hidden(hidden), cache

    def init_cache(self, batch: int, max_len: int, dtype: str | None = None) -> KVCache:
        return init_cache(self.cfg, batch, max_len, dtype)


def positions_from_valid(valid: jax.Array) -> jax.Array:
    """Positions of left-padded rows: each token's count of valid tokens up to it, minus one
    (the first valid token is position 0; padding before it is 0 too)."""
    return jnp.maximum(jnp.cumsum(valid.astype(jnp.int32), axis=-1) - 1, 0)


def default_positions(tokens: jax.Array, positions: jax.Array | None, valid: jax.Array | None):
    """Valid = all tokens unless given; positions from :func:`positions_from_valid` unless given."""
    if valid is None:
        valid = jnp.ones(tokens.shape, jnp.bool_)
    if positions is None:
        positions = positions_from_valid(valid)
    return positions, valid


def prompt_response_inputs(prompt_tokens: jax.Array, prompt_valid: jax.Array, response_tokens: jax.Array):
    """``(tokens, positions, valid)`` [R, P + T] of left-padded prompts followed by responses.

    Every response slot is marked valid, the padding after a response's end included: valid
    tokens never attend to later ones (causal), so nothing reads those slots, and marking them
    keeps positions contiguous."""
    tokens = jnp.concatenate([prompt_tokens, response_tokens], axis=1)
    valid = jnp.concatenate([prompt_valid.astype(jnp.bool_), jnp.ones(response_tokens.shape, jnp.bool_)], axis=1)
    return tokens, positions_from_valid(valid), valid


def shift_to_response_tokens(x: jax.Array, prompt_len: int, response_len: int) -> jax.Array:
    """Per-position outputs over ``[prompt ++ response]`` (hidden states, values) moved onto the
    response tokens: entry t is position ``prompt_len + t - 1``, the last one that has not seen
    response token t (log pi(y_t | x, y_<t) and V_t = V(x, y_<t), TEMPO_SPEC §1.3; verl's
    ``values[:, -T-1:-1]``)."""
    return jax.lax.dynamic_slice_in_dim(x, prompt_len - 1, response_len, axis=1)
