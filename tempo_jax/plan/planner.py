"""`tempo-jax plan`: prove a recipe fits a TPU slice before paying for it.

Compiles ahead of time, for the named TPU topology (libtpu's topology description, on this CPU
host, in a subprocess), the programs one training step runs, at the recipe's real shapes and with
its mesh, dtypes, remat and scanned layers:

* the sampler's **prefill** (first cache window) and **decode** loop (full-length cache), plus the
  **grow** copy between the last two cache windows (both caches alive);
* the **E-step** (critic update) and the **M-step** (actor update) over the whole rollout batch
  (mini-batches x micro-batches, as ``Trainer`` builds them).

For each it reports per-device HBM: parameters, optimizer state, KV cache, the other role's train
state that stays resident, and XLA's temporaries (activations), against the chip's capacity, plus
XLA's cost estimate and an analytic FLOP count (XLA counts a ``scan`` body once, so its FLOPs
undercount the layer and micro-batch loops). When something does not fit it exits non-zero and
says what to change.

    tempo-jax plan --config=configs/paper.py:qwen3_14b,tempo --topology v5p-128 [--out plan.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from tempo_jax.models.cache import cache_bytes
from tempo_jax.models.critic import Critic
from tempo_jax.models.decoder import CausalLM
from tempo_jax.models.sharding import state_shardings
from tempo_jax.models.tokenizer import stop_and_pad_ids
from tempo_jax.parallel.mesh import batch_spec, make_mesh, resolve_shape
from tempo_jax.parallel.topology import parse_topology
from tempo_jax.plan.estimates import GiB, model_config_for, shard_bytes
from tempo_jax.plan.report import finish_report, format_report, precheck, slice_fields
from tempo_jax.sampling import generate as gen
from tempo_jax.train import programs as builders
from tempo_jax.train.config import load_config, uses_critic
from tempo_jax.train.state import abstract_train_state
from tempo_jax.train.updates import ACTOR_KEYS, CRITIC_KEYS


# ============================================================================== compilation (worker)
def _abstract(tree, shardings):
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def _compile(name: str, lowered_fn) -> dict[str, Any]:
    """Lower + compile; memory and cost analysis, or the out-of-memory figure XLA reports."""
    t0 = time.perf_counter()
    print(f"compiling {name} ...", file=sys.stderr, flush=True)
    try:
        compiled = lowered_fn().compile()
    except Exception as err:  # XLA reports HBM overflow as a compile error
        text = str(err)
        if "RESOURCE_EXHAUSTED" not in text:
            raise
        m = re.search(r"required for HLO temporaries \(([\d.]+)([TGMK])\)", text)
        unit = {"T": 2**40, "G": GiB, "M": 2**20, "K": 2**10}
        line = next((ln for ln in text.splitlines() if "RESOURCE_EXHAUSTED" in ln), text.splitlines()[0])
        return {
            "name": name,
            "compiled": False,
            "temp_bytes": float(m.group(1)) * unit[m.group(2)] if m else 0.0,
            "xla_error": line[:400],
            "compile_s": round(time.perf_counter() - t0, 1),
        }
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis() or {}
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    out = {
        "name": name,
        "compiled": True,
        "compile_s": round(time.perf_counter() - t0, 1),
        "argument_bytes": mem.argument_size_in_bytes,
        "output_bytes": mem.output_size_in_bytes,
        "alias_bytes": mem.alias_size_in_bytes,
        "temp_bytes": mem.temp_size_in_bytes,
        "code_bytes": mem.generated_code_size_in_bytes,
        "xla_flops": float(cost.get("flops", 0.0)),
        "xla_bytes_accessed": float(cost.get("bytes accessed", 0.0)),
        "xla_optimal_seconds": float(cost.get("optimal_seconds", 0.0)),
    }
    return out


SAMPLER_PROGRAMS = ("prefill", "grow", "decode")
UPDATE_PROGRAMS = ("e_step", "m_step")


def _abstract_role(cfg, mc, mesh, cls, name: str):
    """(graphdef, optimizer, abstract sharded train state) of a role, built as the trainer builds it."""
    model = nnx.eval_shape(lambda: cls(mc, nnx.Rngs(0)))
    tx = builders.optimizer(cfg, name)  # the trainer's optimizer (lr 0 has the same state shapes)
    graphdef, _ = nnx.split(model, nnx.Param)
    return graphdef, tx, abstract_train_state(model, tx, mesh, mc.scan_layers)


def _replicated_key(mesh):
    key = jax.eval_shape(lambda: jax.random.key(0))
    return jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=NamedSharding(mesh, P()))


def compile_programs(cfg, topology_name: str, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Compile the step's programs for ``topology_name``; a JSON-able report (run in a subprocess)."""
    topo = parse_topology(topology_name)
    devices = topo.devices()
    mc = model_config_for(cfg)
    spec = builders.update_spec(cfg)
    shape = resolve_shape(cfg.mesh.shape, len(devices))
    mesh = make_mesh(shape, devices)
    rshape = resolve_shape(tuple(cfg.mesh.get("rollout_shape", ()) or ()) or shape, len(devices), "mesh.rollout_shape")
    rollout_mesh = mesh if rshape == shape else make_mesh(rshape, devices)
    critic_on = uses_critic(cfg)
    want = set(only or SAMPLER_PROGRAMS + UPDATE_PROGRAMS)
    if not critic_on:
        want.discard("e_step")
    actor = _abstract_role(cfg, mc, mesh, CausalLM, "actor")
    critic = _abstract_role(cfg, mc, mesh, Critic, "critic") if critic_on else None
    sizes = {
        "actor_params": shard_bytes(actor[2].params),
        "actor_opt_state": shard_bytes(actor[2].opt_state),
        "critic_params": shard_bytes(critic[2].params) if critic else 0,
        "critic_opt_state": shard_bytes(critic[2].opt_state) if critic else 0,
    }
    programs, windows, rows_gen = _sampler_programs(cfg, mc, mesh, rollout_mesh, sizes, want)
    # The sampler's resharded copy of the actor (rollout_shape) is freed before the updates (Trainer.step).
    programs.update(_update_programs(cfg, mc, mesh, actor, critic, sizes, want))
    return {
        **slice_fields(topo),
        "mesh": dict(mesh.shape),
        "rollout_mesh": dict(rollout_mesh.shape),
        "windows": windows,
        "rows": cfg.train.train_batch_size * cfg.rollout.n,
        "rows_per_generate": rows_gen,
        "micro_rows": spec.micro_rows,
        "mini_batch_rows": spec.mini_batch_rows,
        "sizes": sizes,
        "programs": programs,
        "device_kind": devices[0].device_kind,
    }


