"""Training configuration: defaults for every method, CLI overrides and up-front validation.

Configs are ``ml_collections.ConfigDict`` files (``configs/<recipe>.py`` with ``get_config()``)
overridable as ``--config.train.actor_lr=1e-6``. Everything is validated once at start, with
messages that say what to change; no field is silently ignored.
"""
from __future__ import annotations

import ast
import importlib.util
import os
from typing import Any, Sequence

import ml_collections

from tempo_jax.errors import UserError


class RecipeError(UserError, ValueError):
    """A recipe file, override or combination of settings that cannot work; says what to change."""


class UnknownKeyError(RecipeError, KeyError):
    """An override names a config key or section the recipe does not have."""

    __str__ = Exception.__str__  # KeyError would quote the message


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

METHODS = ("stage1", "tempo", "zero_rl_ppo", "ttrl", "empo")
REWARDS = ("outcome", "ttrl_voting", "ttrl_exact", "empo_entropy")
CRITIC_ESTIMATORS = ("em_token", "em", "gae")


def base_config() -> ml_collections.ConfigDict:
    """Defaults = the reference's TEMPO recipe (TEMPO_SPEC §2) where it has one."""
    c = ml_collections.ConfigDict()
    c.method = "tempo"
    c.seed = 1
    c.run_dir = "runs/tempo"

    c.model = ml_collections.ConfigDict()
    c.model.actor_hf = ""  # HF directory of the actor (MODEL_PATH)
    c.model.critic_hf = ""  # HF token-classification directory of the critic (CRITIC_PATH); "" = copy of actor
    c.model.init_from = ""  # a run directory of ours (stage-1 checkpoint) to start from
    c.model.tokenizer = ""  # defaults to actor_hf
    c.model.param_dtype = "float32"
    c.model.dtype = "float32"
    c.model.remat = False
    c.model.scan_layers = False
    c.model.attention_chunk = 0  # queries per attention block (0: all at once); bounds long-sequence memory
    c.model.preset = ""  # architecture preset (models/presets.py) or HF dir for `tempo-jax plan`; training reads actor_hf

    c.data = ml_collections.ConfigDict()
    c.data.data_dir = ""  # default: $TEMPO_JAX_DATA_DIR or ../shared/data
    c.data.labeled = ""  # D_L: dataset name or file
    c.data.unlabeled = ""  # D_U: dataset name or file
    c.data.labeled_limit = 0
    c.data.unlabeled_limit = 0
    c.data.template = "qwen3"
    c.data.enable_thinking = True  # qwen3 templates only (HF's apply_chat_template default)
    c.data.instruction = "default"  # "default" = the \\boxed{} instruction; "" = none; else the text
    c.data.max_prompt_tokens = 512
    c.data.prompt_policy = "filter"  # filter | left_truncate
    c.data.replicate_unlabeled_to = 0
    c.data.on_error = "raise"  # raise | skip
    c.data.coerce_numbers = False  # accept numbers (e.g. 204) where strings are expected (ids, answers)

    c.rollout = ml_collections.ConfigDict()
    c.rollout.n = 8
    c.rollout.max_new_tokens = 256
    c.rollout.temperature = 1.0
    c.rollout.top_p = 1.0
    c.rollout.top_k = -1
    c.rollout.kv_cache_dtype = ""
    c.rollout.prompts_per_generate = 0  # prompts per sampler call (bounds the KV cache); 0 = the whole batch

    c.algo = ml_collections.ConfigDict()
    c.algo.adv_estimator = "em_token"
    c.algo.whiten = "global"
    c.algo.gamma = 1.0
    c.algo.lam = 1.0
    c.algo.reward = "outcome"
    c.algo.policy_loss = "gspo"
    c.algo.clip_low = 3e-4
    c.algo.clip_high = 5e-4
    c.algo.clip_ratio_c = 0.0  # dual clip (ppo only); 0 = off
    c.algo.loss_agg = "seq-mean-token-mean"
    c.algo.entropy_coef = 0.0
    c.algo.value_loss = "seq_clip"
    c.algo.cliprange_value = 0.1
    c.algo.value_labeled_only = True
    c.algo.filter_groups = True
    c.algo.max_num_gen_batches = 10
    c.algo.confidence_filter = False
    c.algo.confidence_lower = 0.3
    c.algo.confidence_upper = 1.0
    c.algo.critic_update_every = 1
    c.algo.recompute_old_logprobs = True
    c.algo.loss_weighting = "exact"  # exact | verl

    c.train = ml_collections.ConfigDict()
    c.train.total_steps = 4
    c.train.train_batch_size = 8  # prompts per step
    c.train.ppo_mini_batch_size = 4  # prompts per optimizer step
    c.train.ppo_epochs = 1
    c.train.micro_batch_tokens = 8192
    c.train.actor_lr = 1e-6
    c.train.actor_weight_decay = 0.0
    c.train.actor_grad_clip = 1.0
    c.train.critic_lr = 1e-6
    c.train.critic_weight_decay = 0.01
    c.train.critic_grad_clip = 1.0
    c.train.max_consecutive_bad_steps = 3
    c.train.shuffle_minibatches = True
    c.train.inject_nan_at_steps = ""  # fault injection for tests: comma-separated steps get NaN advantages

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.save_every = 32
    c.checkpoint.keep = 3
    c.checkpoint.async_save = True

    c.eval = ml_collections.ConfigDict()
    c.eval.test_freq = 4
    c.eval.datasets = ""  # comma-separated names/paths; "" = the unlabeled set
    c.eval.n = 16
    c.eval.max_new_tokens = 0  # 0 = rollout.max_new_tokens
    c.eval.limit = 0
    c.eval.before_train = True
    c.eval.batch_prompts = 0  # prompts per sampler call (rows = batch_prompts * n); 0 = the evaluator's default

    c.grader = ml_collections.ConfigDict()
    c.grader.workers = 2
    c.grader.timeout_s = 5.0

    c.log = ml_collections.ConfigDict()
    c.log.tensorboard = True
    c.log.progress_bar = True

    # Device mesh (tempo_jax/parallel/mesh.py): shape = (data, fsdp, tensor), product = number of
    # devices (one entry may be -1); (1, 1, 1) = a single device. rollout_shape: () = roll out on
    # the training mesh (no weight copy), or another arrangement of the same devices (resharded).
    c.mesh = ml_collections.ConfigDict()
    c.mesh.shape = (1, 1, 1)
    c.mesh.rollout_shape = ()
    c.mesh.topology = ""  # the TPU slice the recipe is planned for (e.g. "v5p-64"); informational + `plan`
    return c


