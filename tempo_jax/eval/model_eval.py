"""Model-driven evaluation: the runner's callables built on the sampler, a critic and the grader.

    results = evaluate_model(actor, tokenizer, ["aime24", "aime25"], out_dir="eval_out",
                             n=16, max_new_tokens=16384, critic=critic)   # {name: EvalResult}

* :func:`make_sample_fn` -- ``sample_fn(prompts, n)`` for :func:`tempo_jax.eval.runner.evaluate`
  on :func:`tempo_jax.sampling.engines.sample`. Prompts go through the sampler in groups of
  ``batch_prompts`` padded to one fixed width (the last group is filled with copies that are
  dropped), so a dataset compiles prefill/decode once. Row ``i * n + j`` is sample j of prompt i.
  Sampling keys are ``fold_in(key(seed), call_index)``: a run is reproducible for a given
  ``seed`` and ``batch_prompts``. Samples stop and pad where rollouts do
  (:func:`tempo_jax.models.tokenizer.stop_and_pad_ids`).
* :func:`make_value_fn` -- V_T of every response from the critic, on the sampled token ids
  (no decode/re-encode round trip): the value at the position *before* the response's last
  token, V(x, y_<T) (TEMPO_SPEC §1.3/§3.1). Attached to the samples as ``"value"``.
* :func:`make_grader_fn` -- ``(correct, extracted)`` from a rule-based ``Grader``.
* :func:`evaluate_model` / :func:`eval_main` -- datasets in, per-dataset outputs of
  :meth:`EvalResult.write` plus ``results.md`` (one table over the datasets), ``results.json``
  and ``pass_at_k.png`` out. Defaults follow the reference protocol (n=16, T=1.0, top_p=1.0).

Prompt length (``max_prompt_tokens``): ``prompt_policy="filter"`` drops over-long questions
before sampling (their count is logged and reported as ``prompts_filtered`` in the metrics and
``results.md``), ``"left_truncate"`` keeps their last tokens (``prompts_truncated``), ``"error"``
raises.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from tempo_jax import storage
from tempo_jax.data.templates import PromptTemplate, encode_prompts, encode_records, get_template
from tempo_jax.data.tfds_builders import NAMED_DATASETS, load_records
from tempo_jax.eval import metrics as M
from tempo_jax.eval import plots
from tempo_jax.eval.runner import EvalResult, evaluate, json_safe
from tempo_jax.eval.tables import AVERAGE_NOTE, results_tables
from tempo_jax.models.decoder import prompt_response_inputs, shift_to_response_tokens
from tempo_jax.models.hf_io import from_hf
from tempo_jax.models.tokenizer import check_vocab, load_tokenizer, stop_and_pad_ids
from tempo_jax.parallel.distributed import is_primary
from tempo_jax.parallel.mesh import batch_sharding, to_host
from tempo_jax.rewards.grader import Grader
from tempo_jax.rewards.tasks import get_task
from tempo_jax.rl.advantages import value_at_last_token
from tempo_jax.sampling.engines import sample
from tempo_jax.sampling.methods import Greedy, Sampling
from tempo_jax.sampling.padding import bucket_length, left_pad

log = logging.getLogger(__name__)

DEFAULT_BATCH_PROMPTS = 8


# ----------------------------------------------------------------------------- helpers


def _split(model) -> tuple[Any, Any]:
    return nnx.split(model) if isinstance(model, nnx.Module) else tuple(model)


def _model_cfg(graphdef, state):
    return nnx.merge(graphdef, state).cfg


def _stop_and_pad(tokenizer, cfg, stop_ids: Sequence[int] | None) -> tuple[tuple[int, ...], int]:
    """The rollouts' stop and pad ids (:func:`~tempo_jax.models.tokenizer.stop_and_pad_ids`);
    ``stop_ids`` replace the stop ids when given."""
    stops, pad = stop_and_pad_ids(tokenizer, cfg)
    if stop_ids is not None:
        return tuple(int(s) for s in stop_ids), pad
    if not stops:
        raise ValueError(
            "no stop token: neither the tokenizer nor the model config declares an eos id; "
            "every sample would run to max_new_tokens"
        )
    return stops, pad


def _put(x: np.ndarray, mesh: Mesh | None):
    """Rows over the mesh's batch axes (every input of a jitted call on the mesh, so none is a
    single-device array next to arrays that span other processes)."""
    if mesh is None or x.ndim < 1:
        return jnp.asarray(x)
    return jax.device_put(x, batch_sharding(mesh, x.shape))


def _decode(tokenizer, tokens: np.ndarray, lengths: np.ndarray) -> list[str]:
    vocab = len(tokenizer)
    seqs = [[int(t) for t in row[:n] if 0 <= t < vocab] for row, n in zip(tokens, lengths)]
    return list(tokenizer.batch_decode(seqs, skip_special_tokens=True))


# ----------------------------------------------------------------------------- critic values


@functools.partial(jax.jit, static_argnums=(0,))
def _final_values(graphdef, state, prompt_tokens, prompt_valid, response_tokens, lengths):
    """V_T [R]: the critic's value at the position before each response's last token."""
    critic = nnx.merge(graphdef, state)
    plen, tlen = prompt_tokens.shape[1], response_tokens.shape[1]
    values = critic(*prompt_response_inputs(prompt_tokens, prompt_valid, response_tokens))
    per_token = shift_to_response_tokens(values, plen, tlen)  # V_t = V(x, y_<t)
    return value_at_last_token(per_token, jnp.arange(tlen)[None, :] < lengths[:, None])


def make_value_fn(critic, *, rows_per_call: int | None = None, mesh: Mesh | None = None) -> Callable:
    """``value_fn(prompt_tokens [R, P], prompt_valid [R, P], response_tokens [R, T], lengths [R]) -> V_T [R]``.
    ``critic`` is a :class:`~tempo_jax.models.critic.Critic` (or its ``(graphdef, state)``).
    The critic runs on fixed ``[rows_per_call, P + T]`` blocks (default: all R rows at once; the
    last block is padded with copies), so equal-shaped calls compile once.
    """
    graphdef, state = _split(critic)
    if rows_per_call is not None and rows_per_call < 1:
        raise ValueError(f"rows_per_call must be >= 1, got {rows_per_call}")

    def value_fn(prompt_tokens, prompt_valid, response_tokens, lengths) -> np.ndarray:
        prompt_tokens, prompt_valid = np.asarray(prompt_tokens, np.int32), np.asarray(prompt_valid, bool)
        response_tokens, lengths = np.asarray(response_tokens, np.int32), np.asarray(lengths, np.int32)
        rows = prompt_tokens.shape[0]
        block = rows_per_call or rows
        out = []
        for start in range(0, rows, block):
            idx = np.arange(start, start + block)
            idx = np.minimum(idx, rows - 1)  # pad the last block with copies of the last row
            v = _final_values(
                graphdef,
                state,
                _put(prompt_tokens[idx], mesh),
                _put(prompt_valid[idx], mesh),
                _put(response_tokens[idx], mesh),
                _put(lengths[idx], mesh),
            )
            out.append(np.asarray(to_host(v), np.float64)[: min(block, rows - start)])  # gathers other hosts' rows
        return np.concatenate(out) if out else np.zeros((0,), np.float64)

    return value_fn


# ----------------------------------------------------------------------------- sampling


def make_sample_fn(
    actor,
    tokenizer,
    *,
    max_new_tokens: int,
    method: Greedy | Sampling = Sampling(),
    batch_prompts: int = DEFAULT_BATCH_PROMPTS,
    seed: int = 0,
    template: str | PromptTemplate | None = None,
    max_prompt_tokens: int | None = None,
    prompt_policy: str = "error",
    prompt_width: int | None = None,
    min_bucket: int = 16,
    mesh: Mesh | None = None,
    value_fn: Callable | None = None,
    kv_cache_dtype: str | None = None,
    engine: str = "static",
    decode_slots: int = 0,
    return_tokens: bool = False,
    stop_ids: Sequence[int] | None = None,
) -> Callable:
    """The runner's ``sample_fn(prompts: list[str], n) -> [Q][n] sample dicts`` on the rollout
    engine (:func:`~tempo_jax.sampling.engines.sample`).

    Each sample: ``text`` (decoded with ``skip_special_tokens=True``), ``length`` (response
    tokens, the stop token included), ``finish_reason`` (``"eos"``: a stop token, ``"length"``:
    ``max_new_tokens``), ``value`` (V_T, when ``value_fn`` from :func:`make_value_fn` is given)
    and, with ``return_tokens``, ``tokens``/``prompt_tokens`` (id lists).

    Args:
      actor: a ``CausalLM`` or its ``(graphdef, state)``.
      template: ``None``: the strings are rendered prompts (the usual case; :func:`evaluate_model`
        renders them); else each string is a problem rendered with this template first.
      max_prompt_tokens, prompt_policy: prompts longer than ``max_prompt_tokens`` raise
        (``"error"``) or keep their last tokens (``"left_truncate"``).
      prompt_width: the fixed left-padded prompt width (one compiled shape); default the
        power-of-two bucket (>= ``min_bucket``) of each call's longest prompt.
      stop_ids: default those rollouts stop at (:func:`~tempo_jax.models.tokenizer.stop_and_pad_ids`:
        the model config's eos ids, the tokenizer's eos and ``<|im_end|>``).
    """
    if prompt_policy not in ("error", "left_truncate"):
        raise ValueError(
            f"make_sample_fn: prompt_policy must be 'error' or 'left_truncate' (filter whole "
            f"questions before sampling, as evaluate_model does), got {prompt_policy!r}"
        )
    if batch_prompts < 1 or max_new_tokens < 1:
        raise ValueError(f"need batch_prompts >= 1 and max_new_tokens >= 1, got {batch_prompts}, {max_new_tokens}")
    graphdef, state = _split(actor)
    cfg = _model_cfg(graphdef, state)
    check_vocab(tokenizer, cfg.vocab_size)
    stops, pad = _stop_and_pad(tokenizer, cfg, stop_ids)
    tpl = get_template(template) if template is not None else None
    base_key = jax.random.key(seed)
    calls = [0]

    def sample_fn(prompts: list[str], n: int) -> list[list[dict]]:
        if not prompts:
            return []
        texts = [tpl.render(p, tokenizer) for p in prompts] if tpl is not None else list(prompts)
        enc = encode_prompts(texts, tokenizer, max_prompt_len=max_prompt_tokens, policy=prompt_policy)
        ids = enc.input_ids
        longest = max(len(x) for x in ids)
        width = prompt_width if prompt_width is not None else bucket_length(longest, min_bucket)
        if longest > width:
            raise ValueError(f"a prompt has {longest} tokens, more than prompt_width={width}")
        results: list[list[dict]] = []
        for start in range(0, len(ids), batch_prompts):
            group = ids[start : start + batch_prompts]
            real = len(group)
            group = group + [group[-1]] * (batch_prompts - real)  # fixed batch shape
            tokens, valid = left_pad(group, pad, min_bucket, length=width)
            rng = jax.random.fold_in(base_key, calls[0])
            calls[0] += 1
            out = sample(
                (graphdef, state),
                (tokens, valid),
                n=n,
                max_new_tokens=max_new_tokens,
                method=method,
                stop_ids=stops,
                pad_id=pad,
                rng=rng,
                kv_cache_dtype=kv_cache_dtype,
                mesh=mesh,
                min_bucket=min_bucket,
                engine=engine,
                slots=decode_slots or None,
            )
            keep = real * n  # rows of the real prompts come first (row i*n+j)
            decoded = _decode(tokenizer, out.tokens[:keep], out.lengths[:keep])
            values = None
            if value_fn is not None:
                values = np.asarray(value_fn(out.prompt_tokens, out.prompt_valid, out.tokens, out.lengths))[:keep]
            reasons = out.finish_reasons
            for i in range(real):
                samples = []
                for j in range(n):
                    r = i * n + j
                    s = {"text": decoded[r], "length": int(out.lengths[r]), "finish_reason": reasons[r]}
                    if values is not None:
                        s["value"] = float(values[r])
                    if return_tokens:
                        s["tokens"] = out.tokens[r, : out.lengths[r]].tolist()
                        s["prompt_tokens"] = out.prompt_tokens[r][out.prompt_valid[r]].tolist()
                    samples.append(s)
                results.append(samples)
        return results

    return sample_fn


# ----------------------------------------------------------------------------- grading


def make_grader_fn(grader) -> Callable[..., tuple[np.ndarray, list]]:
    """``grader_fn(responses, answers, data_sources=None) -> (correct bool [N], extracted [N])`` for
    the runner. ``grader`` is a :class:`tempo_jax.rewards.Grader`: each row is graded, and its
    answer extracted, by the task its ``data_source`` names (math when there is none), as in training.
    """

    def grader_fn(responses, answers, data_sources=None):
        sources = list(data_sources) if data_sources is not None else [None] * len(responses)
        tasks = grader.tasks_for(sources)
        correct = np.asarray(grader.grade(list(responses), list(answers), tasks), dtype=bool)
        return correct, [get_task(task).extract(r) for task, r in zip(tasks, responses)]

    grader_fn.takes_data_sources = True  # type: ignore[attr-defined]  # the runner passes each row's data_source
    return grader_fn


# ----------------------------------------------------------------------------- datasets -> results


def _dataset_label(spec: str) -> str:
    if spec in NAMED_DATASETS:
        return spec
    stem = os.path.basename(os.fspath(spec))
    for suffix in (".jsonl", ".json", ".parquet"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem or "eval"


def _dataset_seed(seed: int, name: str) -> int:
    """Per-dataset sampling seed: independent of the order the datasets are listed in."""
    return int((seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**31))


def evaluate_model(
    actor,
    tokenizer,
    datasets: Sequence[str] | str,
    *,
    out_dir: str | os.PathLike,
    n: int = 16,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = -1,
    critic=None,
    data_dir: str | os.PathLike | None = None,
    tfds_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    seed: int = 0,
    template: str | PromptTemplate = "qwen3",
    grader=None,
    batch_prompts: int | None = None,
    max_prompt_tokens: int | None = None,
    prompt_policy: str = "filter",
    ks: Sequence[int] = M.DEFAULT_KS,
    mesh: Mesh | None = None,
    kv_cache_dtype: str | None = None,
    engine: str = "static",
    decode_slots: int = 0,
    value_rows_per_call: int | None = None,
    min_bucket: int = 16,
    greedy: bool = False,
    plot: bool = True,
    model_name: str | None = None,
) -> dict[str, EvalResult]:
    """Evaluate ``actor`` (and ``critic``) on each dataset; write outputs under ``out_dir``.

    Args:
      datasets: named datasets (``aime24``, ``math500``, ...) or JSONL/JSON/Parquet paths, as a
        list or a comma-separated string; each is read with
        :func:`tempo_jax.data.tfds_builders.load_records` (``data_dir``/``tfds_dir``).
      limit: evaluate the first ``limit`` questions of each dataset (``None``/0: all).
      grader: a ``Grader`` (used, not closed), a ``grader_fn(responses, answers) -> (correct,
        extracted)`` callable, or ``None`` (a ``Grader(num_workers=2, timeout_s=5.0)`` is made and closed).
      batch_prompts: prompts per sampler call (default ``min(8, len(dataset))``); rows = batch_prompts * n.
      greedy: argmax decoding instead of sampling (the reference never uses it; for debugging).
      engine, decode_slots: the rollout engine (``static`` or ``continuous`` with that many decode
        slots, 0: its default) (:func:`~tempo_jax.sampling.engines.sample`).
    Writes ``<name>_samples.jsonl``, ``<name>_results.md``, ``<name>_summary.json``,
    ``<name>_pass_at_k.png`` per dataset, and ``results.md``, ``results.json``, ``pass_at_k.png``.
    Returns ``{name: EvalResult}`` in the order given.

    Multi-process (parameters on a ``mesh`` spanning several processes): call it on every process;
    sampling is a collective and every process gets the same gathered results, but only the
    primary process writes files.
    """

    datasets, names = _check_eval_args(datasets, limit, prompt_policy)
    method = Greedy() if greedy else Sampling(temperature=temperature, top_k=top_k, top_p=top_p)
    tpl = get_template(template)
    value_fn = make_value_fn(critic, rows_per_call=value_rows_per_call, mesh=mesh) if critic is not None else None
    out = storage.as_path(out_dir)
    write = is_primary()
    if write:
        out.mkdir(parents=True, exist_ok=True)
    own_grader = Grader(num_workers=2, timeout_s=5.0) if grader is None else None
    grader = own_grader or grader
    grader_fn = make_grader_fn(grader) if hasattr(grader, "grade") else grader
    sampling: dict[str, Any] = dict(  # the sampling settings, the same for every dataset
        max_new_tokens=max_new_tokens,
        method=method,
        max_prompt_tokens=max_prompt_tokens,
        prompt_policy=prompt_policy,
        min_bucket=min_bucket,
        mesh=mesh,
        value_fn=value_fn,
        kv_cache_dtype=kv_cache_dtype,
        engine=engine,
        decode_slots=decode_slots,
    )
    results: dict[str, EvalResult] = {}
    try:
        for spec, name in zip(datasets, names):
            t0 = time.perf_counter()
            records = load_records(spec, data_dir=data_dir, tfds_dir=tfds_dir)
            res = _evaluate_records(
                records[:limit] if limit else records,
                name,
                actor,
                tokenizer,
                tpl,
                grader_fn,
                n=n,
                ks=ks,
                batch_prompts=batch_prompts,
                seed=seed,
                **sampling,
            )
            res.seconds = time.perf_counter() - t0
            if write:
                res.write(out, name, plot=plot)
            results[name] = res
            m = res.metrics
            log.info(
                "%s: avg@%d %.3f, pass@%d %.3f (%d questions, %.1fs)",
                name,
                n,
                m.get(f"avg@{n}", math.nan),
                max(res.ks),
                m.get(f"pass@{max(res.ks)}", math.nan),
                len(res.per_question),
                res.seconds,
            )
    finally:
        if own_grader is not None:
            own_grader.close()

    settings = {
        "model": model_name,
        "n": n,
        "max_new_tokens": max_new_tokens,
        "method": "greedy" if greedy else {"temperature": temperature, "top_p": top_p, "top_k": top_k},
        "seed": seed,
        "template": tpl.name,
        "max_prompt_tokens": max_prompt_tokens,
        "prompt_policy": prompt_policy,
        "limit": limit or None,
        "critic": critic is not None,
    }
    if write:
        write_combined(results, out, settings, plot=plot)
    return results


def _check_eval_args(datasets: Sequence[str] | str, limit: int | None, prompt_policy: str):
    """(datasets as a list, their output names); ``ValueError`` for arguments that cannot work."""
    if isinstance(datasets, str):
        datasets = [s.strip() for s in datasets.split(",") if s.strip()]
    if not datasets:
        raise ValueError("evaluate_model: no datasets given")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 (0 or None: all questions), got {limit}")
    if prompt_policy not in ("filter", "left_truncate", "error"):
        raise ValueError(f"prompt_policy must be 'filter', 'left_truncate' or 'error', got {prompt_policy!r}")
    names = [_dataset_label(d) for d in datasets]
    if len(set(names)) != len(names):
        raise ValueError(f"two datasets share the output name: {names}")
    return list(datasets), names


def _evaluate_records(
    records: list[dict],
    name: str,
    actor,
    tokenizer,
    tpl: PromptTemplate,
    grader_fn,
    *,
    n: int,
    ks: Sequence[int],
    batch_prompts: int | None,
    seed: int,
    max_new_tokens: int,
    method,
    max_prompt_tokens: int | None,
    prompt_policy: str,
    min_bucket: int,
    mesh,
    value_fn,
    kv_cache_dtype: str | None,
    engine: str,
    decode_slots: int,
) -> EvalResult:
    """One dataset: prompts encoded as training encodes them, sampled n times each, graded."""
    questions, enc = encode_records(records, tokenizer, tpl, max_prompt_len=max_prompt_tokens, policy=prompt_policy)
    if enc.n_filtered:
        log.warning(
            "%s: %d of %d questions are longer than max_prompt_tokens=%s and are not evaluated",
            name,
            enc.n_filtered,
            len(records),
            max_prompt_tokens,
        )
    if not questions:
        raise ValueError(
            f"{name}: no question fits max_prompt_tokens={max_prompt_tokens} "
            f"({enc.n_filtered} filtered); raise it or use prompt_policy='left_truncate'"
        )
    bp = min(batch_prompts or DEFAULT_BATCH_PROMPTS, len(questions))
    sample_fn = make_sample_fn(
        _split(actor),
        tokenizer,
        max_new_tokens=max_new_tokens,
        method=method,
        batch_prompts=bp,
        seed=_dataset_seed(seed, name),
        template=None,
        max_prompt_tokens=max_prompt_tokens,
        prompt_policy="left_truncate" if prompt_policy == "left_truncate" else "error",
        prompt_width=bucket_length(max(enc.lengths), min_bucket),
        min_bucket=min_bucket,
        mesh=mesh,
        value_fn=value_fn,
        kv_cache_dtype=kv_cache_dtype,
        engine=engine,
        decode_slots=decode_slots,
    )
    res = evaluate(
        questions, sample_fn, grader_fn, n=n, ks=ks, prompt_fn=lambda q: q["prompt"], chunk_size=bp, dataset_name=name
    )
    res.metrics.update({"prompts_filtered": enc.n_filtered, "prompts_truncated": enc.n_truncated})
    return res


def write_combined(
    results: Mapping[str, EvalResult], out_dir: str | os.PathLike, settings: Mapping[str, Any], *, plot: bool = True
) -> dict[str, storage.Path]:
    """``results.md`` (a row per dataset, per-benchmark and per-task rows where a benchmark has several
    tasks or datasets, the average over benchmarks: :func:`tempo_jax.eval.tables.results_tables`; plus
    settings), ``results.json`` and ``pass_at_k.png``."""
    out = storage.as_path(out_dir)
    paths = {"table": out / "results.md", "json": out / "results.json"}
    tables, grouped = results_tables(results)
    lines = ["# Evaluation results", "", *tables]
    lines.append("- settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None))
    for k, r in results.items():
        dropped = r.metrics.get("prompts_filtered", 0)
        cut = r.metrics.get("prompts_truncated", 0)
        if dropped or cut:
            lines.append(f"- {k}: {dropped} over-long questions not evaluated, {cut} prompts left-truncated")
    lines.append(
        "- accuracy columns in %; avg@n = mean accuracy over n samples per question (the paper's "
        "mean@16); pass@k unbiased; per-dataset details in <dataset>_results.md"
    )
    if grouped["average"]:
        lines.append(f"- {AVERAGE_NOTE}")
    paths["table"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    doc = {
        "settings": dict(settings),
        "datasets": {k: {"metrics": r.metrics, "seconds": r.seconds} for k, r in results.items()},
        **grouped,
    }
    paths["json"].write_text(json.dumps(json_safe(doc), indent=1, ensure_ascii=False), encoding="utf-8")
    if plot and any(r.pass_at_k for r in results.values()):
        paths["pass_at_k_png"] = plots.plot_pass_at_k(
            {k: r.pass_at_k for k, r in results.items() if r.pass_at_k}, out / "pass_at_k.png", title="pass@k"
        )
    return paths


def eval_main(
    hf_dir: str | os.PathLike,
    datasets: Sequence[str] | str,
    out_dir: str | os.PathLike,
    *,
    critic_dir: str | os.PathLike | None = None,
    tokenizer_path: str | os.PathLike | None = None,
    mesh: Mesh | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, EvalResult]:
    """Load a Hugging Face actor directory (+ an optional critic directory) and its tokenizer
    (from ``hf_dir`` unless ``tokenizer_path`` is given), then :func:`evaluate_model`.

    ``model_overrides`` set ModelConfig fields at load (e.g. ``dtype="bfloat16"``); other keyword
    arguments go to :func:`evaluate_model` (``max_new_tokens`` is required).
    """

    overrides = dict(model_overrides or {})
    tokenizer = load_tokenizer(tokenizer_path or hf_dir)
    actor = from_hf(hf_dir, mesh=mesh, **overrides)
    critic = from_hf(critic_dir, critic=True, mesh=mesh, **overrides) if critic_dir else None
    kwargs.setdefault("model_name", str(hf_dir))
    results = evaluate_model(actor, tokenizer, datasets, out_dir=out_dir, critic=critic, mesh=mesh, **kwargs)
    log.info("wrote %s", storage.as_path(out_dir) / "results.md")
    return results
