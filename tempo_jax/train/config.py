"""Training configuration: defaults for every method, CLI overrides and up-front validation.

Configs are ``ml_collections.ConfigDict`` files with ``get_config()``, named as with
``ml_collections.config_flags``: ``configs/paper.py:qwen3_14b,tempo`` passes the text after the colon
to ``get_config(config_string)``. Overrides ``--config.train.actor_lr=1e-6`` are read as the type of
the field they replace; unknown keys name their neighbours. Everything is validated once at start,
with messages that say what to change; no field is silently ignored.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import os
from collections.abc import Sequence
from typing import Any

import ml_collections
from absl import flags
from ml_collections.config_flags import tuple_parser

from tempo_jax import storage
from tempo_jax.errors import UserError
from tempo_jax.parallel.mesh import validate_mesh_config
from tempo_jax.rewards.tasks import DEFAULT_TASK, TaskMap
from tempo_jax.rl import ADVANTAGES, POLICY_LOSSES, VALUE_LOSSES
from tempo_jax.rl.options import AGG_MODES, WHITEN_MODES
from tempo_jax.sampling import ENGINES
from tempo_jax.train.algo_options import SECTIONS, AlgoOptions, algo_options, options_section, rebuild_section
from tempo_jax.train.wandb_logger import config_errors as wandb_config_errors


class RecipeError(UserError, ValueError):
    """A recipe file, override or combination of settings that cannot work; says what to change."""


class UnknownKeyError(RecipeError, KeyError):
    """An override names a config key or section the recipe does not have."""

    __str__ = Exception.__str__  # KeyError would quote the message


METHODS = ("stage1", "tempo", "tempo_frozen_critic", "zero_rl_ppo", "ttrl", "empo")
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
    # whole-sequence attention kernel (training forwards, prefill): xla | cudnn (GPU) | splash (TPU) | auto
    c.model.attention_impl = "xla"
    c.model.preset = (
        ""  # architecture preset (models/presets.py) or HF dir for `tempo-jax plan`; training reads actor_hf
    )

    c.data = ml_collections.ConfigDict()
    c.data.data_dir = ""  # default: $TEMPO_JAX_DATA_DIR or ../shared/data
    c.data.labeled = ""  # D_L: dataset name or file (or benchmark directory); several: comma-separated
    c.data.unlabeled = ""  # D_U: dataset name or file (or benchmark directory); several: comma-separated
    c.data.labeled_limit = 0
    c.data.unlabeled_limit = 0
    c.data.template = "auto"  # the tokenizer's own chat template; or qwen3, olmo, plain (base models), ...
    c.data.enable_thinking = True  # auto (where the chat template reads it) and qwen3; HF's default
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
    # static: each sampler call decodes its batch until the longest row stops; continuous: decode_slots
    # slots refilled as rows stop (the whole batch in one call; prompts_per_generate does not apply)
    c.rollout.engine = "static"
    c.rollout.decode_slots = 0  # continuous engine's slots; 0 = a quarter of the batch's rows

    c.algo = ml_collections.ConfigDict()
    # Each function's options section holds exactly its typed options (rl/options.py), rebuilt when
    # the function changes (train/algo_options.py).
    c.algo.adv_estimator = "em_token"
    c.algo.adv_options = options_section(ADVANTAGES, "em_token")  # whiten
    c.algo.reward = "outcome"
    c.algo.policy_loss = "gspo"
    c.algo.policy_options = options_section(POLICY_LOSSES, "gspo")  # clip_low/high, agg, entropy_coef, kl_coef, ...
    c.algo.value_loss = "seq_clip"
    c.algo.value_options = options_section(VALUE_LOSSES, "seq_clip")  # cliprange_value, agg, labeled_only
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
    # data_source -> grading task (tempo_jax/rewards/tasks.py): "bbh:exact_match,my_set:multiple_choice"
    # adds to / overrides the built-in prefixes (rewards.tasks.DEFAULT_SOURCES); exact name, else longest prefix
    c.grader.tasks = ""
    c.grader.default_task = DEFAULT_TASK  # a data_source no key matches

    c.log = ml_collections.ConfigDict()
    c.log.tensorboard = True
    c.log.progress_bar = True
    # Weights & Biases (the `wandb` extra; tempo_jax/train/wandb_logger.py), beside metrics.jsonl
    c.log.wandb = False
    c.log.wandb_project = "tempo_jax"
    c.log.wandb_entity = ""  # "" = wandb's default ($WANDB_ENTITY or the account's)
    c.log.wandb_name = ""  # "" = the run directory's name
    c.log.wandb_mode = ""  # "online", "offline", "disabled"; "" = $WANDB_MODE, else online

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
        return {
            "algo.adv_estimator": "gae",
            "algo.reward": "outcome",
            "algo.filter_groups": True,
            "algo.value_options.labeled_only": False,
            "algo.value_options.cliprange_value": 0.5,
        }
    if method == "tempo":
        return {"algo.adv_estimator": "em_token", "algo.reward": "outcome", "algo.filter_groups": True}
    if method == "tempo_frozen_critic":  # TEMPO_SPEC §5.1 ablation: no E-step (critic never recalibrated)
        return {
            "algo.adv_estimator": "em_token",
            "algo.reward": "outcome",
            "algo.filter_groups": True,
            "train.critic_lr": 0.0,
        }
    return {
        "algo.adv_estimator": "grpo",
        "algo.filter_groups": False,
        "algo.reward": "ttrl_voting" if method == "ttrl" else "empo_entropy",
    }


def apply_method_defaults(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    for key, value in method_defaults(cfg.method).items():
        set_path(cfg, key, value)
    return cfg


def _leaf_keys(node: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    out = []
    for name, value in node.items():
        if isinstance(value, ml_collections.ConfigDict):
            out.extend(_leaf_keys(value, f"{prefix}{name}."))
        else:
            out.append(prefix + name)
    return out


def _did_you_mean(cfg: ml_collections.ConfigDict, key: str) -> str:
    """Neighbours of a misspelt key: the same name in another section, close names (this section's
    first), then close dotted keys."""
    keys = _leaf_keys(cfg)
    section, _, leaf = key.rpartition(".")
    by_leaf: dict[str, list[str]] = {}
    for k in keys:
        by_leaf.setdefault(k.rpartition(".")[2], []).append(k)
    picks = list(by_leaf.get(leaf, []))
    for name in difflib.get_close_matches(leaf, list(by_leaf), n=5, cutoff=0.6):
        picks += sorted(by_leaf[name], key=lambda k: k.rpartition(".")[0] != section)
    picks += difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    picks = [p for p in dict.fromkeys(picks) if p != key][:3]
    return f"; did you mean {' or '.join(picks)}?" if picks else ""


_TRUE, _FALSE = ("1", "true", "t", "yes", "on"), ("0", "false", "f", "no", "off")
_TYPE_NAMES = {int: "an integer", float: "a number", tuple: "a tuple such as (1, -1, 4)"}


def _a(kind: type) -> str:
    return ("an " if kind.__name__[0] in "aeiou" else "a ") + kind.__name__


def _literal(text: str) -> Any:
    """A Python literal when the text is one, else the text (config_flags' rule for untyped fields)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_typed(key: str, text: str, current: Any) -> Any:
    """Read an override's text as the type of the field it replaces, as ``ml_collections.config_flags``
    does (absl's integer/float parsers, its tuple parser); a value of another type names the key."""
    if isinstance(current, bool):
        if text.strip().lower() not in _TRUE + _FALSE:
            raise RecipeError(f"{key}={text!r} is not a boolean; write {key}=True or {key}=False")
        return text.strip().lower() in _TRUE
    if isinstance(current, str):
        return text
    parser = {int: flags.IntegerParser(), float: flags.FloatParser(), tuple: tuple_parser.TupleParser()}.get(
        type(current)
    )
    if parser is None:  # None or another type: any Python literal
        return _literal(text)
    if isinstance(current, tuple) and not text.strip():
        return ()
    try:
        return parser.parse(text)
    except (ValueError, TypeError):
        raise RecipeError(
            f"{key}={text!r} is not {_TYPE_NAMES[type(current)]} (the recipe has {key}={current!r})"
        ) from None


def set_path(cfg: ml_collections.ConfigDict, key: str, value: Any) -> None:
    """Set a dotted key. Text (from the command line) is read as the field's type; unknown keys and
    values of the wrong type are a ``RecipeError`` that names the key (and, for keys, its neighbours)."""
    *parents, leaf = key.split(".")
    node = cfg
    for i, p in enumerate(parents):
        if p not in node:
            known = ", ".join(sorted(node.keys()))
            raise UnknownKeyError(
                f"unknown config section {'.'.join(parents[: i + 1])!r} in {key!r}; "
                f"known here: {known}{_did_you_mean(cfg, key)}"
            )
        node = node[p]
        if not isinstance(node, ml_collections.ConfigDict):
            raise UnknownKeyError(
                f"{'.'.join(parents[: i + 1])} is a value, not a section, in {key!r}{_did_you_mean(cfg, key)}"
            )
    if leaf not in node:
        known = ", ".join(sorted(node.keys()))
        function = _options_owner(cfg, parents)
        if function:  # an option the chosen estimator or loss does not take
            raise UnknownKeyError(f"{key}: {function} takes no option {leaf!r}; its options: {known}")
        raise UnknownKeyError(f"unknown config key {key!r}; known keys here: {known}{_did_you_mean(cfg, key)}")
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
        known = ", ".join(f"{key}.{k}" for k in sorted(current.keys()))
        raise RecipeError(f"{key} is a section, not a value; set one of its keys: {known}")
    if isinstance(value, str):
        value = _parse_typed(key, value, current)
    try:
        node[leaf] = value
    except TypeError:
        raise RecipeError(
            f"{key}={value!r} is {_a(type(value))}, but {key} holds {_a(type(current))} "
            f"(the recipe has {key}={current!r})"
        ) from None
    if parents == ["algo"] and leaf in SECTIONS:  # another function: its own options section
        rebuild_section(node, leaf)


def _options_owner(cfg: ml_collections.ConfigDict, parents: list[str]) -> str:
    """For ``algo.<function>_options``: the function chosen, e.g. "policy loss 'gspo'"; else ""."""
    if len(parents) != 2 or parents[0] != "algo":
        return ""
    for function_key, (section, registry) in SECTIONS.items():
        if parents[1] == section:
            return f"{registry.kind} {cfg.algo[function_key]!r}"
    return ""


def parse_override(text: str) -> tuple[str, str]:
    """``--config.a.b=value`` -> ("a.b", "value"). The text is typed by ``set_path`` against the field
    it replaces (``ml_collections.config_flags``' rule): ``1`` is 1 for an int, 1.0 for a float,
    "1" for a string."""
    if not text.startswith("--config.") or "=" not in text:
        raise RecipeError(f"cannot read override {text!r}; write it as --config.section.key=value")
    key, raw = text[len("--config.") :].split("=", 1)
    return key, raw


def split_config_spec(spec: str) -> tuple[str, str | None]:
    """``configs/paper.py:qwen3_14b,tempo`` -> ("configs/paper.py", "qwen3_14b,tempo"). As in
    ``ml_collections.config_flags``, the text after the first colon is passed to ``get_config()``."""
    if ":" not in spec or os.path.isfile(spec):
        return spec, None
    path, arg = spec.split(":", 1)
    return path, arg


def _config_string_use(get_config) -> tuple[bool, bool]:
    """(takes a config string, requires one) for a recipe's ``get_config``; a signature that cannot
    be read takes one and requires none."""
    try:
        params = inspect.signature(get_config).parameters.values()
    except (TypeError, ValueError):
        return True, False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes = bool(positional) or any(p.kind is p.VAR_POSITIONAL for p in params)
    return takes, any(p.default is p.empty for p in positional)


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Load a recipe, apply method defaults, then CLI overrides.

    ``spec`` is ``path/to/file.py`` or ``path/to/file.py:<config string>`` (``get_config(config_string)``
    receives the text after the colon, as with ``ml_collections.config_flags``)."""
    path, arg = split_config_spec(spec)
    if not os.path.isfile(path):
        raise RecipeError(
            f"config file {path} not found (recipes: configs/paper.py:<model>,<method>, configs/tiny.py:<method>)"
        )
    module_spec = importlib.util.spec_from_file_location("tempo_jax_user_config", path)
    if module_spec is None or module_spec.loader is None:  # no loader for the suffix (not a .py file)
        raise RecipeError(f"config file {path} is not a Python file; a recipe is a .py file defining get_config()")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)  # the user's own config file
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise RecipeError(f"{path} has no get_config() function; a recipe defines get_config() -> ConfigDict")
    takes_string, needs_string = _config_string_use(get_config)
    if arg is not None and not takes_string:
        raise RecipeError(f"{path}'s get_config() takes no config string; drop ':{arg}' from --config")
    if arg is None and needs_string:
        doc = (module.__doc__ or "").strip().splitlines()
        raise RecipeError(f"{path} needs a config string: --config={path}:<...>" + (f" ({doc[0]})" if doc else ""))
    cfg = get_config() if arg is None else get_config(arg)
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise RecipeError(f"{spec}: get_config() returned {type(cfg).__name__}, not an ml_collections.ConfigDict")
    apply_overrides(cfg, overrides)
    return cfg


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
    """``--config.a.b=value`` overrides; a new method brings its defaults first, so explicit
    overrides win whatever their order."""
    parsed = [parse_override(text) for text in overrides]
    for key, value in parsed:
        if key == "method":
            set_path(cfg, key, value)
            apply_method_defaults(cfg)
    for key, value in parsed:
        set_path(cfg, key, value)


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
    return dict(
        param_dtype=m.param_dtype,
        dtype=m.dtype,
        remat=m.remat,
        scan_layers=m.scan_layers,
        attention_chunk=m.attention_chunk,
        attention_impl=m.get("attention_impl", "xla"),
    )


def rollout_engine_errors(cfg: ml_collections.ConfigDict) -> list[str]:
    """The sampler settings that cannot work: engine, decode slots, prompts per call."""
    r, errors = cfg.rollout, []
    ppg = r.get("prompts_per_generate", 0)
    if ppg < 0 or (ppg and cfg.train.train_batch_size % ppg):
        errors.append(
            f"rollout.prompts_per_generate={ppg} must be 0 (whole batch) or divide "
            f"train.train_batch_size={cfg.train.train_batch_size}"
        )
    if r.get("engine", "static") not in ENGINES:
        errors.append(f"rollout.engine={r.engine!r} must be one of {', '.join(ENGINES)}")
    if r.get("decode_slots", 0) < 0:
        errors.append(f"rollout.decode_slots={r.decode_slots} must be >= 0 (0 = a quarter of the rows)")
    return errors


def uses_critic(cfg: ml_collections.ConfigDict) -> bool:
    return cfg.algo.adv_estimator in CRITIC_ESTIMATORS


def option_errors(options: AlgoOptions) -> list[str]:
    """Option values the chosen functions cannot work with."""
    errors = []
    policy = options.policy
    for key in ("clip_low", "clip_high"):
        if not getattr(policy, key) > 0:
            errors.append(
                f"algo.policy_options.{key}={getattr(policy, key)} must be > 0 (the PPO/GSPO ratio clip range)"
            )
    if policy.kl_coef:
        errors.append(
            "algo.policy_options.kl_coef needs a reference policy, which tempo_jax does not keep (the "
            "reference trains without a KL loss, TEMPO_SPEC §1.2); set it to 0"
        )
    if policy.agg not in AGG_MODES or options.value.agg not in AGG_MODES:
        errors.append(f"algo.policy_options.agg / algo.value_options.agg must be one of {', '.join(AGG_MODES)}")
    whiten = getattr(options.adv, "whiten", "global")
    if whiten not in WHITEN_MODES:
        errors.append(f"algo.adv_options.whiten={whiten!r} must be 'global' or 'none'")
    ratio_c = getattr(policy, "clip_ratio_c", None)
    if ratio_c is not None and not ratio_c > 1.0:
        errors.append(f"algo.policy_options.clip_ratio_c={ratio_c} (dual clip) must be > 1.0, or None for off")
    return errors


def grader_task_map(cfg: ml_collections.ConfigDict) -> TaskMap:
    """The run's ``data_source`` → grading task map (``grader.tasks``, ``grader.default_task``)."""
    g = cfg.get("grader") or {}
    return TaskMap.from_config(g.get("tasks", ""), g.get("default_task", DEFAULT_TASK))


def grader_errors(cfg: ml_collections.ConfigDict) -> list[str]:
    """What is wrong with the grader's task settings (unknown task names list the registered)."""
    try:
        grader_task_map(cfg)
    except ValueError as err:
        return [f"grader.tasks / grader.default_task: {err}"]
    return []


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Fail early with a message that says what to change."""
    errors = []
    if cfg.method not in METHODS:
        errors.append(f"method={cfg.method!r} is not one of {METHODS}")
    for key, (_, reg) in SECTIONS.items():
        if cfg.algo[key] not in reg:
            errors.append(f"algo.{key}={cfg.algo[key]!r} is not registered; known: {', '.join(reg.names())}")
    if cfg.algo.reward not in REWARDS:
        errors.append(f"algo.reward={cfg.algo.reward!r} is not one of {REWARDS}")
    t = cfg.train
    if t.total_steps < 1:
        errors.append(
            f"train.total_steps={t.total_steps} must be >= 1 (export an untrained model with "
            "`tempo-jax convert` instead)"
        )
    if t.ppo_epochs < 1:
        errors.append(f"train.ppo_epochs={t.ppo_epochs} must be >= 1")
    if all(cfg.algo[key] in reg for key, (_, reg) in SECTIONS.items()):
        try:
            errors.extend(option_errors(algo_options(cfg)))
        except ValueError as err:
            errors.append(str(err))
    if t.train_batch_size <= 0 or t.ppo_mini_batch_size <= 0:
        errors.append("train.train_batch_size and train.ppo_mini_batch_size must be positive")
    elif t.train_batch_size % t.ppo_mini_batch_size:
        errors.append(
            f"train.train_batch_size={t.train_batch_size} must be a multiple of "
            f"train.ppo_mini_batch_size={t.ppo_mini_batch_size}"
        )
    if cfg.rollout.n < 1:
        errors.append("rollout.n must be >= 1")
    if cfg.rollout.n < 2 and cfg.algo.adv_estimator in ("grpo", "em"):
        errors.append(f"{cfg.algo.adv_estimator} normalises within groups: rollout.n must be >= 2")
    if cfg.method in ("stage1", "zero_rl_ppo") and not cfg.data.labeled:
        errors.append(f"method {cfg.method} trains on labeled data: set data.labeled")
    if cfg.method in ("ttrl", "empo") and not (cfg.data.unlabeled or cfg.data.labeled):
        errors.append(f"method {cfg.method} trains on the unlabeled test questions: set data.unlabeled")
    if cfg.method in ("tempo", "tempo_frozen_critic") and not cfg.data.labeled:
        errors.append(
            f"method {cfg.method} needs data.labeled (D_L; a mixed file whose is_labeled flags mark the "
            "test questions also gives D_U) and data.unlabeled (D_U)"
        )
    if cfg.method == "tempo" and cfg.train.critic_lr == 0:
        errors.append(
            "method tempo recalibrates the critic (E-step) but train.critic_lr=0 freezes it; use "
            "method=tempo_frozen_critic for that ablation, or set train.critic_lr > 0"
        )
    if cfg.method == "tempo_frozen_critic" and cfg.train.critic_lr != 0:
        errors.append(
            f"method tempo_frozen_critic keeps the critic frozen: train.critic_lr must be 0, not "
            f"{cfg.train.critic_lr} (use method=tempo for E-steps)"
        )
    if not (cfg.model.actor_hf or cfg.model.init_from):
        errors.append("set model.actor_hf (a Hugging Face directory) or model.init_from (a run directory)")
    for key in ("actor_hf", "critic_hf", "init_from", "tokenizer"):
        path = cfg.model[key]
        if path and not storage.exists(path):
            errors.append(f"model.{key}={path!r} does not exist")
    if cfg.algo.critic_update_every < 1:
        errors.append("algo.critic_update_every must be >= 1")
    if cfg.checkpoint.save_every < 1 or cfg.checkpoint.keep < 1:
        errors.append("checkpoint.save_every and checkpoint.keep must be >= 1")
    if cfg.algo.loss_weighting not in ("exact", "verl"):
        errors.append(f"algo.loss_weighting={cfg.algo.loss_weighting!r} must be 'exact' or 'verl'")
    if cfg.data.prompt_policy not in ("filter", "left_truncate"):
        errors.append("data.prompt_policy must be 'filter' or 'left_truncate'")
    errors.extend(rollout_engine_errors(cfg))
    if "mesh" in cfg:
        errors.extend(validate_mesh_config(cfg))
    if "log" in cfg:
        errors.extend(wandb_config_errors(cfg))
    errors.extend(grader_errors(cfg))
    if errors:
        raise RecipeError("invalid config:\n  - " + "\n  - ".join(errors))