def method_defaults(method: str) -> dict[str, Any]:
    """The settings a method implies; a recipe may still override them explicitly."""
    if method not in METHODS:
        raise RecipeError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method in ("stage1", "zero_rl_ppo"):
        # verl's PPO path (TEMPO_SPEC §4.3): the critic's cliprange_value default is 0.5
        return {"algo.adv_estimator": "gae", "algo.reward": "outcome", "algo.filter_groups": True,
                "algo.value_labeled_only": False, "algo.cliprange_value": 0.5}
    if method == "tempo":
        return {"algo.adv_estimator": "em_token", "algo.reward": "outcome", "algo.filter_groups": True}
    return {"algo.adv_estimator": "grpo", "algo.filter_groups": False,
            "algo.reward": "ttrl_voting" if method == "ttrl" else "empo_entropy"}


def apply_method_defaults(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    for key, value in method_defaults(cfg.method).items():
        set_path(cfg, key, value)
    return cfg


def set_path(cfg: ml_collections.ConfigDict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
        if p not in node:
            raise UnknownKeyError(f"unknown config section {p!r} in {key!r}")
        node = node[p]
    if leaf not in node:
        known = ", ".join(sorted(node.keys()))
        raise UnknownKeyError(f"unknown config key {key!r}; known keys here: {known}")
    current = node[leaf]
    if isinstance(current, bool) and isinstance(value, str):
        if value.lower() not in _TRUE + _FALSE:
            raise RecipeError(f"{key}={value!r} is not a boolean; write {key}=True or {key}=False")
        value = value.lower() in _TRUE
    elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``--config.a.b=value`` -> ("a.b", value); values are Python literals when they parse."""
    if not text.startswith("--config.") or "=" not in text:
        raise RecipeError(f"cannot read override {text!r}; write it as --config.section.key=value")
    key, raw = text[len("--config."):].split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def load_config(path: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Load ``get_config()`` from a config file, apply method defaults, then CLI overrides."""
    if not os.path.isfile(path):
        raise RecipeError(f"config file {path} not found (configs live in configs/<recipe>.py)")
    spec = importlib.util.spec_from_file_location("tempo_jax_user_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the user's own config file
    if not hasattr(module, "get_config"):
        raise RecipeError(f"{path} has no get_config() function; a recipe defines get_config() -> ConfigDict")
    cfg = module.get_config()
    parsed = [parse_override(text) for text in overrides]
    for key, value in parsed:  # a new method brings its defaults; explicit overrides still win
        if key == "method":
            set_path(cfg, key, value)
            apply_method_defaults(cfg)
    for key, value in parsed:
        set_path(cfg, key, value)
    return cfg


def recipe(method: str, **changes: Any) -> ml_collections.ConfigDict:
    """base_config() + a method's defaults + explicit changes (dotted keys); for config files."""
    cfg = base_config()
    cfg.method = method
    apply_method_defaults(cfg)
    for key, value in changes.items():
        set_path(cfg, key.replace("__", "."), value)
    return cfg


def model_overrides(cfg: ml_collections.ConfigDict) -> dict:
    """The ``ModelConfig`` fields a recipe sets on top of the checkpoint's architecture (numerics,
    remat, layer scan, attention blocks); the trainer and the planner build the same model from them."""
    m = cfg.model
    return dict(param_dtype=m.param_dtype, dtype=m.dtype, remat=m.remat, scan_layers=m.scan_layers,
                attention_chunk=m.attention_chunk)


def uses_critic(cfg: ml_collections.ConfigDict) -> bool:
    return cfg.algo.adv_estimator in CRITIC_ESTIMATORS


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Fail early with a message that says what to change."""
    from tempo_jax.rl.registry import ADVANTAGES, POLICY_LOSSES, VALUE_LOSSES

    import tempo_jax.rl.advantages  # noqa: F401  (registers)
    import tempo_jax.rl.losses  # noqa: F401
    import tempo_jax.rl.value_losses  # noqa: F401

    errors = []
    if cfg.method not in METHODS:
        errors.append(f"method={cfg.method!r} is not one of {METHODS}")
    for key, reg in (("adv_estimator", ADVANTAGES), ("policy_loss", POLICY_LOSSES), ("value_loss", VALUE_LOSSES)):
        if cfg.algo[key] not in reg:
            errors.append(f"algo.{key}={cfg.algo[key]!r} is not registered; known: {', '.join(reg.names())}")
    if cfg.algo.reward not in REWARDS:
        errors.append(f"algo.reward={cfg.algo.reward!r} is not one of {REWARDS}")
    t = cfg.train
    if t.total_steps < 1:
        errors.append(f"train.total_steps={t.total_steps} must be >= 1 (export an untrained model with "
                      "`tempo-jax convert` instead)")
    if t.ppo_epochs < 1:
        errors.append(f"train.ppo_epochs={t.ppo_epochs} must be >= 1")
    for key in ("clip_low", "clip_high"):
        if not cfg.algo[key] > 0:
            errors.append(f"algo.{key}={cfg.algo[key]} must be > 0 (the PPO/GSPO ratio clip range)")
    if t.train_batch_size <= 0 or t.ppo_mini_batch_size <= 0:
        errors.append("train.train_batch_size and train.ppo_mini_batch_size must be positive")
    elif t.train_batch_size % t.ppo_mini_batch_size:
        errors.append(f"train.train_batch_size={t.train_batch_size} must be a multiple of "
                      f"train.ppo_mini_batch_size={t.ppo_mini_batch_size}")
    if cfg.rollout.n < 1:
        errors.append("rollout.n must be >= 1")
    if cfg.rollout.n < 2 and cfg.algo.adv_estimator in ("grpo", "em"):
        errors.append(f"{cfg.algo.adv_estimator} normalises within groups: rollout.n must be >= 2")
    if cfg.method in ("stage1", "zero_rl_ppo") and not cfg.data.labeled:
        errors.append(f"method {cfg.method} trains on labeled data: set data.labeled")
    if cfg.method in ("ttrl", "empo") and not (cfg.data.unlabeled or cfg.data.labeled):
        errors.append(f"method {cfg.method} trains on the unlabeled test questions: set data.unlabeled")
    if cfg.method == "tempo" and not cfg.data.labeled:
        errors.append("method tempo needs data.labeled (D_L; a mixed file whose is_labeled flags mark the test "
                      "questions also gives D_U) and data.unlabeled (D_U)")
    if not (cfg.model.actor_hf or cfg.model.init_from):
        errors.append("set model.actor_hf (a Hugging Face directory) or model.init_from (a run directory)")
    for key in ("actor_hf", "critic_hf", "init_from", "tokenizer"):
        path = cfg.model[key]
        if path and not os.path.exists(path):
            errors.append(f"model.{key}={path!r} does not exist")
    if cfg.algo.critic_update_every < 1:
        errors.append("algo.critic_update_every must be >= 1")
    if cfg.checkpoint.save_every < 1 or cfg.checkpoint.keep < 1:
        errors.append("checkpoint.save_every and checkpoint.keep must be >= 1")
    if cfg.data.prompt_policy not in ("filter", "left_truncate"):
        errors.append("data.prompt_policy must be 'filter' or 'left_truncate'")
    ppg = cfg.rollout.get("prompts_per_generate", 0)
    if ppg < 0 or (ppg and t.train_batch_size % ppg):
        errors.append(f"rollout.prompts_per_generate={ppg} must be 0 (whole batch) or divide "
                      f"train.train_batch_size={t.train_batch_size}")
    if "mesh" in cfg:
        from tempo_jax.parallel.mesh import validate_mesh_config

        errors.extend(validate_mesh_config(cfg))
    if errors:
        raise RecipeError("invalid config:\n  - " + "\n  - ".join(errors))