def _sampler_programs(cfg, mc, mesh, rollout_mesh, sizes: dict, want: set) -> tuple[dict, list[int], int]:
    """Prefill, cache grow and decode (unrolled layers, as ``generate`` decodes) on the rollout mesh;
    adds the sampler's parameter sizes to ``sizes``. Returns (programs, cache windows, rows per call)."""
    # The trainer's rollout settings; stop/pad ids by the one rule, without the tokenizer's part (the
    # planner has no tokenizer; the ids' values do not change the compiled shapes).
    settings = builders.rollout_settings(cfg, *stop_and_pad_ids(None, mc))
    prompts = builders.prompts_per_generate(cfg)
    plen, tlen, n = settings.prompt_len, settings.max_new_tokens, settings.n
    windows = gen.cache_windows(plen, tlen)
    kv_dtype = settings.kv_cache_dtype
    s_graphdef, s_state = nnx.split(nnx.eval_shape(lambda: CausalLM(mc.replace(scan_layers=False), nnx.Rngs(0))))
    s_state = _abstract(s_state, state_shardings(s_state, rollout_mesh, False))
    sizes["rollout_params"] = shard_bytes(s_state)
    sizes["rollout_params_copy"] = 0 if rollout_mesh is mesh else sizes["rollout_params"]
    rows_gen = prompts * n
    programs: dict[str, Any] = {}
    if not want & set(SAMPLER_PROGRAMS):
        return programs, windows, rows_gen
    batch_sh = NamedSharding(rollout_mesh, batch_spec(rollout_mesh, prompts))
    tokens = jax.ShapeDtypeStruct((prompts, plen), jnp.int32, sharding=batch_sh)
    valid = jax.ShapeDtypeStruct((prompts, plen), jnp.bool_, sharding=batch_sh)
    method, stop, pad = settings.method, settings.stop_ids, settings.pad_id
    row_shards = rollout_mesh.shape["data"] * rollout_mesh.shape["fsdp"]
    kv_heads_split = rollout_mesh.shape["tensor"] if mc.num_kv_heads % rollout_mesh.shape["tensor"] == 0 else 1
    row_split = row_shards if rows_gen % row_shards == 0 else 1

    def cache_dev(slots: int) -> int:
        return int(cache_bytes(mc, rows_gen, slots, kv_dtype) / (row_split * kv_heads_split))

    s_rng = _replicated_key(rollout_mesh)
    prefill_args = (
        s_graphdef,
        s_state,
        tokens,
        valid,
        windows[0],
        kv_dtype,
        rollout_mesh,
        n,
        tlen,
        method,
        stop,
        pad,
        False,
        s_rng,
    )
    carry0 = _sharded_carry(jax.eval_shape(gen.prefill, *prefill_args), rollout_mesh)
    if "prefill" in want:
        programs["prefill"] = _compile("prefill", lambda: gen.prefill.lower(*prefill_args))
        programs["prefill"]["kv_cache_bytes"] = cache_dev(windows[0])
    if "grow" in want and len(windows) > 1:
        prev = _carry_at(carry0, windows[-2])
        programs["grow"] = _compile("grow", lambda: gen.grow.lower(prev, windows[-1], rollout_mesh))
        programs["grow"]["kv_cache_bytes"] = cache_dev(windows[-2]) + cache_dev(windows[-1])
    if "decode" in want:
        full = _carry_at(carry0, windows[-1])
        end = jax.ShapeDtypeStruct((), jnp.int32, sharding=NamedSharding(rollout_mesh, P()))
        programs["decode"] = _compile(
            "decode", lambda: gen.decode.lower(s_graphdef, s_state, full, end, s_rng, method, stop, pad)
        )
        programs["decode"]["kv_cache_bytes"] = cache_dev(windows[-1])
    for p in programs.values():
        p["params_bytes"] = sizes["rollout_params"]
        # Resident besides the program's own arguments (the sampler's parameters): both train
        # states, except the actor's parameters when the sampler reads them in place (same mesh,
        # no scan), plus the resharded stacked copy the unrolled one is sliced from.
        in_place = rollout_mesh is mesh and not mc.scan_layers
        p["resident_bytes"] = (
            (0 if in_place else sizes["actor_params"])
            + sizes["actor_opt_state"]
            + sizes["critic_params"]
            + sizes["critic_opt_state"]
            + (sizes["rollout_params_copy"] if mc.scan_layers else 0)
        )
    return programs, windows, rows_gen


