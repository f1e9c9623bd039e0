"""The planner's verdict: fit per program against the chip's HBM, time estimates, what to change
when something does not fit, and the text table ``tempo-jax plan`` prints."""

from __future__ import annotations

import dataclasses

from tempo_jax.models.attention_kernels import resolve as resolve_attention
from tempo_jax.parallel.topology import parse_topology
from tempo_jax.plan.estimates import HEADROOM, GiB, analytic_flops, model_config_for
from tempo_jax.train import programs as builders
from tempo_jax.train.config import uses_critic


def _peak(p: dict) -> float:
    if not p.get("compiled"):
        return (
            p["temp_bytes"]
            + p.get("params_bytes", 0)
            + p.get("opt_state_bytes", 0)
            + p.get("kv_cache_bytes", 0)
            + p.get("batch_bytes", 0)
            + p.get("resident_bytes", 0)
        )
    own = p["argument_bytes"] + p["output_bytes"] - p["alias_bytes"] + p["temp_bytes"]
    return own + p.get("resident_bytes", 0)


def suggestions(report: dict, cfg) -> list[str]:
    """What to change for the programs that do not fit."""
    out: list[str] = []
    cap = report["chip"]["hbm_gib"] * GiB * HEADROOM
    mesh = report["mesh"]
    sizes = report["sizes"]
    states = sizes["actor_params"] + sizes["actor_opt_state"] + sizes["critic_params"] + sizes["critic_opt_state"]
    bigger = _bigger_slice(report)
    if states > 0.6 * cap:
        out.append(
            f"the train states alone take {states / GiB:.1f} GiB per chip: shard them over more chips "
            f"(mesh.shape with a larger fsdp axis on a bigger slice, e.g. --topology {bigger})"
        )
    for name, p in report["programs"].items():
        if p["fits"] or name == "train_states":
            continue
        if name in ("decode", "grow", "prefill"):
            ppg = builders.prompts_per_generate(cfg)
            if ppg > 1:
                out.append(
                    f"{name}: the KV cache takes {p.get('kv_cache_bytes', 0) / GiB:.1f} GiB per chip: sample "
                    f"fewer prompts at a time, --config.rollout.prompts_per_generate={max(1, ppg // 2)}"
                )
            f32_cache = (cfg.rollout.kv_cache_dtype or cfg.model.dtype) == "float32"
            out.append(
                f"{name}: or a shorter cache (--config.rollout.max_new_tokens)"
                + (", --config.rollout.kv_cache_dtype=bfloat16" if f32_cache else "")
                + ", or mesh.rollout_shape with a larger tensor axis"
            )
        else:
            spec_rows = report["micro_rows"]
            shards = mesh["data"] * mesh["fsdp"]
            if not cfg.model.remat:
                out.append(f"{name}: activations {p['temp_bytes'] / GiB:.1f} GiB per chip: --config.model.remat=True")
            if not cfg.model.attention_chunk:
                out.append(
                    f"{name}: attention scores of whole sequences: compute them in query blocks, "
                    "--config.model.attention_chunk=1024"
                )
            if spec_rows > shards:
                seq = cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens
                out.append(
                    f"{name}: smaller micro-batches: --config.train.micro_batch_tokens="
                    f"{max(shards, spec_rows // 2) * seq} (now {spec_rows} rows of {seq} tokens per "
                    "micro-batch)"
                )
            out.append(
                f"{name}: more tensor parallelism (mesh.shape tensor axis x2: activations split over heads "
                f"and MLP), or a bigger slice (--topology {bigger})"
            )
    return list(dict.fromkeys(out))


def _bigger_slice(report: dict) -> str:
    gen = report["chip"]["generation"]
    chips = report["chips"] * 2
    prefix = "v5litepod" if gen == "v5e" else gen
    return f"{prefix}-{chips * report['chip']['cores_in_name']}"


def finish_report(report: dict, cfg, config_path: str, command: str) -> dict:
    """Add fit verdicts, analytic FLOPs, time estimates and suggestions to a compiled report."""
    mc = model_config_for(cfg)
    chip = report["chip"]
    cap = chip["hbm_gib"] * GiB
    flops = analytic_flops(mc, cfg)
    chips = report["chips"]
    peak_flops = chip["peak_bf16_tflops"] * 1e12
    for name, p in report["programs"].items():
        p["peak_bytes"] = _peak(p)
        p["fits"] = bool(p.get("compiled")) and p["peak_bytes"] <= cap * HEADROOM
        f = flops["decode_step"] if name == "decode" else flops.get(name, 0.0)
        p["analytic_flops"] = f
        p["ideal_seconds"] = f / (chips * peak_flops) if f else 0.0
        if name == "decode":
            # Memory-bound: every step reads this chip's weights and its full KV cache.
            read = p.get("params_bytes", 0) + p.get("kv_cache_bytes", 0)
            p["hbm_bound_step_seconds"] = read / (chip["hbm_tbps"] * 1e12)
            p["rollout_upper_bound_seconds"] = cfg.rollout.max_new_tokens * max(
                p["hbm_bound_step_seconds"], p["ideal_seconds"]
            )
    report["analytic_flops"] = flops
    report["model"] = {
        "preset": cfg.model.get("preset", "") or cfg.model.actor_hf,
        "params": mc.num_params(),
        "param_dtype": mc.param_dtype,
        "dtype": mc.dtype,
        "remat": mc.remat,
        "scan_layers": mc.scan_layers,
        # the whole-sequence attention the TPU programs were compiled with (auto -> splash)
        "attention": resolve_attention(mc.attention_impl, mc.dtype, "tpu"),
    }
    report["capacity_bytes"] = cap
    report["peak_bytes"] = max((p["peak_bytes"] for p in report["programs"].values()), default=0)
    report["fits"] = all(p["fits"] for p in report["programs"].values())
    report["suggestions"] = [] if report["fits"] else suggestions(report, cfg)
    report["config"] = config_path
    report["command"] = command
    report["shapes"] = {
        "train_batch_size": cfg.train.train_batch_size,
        "n": cfg.rollout.n,
        "ppo_mini_batch_size": cfg.train.ppo_mini_batch_size,
        "max_prompt_tokens": cfg.data.max_prompt_tokens,
        "max_new_tokens": cfg.rollout.max_new_tokens,
        "prompts_per_generate": builders.prompts_per_generate(cfg),
        "micro_batch_tokens": cfg.train.micro_batch_tokens,
    }
    return report


