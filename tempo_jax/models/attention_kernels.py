"""Fused attention kernels where the hardware has them, behind one switch (``attention_impl``).

* ``xla``: :func:`~tempo_jax.models.layers.attend_chunked` (ours, every backend; on the CPU the
  only one that runs natively);
* ``cudnn``: ``jax.nn.dot_product_attention(implementation="cudnn")`` (GPU; bf16/fp16 only);
* ``splash``: Pallas splash (flash) attention (TPU), one MQA kernel per KV head;
* ``auto``: splash on TPU, cuDNN on GPU for a bf16/fp16 model, else xla (:func:`resolve`).

Only whole-sequence self-attention takes a kernel: the training forward/backward (E- and M-step,
log-probs, values) and prefill into an empty cache, where sequences reach 18k tokens. A decode
step (one query against the cache) stays on the XLA path.

Our sequences are left-padded (every invalid token precedes every valid one). Both kernels take
a causal (optionally sliding-window) mask; pads would need a per-token mask that cuDNN cannot
take without materialising it. Instead each row is rotated so its valid tokens start at slot 0
(:func:`roll_rows`): causal and window masks are translation-invariant, so valid queries see
exactly the keys they saw before, and the pads, now at the end, are seen by no valid query. The
output is rotated back; pad queries' outputs are never read. The rotation is a gather of q, k, v
and the output: O(L) next to the kernel's O(L^2).

Why hand-written: the kernels are the libraries' (jax.nn, Pallas); this is the glue for our
masks, GQA layout and mesh (splash is a Mosaic custom call, so on a mesh it runs per shard under
``shard_map``).
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from tempo_jax.models.config import ATTENTION_IMPLS

SPLASH_BLOCK = 128  # the splash kernel's default block: sequences are padded up to a multiple of it


def resolve(impl: str, dtype: str, backend: str | None = None) -> str:
    """The kernel ``impl`` means on ``backend`` (default: JAX's): ``auto`` picks splash on TPU,
    cuDNN on GPU when the compute dtype is bf16/fp16 (cuDNN's flash attention has no fp32), else xla."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"unknown attention_impl {impl!r}; choose one of {', '.join(ATTENTION_IMPLS)}")
    if impl != "auto":
        return impl
    backend = backend or jax.default_backend()
    if backend == "tpu":
        return "splash"
    if backend in ("gpu", "cuda", "rocm") and dtype in ("bfloat16", "float16"):
        return "cudnn"
    return "xla"


def roll_rows(x: jax.Array, shift: jax.Array) -> jax.Array:
    """``out[b, j] = x[b, (j + shift[b]) % L]`` along axis 1 (a per-row rotation)."""
    length = x.shape[1]
    idx = (jnp.arange(length, dtype=jnp.int32)[None, :] + shift[:, None]) % length
    return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def self_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, valid: jax.Array, window: int, impl: str, interpret: bool = False
) -> jax.Array:
    """Causal self-attention of left-padded rows through a fused kernel.

    q [B, L, H, D]; k, v [B, KVH, L, D] (the cache layout); valid [B, L] (left padding only);
    ``window``: keys at distance < window are visible (HF's sliding-window rule; a value >= L
    means no window). ``impl``: ``cudnn``, ``splash`` or ``dot_product_xla`` (the cuDNN glue on
    ``jax.nn``'s XLA implementation: runs anywhere, so the glue is testable on a CPU).
    ``interpret``: run splash in the Pallas interpreter (CPU tests). Returns [B, L, H * D].
    """
    b, length, h, d = q.shape
    pads = length - jnp.sum(valid.astype(jnp.int32), axis=-1)
    q_r = roll_rows(q, pads)
    k_r, v_r = (roll_rows(jnp.swapaxes(x, 1, 2), pads) for x in (k, v))  # [B, L, KVH, D]
    local = None if window >= length else (int(window) - 1, 0)
    if impl in ("cudnn", "dot_product_xla"):
        out = jax.nn.dot_product_attention(
            q_r,
            k_r,
            v_r,
            scale=d**-0.5,
            is_causal=True,
            local_window_size=local,
            implementation="cudnn" if impl == "cudnn" else "xla",
        )
    elif impl == "splash":
        out = _splash_on_mesh(q_r, k_r, v_r, local, interpret)
    else:
        raise ValueError(f"self_attention: no fused kernel {impl!r}")
    return roll_rows(out, -pads).reshape(b, length, h * d)


def on_mesh(mesh: Mesh | None) -> contextlib.AbstractContextManager:
    """Trace a model call with ``mesh`` as the context mesh (a no-op without one): programs that
    take their mesh as an argument (the sampler's prefill) wrap the call so that a splash kernel
    inside it can run per shard (:func:`_splash_on_mesh` reads the context mesh)."""
    return contextlib.nullcontext() if mesh is None else jax.sharding.use_abstract_mesh(mesh.abstract_mesh)


def _splash_on_mesh(q, k, v, local, interpret: bool):
    """Splash per shard: a Mosaic kernel is opaque to the SPMD partitioner, so under an active
    mesh (``jax.set_mesh``) rows go over ('data', 'fsdp') and KV heads over 'tensor' when they
    divide, each device running the kernel on its block."""
    run = functools.partial(_splash, local=local, interpret=interpret)
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or "tensor" not in mesh.axis_names:
        return run(q, k, v)
    rows = mesh.shape["data"] * mesh.shape["fsdp"]
    batch = ("data", "fsdp") if q.shape[0] % rows == 0 else None
    heads = "tensor" if k.shape[2] % mesh.shape["tensor"] == 0 else None
    spec = P(batch, None, heads, None)
    return jax.shard_map(run, in_specs=(spec, spec, spec), out_specs=spec, check_vma=False)(q, k, v)


def _splash(q, k, v, local, interpret: bool):
    """q [B, L, H, D], k/v [B, L, KVH, D] (right-padded rows) -> [B, L, H, D]: the sequence padded
    up to the block size (pads at the end: causally invisible to real queries), one MQA kernel
    (H / KVH query heads sharing a KV head) vmapped over KV heads and rows."""
    b, length, h, d = q.shape
    kvh = k.shape[2]
    padded = -(-length // SPLASH_BLOCK) * SPLASH_BLOCK
    if padded != length:
        grow = ((0, 0), (0, padded - length), (0, 0), (0, 0))
        q, k, v = (jnp.pad(x, grow) for x in (q, k, v))
    shape = (padded, padded)
    one = sm.CausalMask(shape) if local is None else sm.LocalMask(shape, window_size=local, offset=0)
    kernel = sk.make_splash_mqa(
        sm.MultiHeadMask([one] * (h // kvh)), head_shards=1, q_seq_shards=1, interpret=interpret
    )
    scale = np.float32(d**-0.5).astype(q.dtype)
    qg = (q * scale).reshape(b, padded, kvh, h // kvh, d).transpose(0, 2, 3, 1, 4)  # [B, KVH, G, L, D]
    kg, vg = (x.transpose(0, 2, 1, 3) for x in (k, v))  # [B, KVH, L, D]
    out = jax.vmap(jax.vmap(kernel))(qg, kg, vg)  # [B, KVH, G, L, D]
    return out.transpose(0, 3, 1, 2, 4).reshape(b, padded, h, d)[:, :length]