def _sharded_carry(carry, rollout_mesh):
    """The sampler's loop state with the layout ``generate`` gives it: rows over data x fsdp, the
    KV cache by its own rule, scalars replicated."""

    def carry_sharding(path, leaf):
        if leaf.ndim == 0:
            return NamedSharding(rollout_mesh, P())
        return NamedSharding(rollout_mesh, batch_spec(rollout_mesh, leaf.shape[0]))

    shardings = jax.tree_util.tree_map_with_path(carry_sharding, carry)
    shardings["cache"] = gen.cache_shardings(rollout_mesh, carry["cache"])
    return jax.tree.map(lambda x, sh: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh), carry, shardings)


def _carry_at(carry, slots: int):
    """``carry`` with its KV cache (and cache validity) resized to ``slots`` positions."""

    def resize(path, leaf):
        names = jax.tree_util.keystr(path)
        if "cache" in names and ("'valid'" in names or ".valid" in names):
            return jax.ShapeDtypeStruct(leaf.shape[:1] + (slots,), leaf.dtype, sharding=leaf.sharding)
        if "cache" in names and leaf.ndim == 4:
            return jax.ShapeDtypeStruct(leaf.shape[:2] + (slots,) + leaf.shape[3:], leaf.dtype, sharding=leaf.sharding)
        return leaf

    return jax.tree_util.tree_map_with_path(resize, carry)


def _update_programs(cfg, mc, mesh, actor, critic, sizes: dict, want: set) -> dict[str, Any]:
    """The M-step and E-step over the whole rollout batch: the trainer's own programs
    (``train.programs``), jitted on the mesh with the state donated."""
    rows, plen, tlen = (
        cfg.train.train_batch_size * cfg.rollout.n,
        cfg.data.max_prompt_tokens,
        cfg.rollout.max_new_tokens,
    )
    bsh = NamedSharding(mesh, batch_spec(mesh, rows))
    shapes = {
        "prompt_tokens": ((rows, plen), jnp.int32),
        "prompt_valid": ((rows, plen), jnp.bool_),
        "response_tokens": ((rows, tlen), jnp.int32),
        "response_mask": ((rows, tlen), jnp.bool_),
        "old_logprobs": ((rows, tlen), jnp.float32),
        "advantages": ((rows, tlen), jnp.float32),
        "values": ((rows, tlen), jnp.float32),
        "returns": ((rows, tlen), jnp.float32),
        "is_labeled": ((rows,), jnp.bool_),
    }
    batch = {k: jax.ShapeDtypeStruct(s, d, sharding=bsh) for k, (s, d) in shapes.items()}
    rng = _replicated_key(mesh)
    programs: dict[str, Any] = {}

    def update_program(name, update, state, other_bytes, keys):
        programs[name] = _compile(name, lambda: update.lower(state, {k: batch[k] for k in keys}, rng))
        programs[name]["params_bytes"] = shard_bytes(state.params)
        programs[name]["opt_state_bytes"] = shard_bytes(state.opt_state)
        programs[name]["batch_bytes"] = shard_bytes({k: batch[k] for k in keys})
        programs[name]["resident_bytes"] = other_bytes

    if "m_step" in want:
        m_step = builders.update_step(cfg, "actor", actor[0], actor[1], actor[2], mesh, mc.scan_layers)
        update_program("m_step", m_step, actor[2], sizes["critic_params"] + sizes["critic_opt_state"], ACTOR_KEYS)
    if "e_step" in want and critic:
        e_step = builders.update_step(cfg, "critic", critic[0], critic[1], critic[2], mesh, mc.scan_layers)
        update_program("e_step", e_step, critic[2], sizes["actor_params"] + sizes["actor_opt_state"], CRITIC_KEYS)
    return programs