def _opt(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds and seconds > 0 else "n/a"


def format_report(report: dict) -> str:
    g = lambda b: f"{b / GiB:7.2f}"
    cap = report["capacity_bytes"]
    lines = [
        f"plan: {report['model']['preset']} ({report['model']['params'] / 1e9:.2f}B params, "
        f"{report['model']['param_dtype']} params, {report['model']['dtype']} compute, remat="
        f"{report['model']['remat']}, scan_layers={report['model']['scan_layers']}, "
        f"attention={report['model'].get('attention', 'xla')})",
        f"on {report['topology']} ({report['topology_name']}, {report['chips']} chips x "
        f"{report['chip']['hbm_gib']:.0f} GiB HBM, {report['hosts']} hosts); mesh {report['mesh']}, "
        f"rollout mesh {report['rollout_mesh']}",
        f"batch {report['rows']} rollouts (mini {report['mini_batch_rows']}, micro {report['micro_rows']} rows); "
        f"sampler {report['rows_per_generate']} rows per call, cache windows {report['windows']}",
        "",
        "per-device HBM (GiB)  params  opt-state  kv-cache  batch   temps  resident   peak  / capacity  fits",
    ]
    for name, p in report["programs"].items():
        lines.append(
            f"{name:<20} {g(p.get('params_bytes', 0))} {g(p.get('opt_state_bytes', 0)):>10} "
            f"{g(p.get('kv_cache_bytes', 0)):>9} {g(p.get('batch_bytes', 0))} {g(p['temp_bytes'])} "
            f"{g(p.get('resident_bytes', 0)):>9} {g(p['peak_bytes'])}  / {cap / GiB:6.1f}    "
            f"{'yes' if p['fits'] else 'NO'}" + ("" if p.get("compiled") else "  (XLA: out of HBM)")
        )
    lines += ["", "time estimates       analytic TFLOP   ideal s (peak)   XLA optimal s   XLA TFLOP (scan body once)"]
    for name, p in report["programs"].items():
        lines.append(
            f"{name:<20} {p['analytic_flops'] / 1e12:14.1f} {p['ideal_seconds']:16.3f} "
            f"{_opt(p.get('xla_optimal_seconds', 0)):>15} {p.get('xla_flops', 0) / 1e12:12.2f}"
        )
        if "hbm_bound_step_seconds" in p:
            lines.append(
                f"{'':<20} decode step (HBM-bound) {p['hbm_bound_step_seconds'] * 1e3:.1f} ms; "
                f"{report['shapes']['max_new_tokens']} tokens <= {p['rollout_upper_bound_seconds']:.0f} s "
                "per sampler call"
            )
    lines.append("")
    if report["fits"]:
        lines.append(
            f"FITS: peak {report['peak_bytes'] / GiB:.1f} GiB of {cap / GiB:.0f} GiB per chip "
            f"({100 * report['peak_bytes'] / cap:.0f}%)"
        )
    else:
        lines.append(f"DOES NOT FIT on {report['topology']}. Try:")
        lines += [f"  - {s}" for s in report["suggestions"]]
    return "\n".join(lines)


def slice_fields(topo) -> dict:
    """The report's description of the slice (a ``parallel.topology`` topology)."""
    return {
        "topology": topo.slice_name,
        "topology_name": topo.topology_name,
        "chips": topo.chips,
        "hosts": topo.hosts,
        "chip": dataclasses.asdict(topo.chip),
    }


def precheck(cfg, topology_name: str) -> dict | None:
    """A report without compiling when the train states alone cannot fit (fast, no libtpu needed)."""
    topo = parse_topology(topology_name)
    mc = model_config_for(cfg)
    per_param = mc.jnp_param_dtype.itemsize * 3  # parameter + AdamW mu and nu (in the parameter dtype)
    roles = 2 if uses_critic(cfg) else 1
    states = roles * mc.num_params() * per_param / topo.chips
    cap = topo.chip.hbm_gib * GiB
    if states <= cap * HEADROOM:
        return None
    sizes = {"actor_params": mc.num_params() * mc.jnp_param_dtype.itemsize / topo.chips}
    sizes["actor_opt_state"] = 2 * sizes["actor_params"]
    sizes["critic_params"] = sizes["actor_params"] if roles == 2 else 0
    sizes["critic_opt_state"] = sizes["actor_opt_state"] if roles == 2 else 0
    program = {"name": "train_states", "compiled": False, "temp_bytes": 0.0, "resident_bytes": states, "fits": False}
    return {
        **slice_fields(topo),
        "mesh": {"data": 1, "fsdp": topo.chips, "tensor": 1},
        "rollout_mesh": {},
        "windows": [],
        "rows": 0,
        "rows_per_generate": 0,
        "micro_rows": 0,
        "mini_batch_rows": 0,
        "sizes": sizes,
        "programs": {"train_states": program},
        "precheck": True,
    }
