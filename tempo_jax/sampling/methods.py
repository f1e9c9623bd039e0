"""Sampling methods as small frozen dataclasses, composable as temperature -> top-k -> top-p.

Each method maps raw logits to the logits of the distribution actually sampled from
(``-inf`` outside the kept set; :meth:`transform`) and draws one token per row together with
its log-prob under the model (the raw logits) and under the sampling distribution
(:meth:`sample_with_logprobs`). :class:`Greedy` is the argmax limit.

Drawing uses one uniform number per row and a two-level inverse CDF over the vocabulary
(:func:`draw`): two passes over the logits (max, then exp + block sums) instead of a Gumbel
noise draw per vocabulary entry, which on a CPU costs more than the LM head itself.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

NEG_INF = -jnp.inf


def _block_size(vocab: int) -> int:
    for c in (256, 128, 512, 64, 1024):
        if vocab % c == 0:
            return c
    return 128  # the vocabulary is padded to a multiple (with -inf)


def _first_index(hit: jax.Array) -> jax.Array:
    """Index of the first True along the last axis (its length if none)."""
    n = hit.shape[-1]
    return jnp.min(jnp.where(hit, jnp.arange(n, dtype=jnp.int32), n), axis=-1)


def _last_index(hit: jax.Array) -> jax.Array:
    """Index of the last True along the last axis (0 if none)."""
    return jnp.max(jnp.where(hit, jnp.arange(hit.shape[-1], dtype=jnp.int32), 0), axis=-1)


def _take(x: jax.Array, idx: jax.Array) -> jax.Array:
    return jnp.take_along_axis(x, idx[:, None], axis=-1)[:, 0]


def logsumexp_parts(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(max [R], sum(exp(logits - max)) [R]): log_softmax(logits)[t] = logits[t] - max - log(sum)."""
    m = jnp.max(logits, axis=-1)
    return m, jnp.sum(jnp.exp(logits - m[:, None]), axis=-1)


def row_keys(rng: jax.Array, rows: jax.Array, steps: jax.Array) -> jax.Array:
    """One key per row [R]: the key of token ``steps[i]`` of row ``rows[i]``.

    A row's draws then depend only on (seed, row, token index), not on the batch, slot or step
    it was decoded in: the static and the continuous engine sample the same tokens from the same
    logits, and so do a batch and any chunk of it."""
    return jax.vmap(lambda r, t: jax.random.fold_in(jax.random.fold_in(rng, r), t))(rows, steps)


def row_uniforms(rng: jax.Array, rows: int) -> jax.Array:
    """[rows] uniforms in [0, 1): one per key when ``rng`` is a batch of keys (:func:`row_keys`),
    else ``rows`` draws from the one key."""
    is_typed = jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key)
    if rng.ndim == (1 if is_typed else 2):
        return jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32))(rng)
    return jax.random.uniform(rng, (rows,), jnp.float32)


