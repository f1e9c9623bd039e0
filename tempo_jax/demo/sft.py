"""Stage 0: supervised warm start (next-token cross-entropy on prompt + solution).

The loss is the token mean of ``-log p(y_t | x, y_<t)`` over the *solution* tokens only (the
prompt is context, never a target); every solution ends with the tokenizer's EOS, so the model
learns to stop. Sequences are right-padded once to a fixed length (a multiple of 16), so the
jitted step compiles once. The step is a pure function of the parameters and the optimizer
state of an ``nnx.split`` model and donates both.

    model, metrics = sft_train(model, tokenizer, records, steps=300, batch_size=32, lr=3e-3, seed=0)

``records`` carry ``problem`` and ``solution`` (the task schema, see ``tempo_jax.demo.tasks``);
``prompt_fn`` renders a problem into the prompt string (ChatML by default).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from tempo_jax.demo.tasks.arithmetic import format_prompt
from tempo_jax.models.decoder import CausalLM

LogFn = Callable[[int, dict], None]


@dataclasses.dataclass
class SFTData:
    """Right-padded sequences: ``targets[i, t]`` marks solution tokens (predicted from t-1)."""

    tokens: np.ndarray  # [N, L] int32
    valid: np.ndarray  # [N, L] bool
    targets: np.ndarray  # [N, L] bool, True on solution tokens (EOS included)

    @property
    def num_target_tokens(self) -> int:
        return int(self.targets.sum())


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def encode_sft(
    records: Sequence[dict],
    tokenizer,
    *,
    prompt_fn: Callable[[str], str] = format_prompt,
    max_len: int | None = None,
    pad_multiple: int = 16,
) -> SFTData:
    """Tokenise ``prompt_fn(problem)`` and ``solution + eos``; pad every row to one length.

    The prompt and the completion are tokenised separately (so the boundary is exact) and
    concatenated. Rows longer than ``max_len`` raise (silently truncated solutions would teach
    the model to stop without an answer).
    """
    if not records:
        raise ValueError("no SFT records given")
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    if eos_id is None:
        raise ValueError("the tokenizer has no eos token; SFT needs one to teach stopping")
    prompts = [prompt_fn(r["problem"]) for r in records]
    solutions = [r["solution"] for r in records]
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    s_ids = tokenizer(solutions, add_special_tokens=False)["input_ids"]
    rows = [(list(p), list(s) + [eos_id]) for p, s in zip(p_ids, s_ids)]
    longest = max(len(p) + len(s) for p, s in rows)
    if max_len is not None and longest > max_len:
        raise ValueError(f"an SFT example has {longest} tokens > max_len={max_len}; raise max_len or drop it")
    length = max_len if max_len is not None else _round_up(longest, pad_multiple)
    n = len(rows)
    tokens = np.full((n, length), pad_id, np.int32)
    valid = np.zeros((n, length), bool)
    targets = np.zeros((n, length), bool)
    for i, (p, s) in enumerate(rows):
        seq = p + s
        tokens[i, : len(seq)] = seq
        valid[i, : len(seq)] = True
        targets[i, len(p) : len(seq)] = True
    return SFTData(tokens, valid, targets)


def _token_stats(model: CausalLM, tokens, valid, targets):
    """Per-position NLL, argmax hits and target mask of the solution tokens ([N, L-1] each)."""
    logits, _ = model(tokens, None, valid)
    logits = logits[:, :-1]
    nxt = tokens[:, 1:]
    mask = targets[:, 1:].astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, nxt[..., None], axis=-1)[..., 0]
    hits = (jnp.argmax(logits, axis=-1) == nxt).astype(jnp.float32)
    return nll, hits, mask


def sft_loss(model: CausalLM, tokens, valid, targets):
    """(sum of solution-token NLL, number of solution tokens, number of correct argmaxes)."""
    nll, hits, mask = _token_stats(model, tokens, valid, targets)
    return jnp.sum(nll * mask), jnp.sum(mask), jnp.sum(hits * mask)


def _eval_step(graphdef, params, rest, tokens, valid, targets):
    """Held-out token-mean loss and exact match: the share of rows whose every solution token
    is the argmax under teacher forcing -- exactly the rows greedy decoding reproduces."""
    nll, hits, mask = _token_stats(nnx.merge(graphdef, params, rest), tokens, valid, targets)
    exact = jnp.all((hits > 0) | (mask == 0), axis=-1)
    return {"loss": jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1.0), "exact_match": jnp.mean(exact)}


def _train_step(graphdef, tx, params, rest, opt_state, tokens, valid, targets):
    def loss_fn(p):
        model = nnx.merge(graphdef, p, rest)
        total, count, hits = sft_loss(model, tokens, valid, targets)
        denom = jnp.maximum(count, 1.0)
        return total / denom, hits / denom

    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, {"loss": loss, "token_acc": acc, "grad_norm": optax.tree.norm(grads)}


def make_schedule(lr: float, steps: int, warmup_steps: int, final_lr_fraction: float = 0.1) -> optax.Schedule:
    """Linear warm-up, then cosine decay to ``final_lr_fraction * lr``."""
    warmup_steps = min(warmup_steps, max(steps - 1, 0))
    decay = optax.cosine_decay_schedule(lr, max(steps - warmup_steps, 1), alpha=final_lr_fraction)
    if warmup_steps <= 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup_steps), decay], [warmup_steps])


def batch_indices(n: int, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """[steps, batch_size] row indices: concatenated seeded permutations (epochs)."""
    rng = np.random.default_rng(seed)
    need = steps * batch_size
    order = np.concatenate([rng.permutation(n) for _ in range(-(-need // n))])
    return order[:need].reshape(steps, batch_size)


def sft_train(
    model: CausalLM,
    tokenizer,
    records: Sequence[dict],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    log_fn: LogFn | None = None,
    *,
    prompt_fn: Callable[[str], str] = format_prompt,
    warmup_steps: int | None = None,
    weight_decay: float = 0.01,
    grad_clip: float = 1.0,
    final_lr_fraction: float = 0.1,
    max_len: int | None = None,
    eval_records: Sequence[dict] | None = None,
    eval_every: int = 100,
    stop_at_exact_match: float | None = None,
) -> tuple[CausalLM, dict]:
    """Supervised warm start; returns the trained model (updated in place) and metrics.

    With ``eval_records``, every ``eval_every`` steps (and after the last) the held-out loss and
    exact match (the share of solutions greedy decoding reproduces token for token, see
    :func:`_eval_step`; stricter than final-answer accuracy) are recorded in ``metrics["eval"]``;
    with ``stop_at_exact_match`` training stops at the first evaluation reaching it ("train to
    a competence, not a step count": the step at which a small model learns arithmetic varies
    a lot with the seed). The schedule is laid out for ``steps``, which is then a cap.

    ``metrics`` holds per-step lists ``loss``, ``token_acc``, ``grad_norm``, ``lr`` and the totals
    ``seconds`` (wall time including the one compile), ``compile_seconds`` (first step),
    ``seq_len``, ``num_records``, ``target_tokens_per_step`` (mean), ``steps_run``.
    ``log_fn(step, row)`` is called after every step with that step's scalars (plus
    ``eval_loss``/``eval_exact_match`` on evaluation steps).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"need steps >= 1 and batch_size >= 1, got steps={steps}, batch_size={batch_size}")
    data = encode_sft(records, tokenizer, prompt_fn=prompt_fn, max_len=max_len)
    warmup = warmup_steps if warmup_steps is not None else max(1, steps // 20)
    schedule = make_schedule(lr, steps, warmup, final_lr_fraction)
    tx = optax.chain(
        optax.clip_by_global_norm(grad_clip) if grad_clip > 0 else optax.identity(),
        optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=weight_decay),
    )
    # flax types split() with two or more filters as a variadic tuple; with two it returns exactly three
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]
    params = jax.tree.map(jnp.copy, params)  # donated below; the caller's arrays stay intact on failure
    opt_state = tx.init(params)
    step_fn = jax.jit(functools.partial(_train_step, graphdef, tx), donate_argnums=(0, 2))
    idx = batch_indices(len(data.tokens), steps, batch_size, seed)
    metrics: dict = {"loss": [], "token_acc": [], "grad_norm": [], "lr": [], "eval": []}
    if stop_at_exact_match is not None and not eval_records:
        raise ValueError("stop_at_exact_match needs eval_records")
    held = None
    if eval_records:
        held = encode_sft(eval_records, tokenizer, prompt_fn=prompt_fn, max_len=max_len)
        eval_fn = jax.jit(functools.partial(_eval_step, graphdef))
    start = time.perf_counter()
    compile_s = 0.0
    n_target = 0
    for step in range(steps):
        rows = idx[step]
        t0 = time.perf_counter()
        params, opt_state, out = step_fn(
            params, rest, opt_state, data.tokens[rows], data.valid[rows], data.targets[rows]
        )
        out = jax.device_get(out)  # also blocks: one step in flight at a time
        if step == 0:
            compile_s = time.perf_counter() - t0
        row = {k: float(v) for k, v in out.items()}
        row["lr"] = float(schedule(step))
        for k, v in row.items():
            metrics[k].append(v)
        n_target += int(data.targets[rows].sum())
        stop = False
        if held is not None and ((step + 1) % eval_every == 0 or step == steps - 1):
            ev = {
                k: float(v)
                for k, v in jax.device_get(eval_fn(params, rest, held.tokens, held.valid, held.targets)).items()
            }
            metrics["eval"].append({"step": step + 1, **ev})
            row.update(eval_loss=ev["loss"], eval_exact_match=ev["exact_match"])
            stop = stop_at_exact_match is not None and ev["exact_match"] >= stop_at_exact_match
        if log_fn is not None:
            log_fn(step, row)
        if stop:
            break
    nnx.update(model, params)
    metrics.update(
        seconds=time.perf_counter() - start,
        compile_seconds=compile_s,
        seq_len=int(data.tokens.shape[1]),
        num_records=len(data.tokens),
        target_tokens_per_step=n_target / len(metrics["loss"]),
        steps_run=len(metrics["loss"]),
    )
    return model, metrics