# ============================================================================== CLI
def _load(config_path: str, overrides: list[str]):
    return load_config(config_path, overrides)  # no validate(): plan needs no checkpoint or data paths


def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--topology", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--only", default="")
    args, rest = parser.parse_known_args(argv)
    cfg = _load(args.config, rest)
    only = tuple(s for s in args.only.split(",") if s)
    report = compile_programs(cfg, args.topology, only)
    with open(args.result, "w", encoding="utf-8") as fh:
        json.dump(report, fh)
    return 0


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(
        f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f
    )
    env["JAX_PLATFORMS"] = "cpu"  # the topology is compiled for; nothing runs on a TPU here
    env.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # several planners (or tests) at once
    env.setdefault("TPU_SKIP_MDS_QUERY", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def plan(
    config_path: str,
    topology: str,
    overrides: Sequence[str] = (),
    only: tuple[str, ...] = (),
    command: str = "",
    timeout_s: float = 3600,
) -> dict:
    """Plan ``config_path`` on ``topology``: the finished report (dict). Compiles in a subprocess."""
    cfg = _load(config_path, list(overrides))
    command = command or " ".join(["tempo-jax plan", "--config", config_path, "--topology", topology, *overrides])
    early = precheck(cfg, topology)
    if early is not None:
        return finish_report(early, cfg, config_path, command)
    if importlib.util.find_spec("libtpu") is None:  # importing it here would start a TPU runtime
        raise RuntimeError(
            "tempo-jax plan compiles for TPU with libtpu: pip install libtpu (the version jax[tpu] "
            "pins), or pip install -e .[tpu]"
        )
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "report.json")
        cmd = [
            sys.executable,
            "-m",
            "tempo_jax.plan.planner",
            "--worker",
            "--config",
            config_path,
            "--topology",
            topology,
            "--result",
            result,
            "--only",
            ",".join(only),
            *overrides,
        ]
        proc = subprocess.run(cmd, env=_worker_env(), capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0 or not os.path.isfile(result):
            noise = ("WARNING", "E0000", "I0000", "W0000", "===", "learning/", "[Gloo]")
            tail = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith(noise))[-4000:]
            raise RuntimeError(f"compiling for {topology} failed:\n{tail}")
        with open(result, encoding="utf-8") as fh:
            report = json.load(fh)
    return finish_report(report, cfg, config_path, command)


def plan_parser() -> argparse.ArgumentParser:
    """The options of ``tempo-jax plan`` (besides ``--config.section.key=value`` overrides)."""
    parser = argparse.ArgumentParser(
        prog="tempo-jax plan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="a recipe, e.g. configs/paper.py:qwen3_14b,tempo")
    parser.add_argument("--topology", default="", help="TPU slice, e.g. v5p-128, v6e-64 (default: mesh.topology)")
    parser.add_argument("--out", default="", help="write the report as JSON here (default: printed only)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated subset of prefill,grow,decode,e_step,m_step to compile (default: all of them)",
    )
    return parser


def plan_main(argv: list[str] | None = None) -> int:
    """``tempo-jax plan --config <recipe> --topology <slice> [--out file.json] [--config.x=y ...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--worker":
        return _worker(argv[1:])
    parser = plan_parser()
    args, rest = parser.parse_known_args(argv)
    bad = [a for a in rest if not a.startswith("--config.")]
    if bad:
        parser.error(f"unrecognised arguments: {' '.join(bad)}")
    topology = args.topology or _load(args.config, rest).mesh.get("topology", "")
    if not topology:
        parser.error("give --topology (the recipe names none in mesh.topology)")
    command = " ".join(
        [
            "tempo-jax plan",
            "--config",
            args.config,
            "--topology",
            topology,
            *(["--out", args.out] if args.out else []),
            *rest,
        ]
    )
    report = plan(args.config, topology, rest, tuple(s for s in args.only.split(",") if s), command)
    print(format_report(report))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
        print(f"report: {args.out}")
    return 0 if report["fits"] else 1


if __name__ == "__main__":
    sys.exit(plan_main())