def draw(rng: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One token per row from softmax(logits) [R, V], by inverse CDF with one uniform per row
    (``rng``: one key, or one key per row).

    The vocabulary is cut into blocks of C entries: the block is found from the cumulative block
    masses, then the token from the cumulative masses inside that block, so only [R, V / C] and
    [R, C] cumulative sums are ever formed. Entries at -inf (outside top-k/top-p) have zero mass
    and are never drawn (rounding at the top end is clamped to the last entry with mass).
    Returns (tokens [R] int32, max [R], sum(exp(logits - max)) [R]) so the caller gets the
    log-prob of the draw without another pass over the vocabulary.
    """
    rows, vocab = logits.shape
    c = _block_size(vocab)
    nb = -(-vocab // c)
    padded = logits if nb * c == vocab else jnp.pad(logits, ((0, 0), (0, nb * c - vocab)), constant_values=NEG_INF)
    blocks = padded.reshape(rows, nb, c)
    m = jnp.max(logits, axis=-1)
    block_mass = jnp.sum(jnp.exp(blocks - m[:, None, None]), axis=-1)  # [R, NB]
    cum = jnp.cumsum(block_mass, axis=-1)
    total = cum[:, -1]
    target = row_uniforms(rng, rows) * total
    blk = jnp.minimum(jnp.sum(cum <= target[:, None], axis=-1).astype(jnp.int32), _last_index(block_mass > 0))
    inner = jnp.take_along_axis(blocks, blk[:, None, None], axis=1)[:, 0]  # [R, C]
    inner_mass = jnp.exp(inner - m[:, None])
    before = jnp.concatenate([jnp.zeros_like(cum[:, :1]), cum[:, :-1]], axis=-1)  # exact: before[blk] <= target
    rest = target - _take(before, blk)
    j = jnp.minimum(
        jnp.sum(jnp.cumsum(inner_mass, axis=-1) <= rest[:, None], axis=-1).astype(jnp.int32),
        _last_index(inner_mass > 0),
    )
    return blk * c + j, m, total


@dataclasses.dataclass(frozen=True)
class Greedy:
    """Argmax decoding (the sampling distribution is a point mass)."""

    def transform(self, logits: jax.Array) -> jax.Array:
        best = jnp.argmax(logits, axis=-1)
        return jnp.where(jnp.arange(logits.shape[-1]) == best[..., None], 0.0, NEG_INF)

    def sample(self, rng: jax.Array, logits: jax.Array) -> jax.Array:
        del rng
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)

    def sample_with_logprobs(self, rng: jax.Array, logits: jax.Array):
        """(tokens [R], log-prob under the model [R], log-prob under the sampling distribution = 0)."""
        del rng
        m, total = logsumexp_parts(logits)
        tok = _first_index(logits == m[:, None])  # argmax's tie rule (first), without a variadic reduce
        return tok, -jnp.log(total), jnp.zeros_like(m)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Temperature, then top-k (k <= 0: off), then top-p (p >= 1: off) — the reference's order."""

    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use Greedy() for argmax), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def is_plain(self) -> bool:
        """True when the sampling distribution is the model's own (T = 1, no truncation)."""
        return self.temperature == 1.0 and self.top_k <= 0 and self.top_p >= 1.0

    def transform(self, logits: jax.Array) -> jax.Array:
        logits = logits.astype(jnp.float32)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        if self.top_k > 0 and self.top_k < logits.shape[-1]:
            kth = jax.lax.top_k(logits, self.top_k)[0][..., -1:]
            logits = jnp.where(logits < kth, NEG_INF, logits)
        if self.top_p < 1.0:
            sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
            probs = jax.nn.softmax(sorted_logits, axis=-1)
            before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly above each sorted token
            keep_sorted = before < self.top_p  # always keeps the top token
            threshold = jnp.min(jnp.where(keep_sorted, sorted_logits, jnp.inf), axis=-1, keepdims=True)
            logits = jnp.where(logits < threshold, NEG_INF, logits)
        return logits

    def sample(self, rng: jax.Array, logits: jax.Array) -> jax.Array:
        return self.sample_with_logprobs(rng, logits)[0]

    def sample_with_logprobs(self, rng: jax.Array, logits: jax.Array):
        """(tokens [R], log-prob under the model [R], log-prob under the sampling distribution [R])."""
        logits = logits.astype(jnp.float32)
        if self.is_plain:  # one max pass + one exp pass give the draw and its log-prob
            tok, m, total = draw(rng, logits)
            lp = _take(logits, tok) - m - jnp.log(total)
            return tok, lp, lp
        sampled = self.transform(logits)
        tok, ms, total_s = draw(rng, sampled)
        slp = _take(sampled, tok) - ms - jnp.log(total_s)
        m, total = logsumexp_parts(logits)
        return tok, _take(logits, tok) - m - jnp.log(total), slp


def Temperature(t: float) -> Sampling:  # reads as a method name in configs
    return Sampling(temperature=t)


def TopK(k: int, temperature: float = 1.0) -> Sampling:
    return Sampling(temperature=temperature, top_k=k)


def TopP(p: float, temperature: float = 1.0) -> Sampling:
    return Sampling(temperature=temperature, top_p=p)


SamplingMethod = Greedy | Sampling
