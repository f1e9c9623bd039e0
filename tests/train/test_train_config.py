"""Recipe loading and validation: bad settings fail at start, name the key and say what to do."""

import pathlib

import pytest

from tempo_jax.errors import UserError
from tempo_jax.train.config import (
    METHODS,
    RecipeError,
    UnknownKeyError,
    grader_task_map,
    load_config,
    method_defaults,
    parse_override,
    set_path,
    split_config_spec,
    uses_critic,
    validate,
)
from tempo_jax.train.data_roles import load_roles
from tempo_jax.train.periodic_eval import eval_datasets


def test_boolean_typo_is_refused_not_read_as_false(tiny_config):
    cfg = tiny_config("tempo")
    with pytest.raises(RecipeError, match=r"algo.value_options.labeled_only='Treu' is not a boolean"):
        set_path(cfg, *parse_override("--config.algo.value_options.labeled_only=Treu"))
    set_path(cfg, *parse_override("--config.algo.value_options.labeled_only=false"))
    assert cfg.algo.value_options.labeled_only is False
    set_path(cfg, *parse_override("--config.algo.value_options.labeled_only=On"))
    assert cfg.algo.value_options.labeled_only is True


def test_unknown_key_is_a_user_error_with_plain_message(tiny_config):
    with pytest.raises(UnknownKeyError) as info:
        set_path(tiny_config("tempo"), "train.not_a_key", 1)
    assert isinstance(info.value, (UserError, KeyError))
    assert str(info.value).startswith("unknown config key 'train.not_a_key'; known keys here:")


def test_missing_recipe_file_and_recipe_without_get_config(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_config(str(tmp_path / "nope.py"))
    bad = tmp_path / "bad.py"
    bad.write_text("X = 1\n")
    with pytest.raises(RecipeError, match="has no get_config"):
        load_config(str(bad))
    not_python = tmp_path / "recipe.txt"  # importlib finds no loader for the suffix
    not_python.write_text("def get_config():\n    return None\n")
    with pytest.raises(RecipeError, match="is not a Python file"):
        load_config(str(not_python))


def test_model_must_embed_the_tokenizer_and_hold_the_lengths(tiny_config):
    from tempo_jax.models.config import ModelConfig, RopeConfig
    from tempo_jax.models.tokenizer import TokenizerError
    from tempo_jax.train.run_models import check_model_fits

    model = ModelConfig(
        model_type="qwen3",
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_layers=1,
        num_heads=4,
        num_kv_heads=2,
        head_dim=8,
        rope=RopeConfig(theta=1e4),
        max_position_embeddings=128,
    )
    cfg = tiny_config("tempo", data__max_prompt_tokens=96, rollout__max_new_tokens=16)
    check_model_fits(cfg, [0] * 64, model)
    with pytest.raises(TokenizerError, match="the tokenizer has 65 tokens but the model's vocab_size is 64"):
        check_model_fits(cfg, [0] * 65, model)
    set_path(cfg, "eval.max_new_tokens", 40)
    with pytest.raises(RecipeError, match=r"= 136 exceeds the model's max_position_embeddings=128"):
        check_model_fits(cfg, [0] * 64, model)


# ------------------------------------------------------------------------ config strings and overrides
REPO = pathlib.Path(__file__).resolve().parents[2]
PAPER = str(REPO / "configs" / "paper.py")
TINY = str(REPO / "configs" / "tiny.py")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """configs/tiny.py creates its assets under ./runs/tiny_assets: once per module, in a temp dir."""
    return tmp_path_factory.mktemp("config_workdir")


@pytest.fixture
def in_workdir(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    return workdir


def _recipe_file(tmp_path, signature, body="run_dir=arg"):
    path = tmp_path / "recipe.py"
    path.write_text(
        "from tempo_jax.train.config import recipe\n\n"
        f"def get_config({signature}):\n    return recipe('tempo', {body})\n"
    )
    return str(path)


def test_text_after_the_colon_goes_to_get_config(tmp_path):
    path = _recipe_file(tmp_path, "arg")
    assert load_config(f"{path}:runs/x").run_dir == "runs/x"
    assert load_config(f"{path}:a:b,c").run_dir == "a:b,c"  # split at the first colon only (config_flags)
    assert split_config_spec(f"{path}:a:b") == (path, "a:b")
    assert split_config_spec(path) == (path, None)
    with pytest.raises(RecipeError, match=r"needs a config string: --config=.*recipe.py:<\.\.\.>"):
        load_config(path)
    plain = _recipe_file(tmp_path, "", body="")
    assert load_config(plain).method == "tempo"
    with pytest.raises(RecipeError, match=r"get_config\(\) takes no config string; drop ':x'"):
        load_config(f"{plain}:x")


def test_overrides_take_the_type_of_the_field_they_replace(tiny_config):
    cfg = tiny_config("tempo")
    for text, key, want in [
        ("--config.train.total_steps=7", "train.total_steps", 7),
        ("--config.train.actor_lr=1", "train.actor_lr", 1.0),
        ("--config.train.critic_lr=3e-6", "train.critic_lr", 3e-6),
        ("--config.data.labeled=123", "data.labeled", "123"),  # a string stays a string
        ("--config.eval.datasets=aime24,aime25", "eval.datasets", "aime24,aime25"),
        ("--config.mesh.shape=(1,-1,4)", "mesh.shape", (1, -1, 4)),
        ("--config.mesh.shape=[2, 2, 2]", "mesh.shape", (2, 2, 2)),
        ("--config.mesh.rollout_shape=", "mesh.rollout_shape", ()),
        ("--config.log.tensorboard=False", "log.tensorboard", False),
    ]:
        set_path(cfg, *parse_override(text))
        got = cfg
        for part in key.split("."):
            got = got[part]
        assert got == want and type(got) is type(want), (text, got)


@pytest.mark.parametrize(
    "key,value,needle",
    [
        (
            "train.total_steps",
            "1.5",
            r"train.total_steps='1.5' is not an integer \(the recipe has train.total_steps=3\)",
        ),
        ("train.total_steps", "abc", r"train.total_steps='abc' is not an integer"),
        ("train.actor_lr", "fast", r"train.actor_lr='fast' is not a number"),
        ("algo.value_options.labeled_only", "2", r"algo.value_options.labeled_only='2' is not a boolean"),
        ("train.total_steps", 1.5, r"train.total_steps=1.5 is a float, but train.total_steps holds an int"),
        ("data.labeled", 7, r"data.labeled=7 is an int, but data.labeled holds a str"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key(tiny_config, key, value, needle):
    with pytest.raises(RecipeError, match=needle):
        set_path(tiny_config("tempo"), key, value)


@pytest.mark.parametrize(
    "key,neighbours",
    [
        ("train.actr_lr", "train.actor_lr"),  # misspelt
        ("trian.actor_lr", "train.actor_lr"),  # misspelt section
        ("train.clip_low", "algo.policy_options.clip_low"),  # right name, wrong section
        ("total_steps", "train.total_steps"),  # no section
    ],
)
def test_unknown_keys_name_their_neighbours(tiny_config, key, neighbours):
    with pytest.raises(UnknownKeyError) as info:
        set_path(tiny_config("tempo"), key, 1)
    message = str(info.value)
    assert f"did you mean {neighbours}" in message, message
    assert message.count("\n") == 0
    if key == "train.actr_lr":  # the section's keys, then the guess
        assert message.startswith("unknown config key 'train.actr_lr'; known keys here: actor_grad_clip, actor_lr,")


def test_a_section_is_not_a_value(tiny_config):
    with pytest.raises(
        RecipeError, match=r"train is a section, not a value; set one of its keys: train.actor_grad_clip"
    ):
        set_path(tiny_config("tempo"), "train", 1)
    with pytest.raises(UnknownKeyError, match=r"seed is a value, not a section"):
        set_path(tiny_config("tempo"), "seed.x", 1)


def test_cli_reads_config_strings_and_reports_bad_ones_in_one_line(capsys):
    from tempo_jax.cli import main

    assert main(["train", f"--config={PAPER}:qwen3_14b,tmpo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tempo-jax: error: configs/paper.py: unknown method 'tmpo';") and err.count("\n") == 1
    assert "tempo, tempo_frozen_critic, ttrl, empo, zero_rl_ppo" in err
    assert main(["train", "--config", f"{PAPER}:qwen3_14b,tempo", "--config.train.actr_lr=1"]) == 1
    assert "did you mean train.actor_lr" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- paper recipes
MODELS = ("qwen3_14b", "olmo3_7b", "qwen3_8b")
PAPER_METHODS = ("tempo", "tempo_frozen_critic", "ttrl", "empo", "zero_rl_ppo")

# The settings of the twelve files configs/{tempo,ttrl,empo,zero_rl}_{model}_aime.py that configs/paper.py
# replaced, recorded from those files (their paper_common.paper() arguments + method defaults), under
# the key names they had then.
RECORDED_COMMON = {
    "algo.clip_high": 0.0005,
    "algo.clip_low": 0.0003,
    "algo.entropy_coef": 0.0,
    "algo.loss_agg": "seq-mean-token-mean",
    "algo.max_num_gen_batches": 10,
    "algo.policy_loss": "gspo",
    "checkpoint.save_every": 32,
    "data.labeled": "math_train",
    "data.max_prompt_tokens": 2048,
    "data.unlabeled": "aime24",
    "eval.before_train": True,
    "eval.datasets": "aime24,aime25",
    "eval.n": 16,
    "eval.test_freq": 4,
    "mesh.rollout_shape": (-1, 1, 4),
    "mesh.shape": (1, -1, 4),
    "mesh.topology": "v5p-64",
    "model.attention_chunk": 1024,
    "model.dtype": "bfloat16",
    "model.param_dtype": "float32",
    "model.remat": True,
    "model.scan_layers": True,
    "rollout.max_new_tokens": 16384,
    "rollout.n": 8,
    "rollout.temperature": 1.0,
    "rollout.top_k": -1,
    "rollout.top_p": 1.0,
    "seed": 1,
    "train.actor_grad_clip": 1.0,
    "train.actor_lr": 1e-06,
    "train.actor_weight_decay": 0.0,
    "train.critic_grad_clip": 1.0,
    "train.critic_weight_decay": 0.01,
    "train.micro_batch_tokens": 147456,
    "train.ppo_epochs": 1,
}
_TTT = {"algo.clip_ratio_c": 10.0, "algo.cliprange_value": 0.1, "algo.filter_groups": False, "train.total_steps": 128}
_TEMPO = {
    "algo.adv_estimator": "em_token",
    "algo.cliprange_value": 0.1,
    "algo.filter_groups": True,
    "algo.reward": "outcome",
    "method": "tempo",
    "train.total_steps": 20480,
}
_PPO = {
    "algo.adv_estimator": "gae",
    "algo.cliprange_value": 0.5,
    "algo.filter_groups": True,
    "algo.reward": "outcome",
    "algo.value_labeled_only": False,
    "method": "zero_rl_ppo",
    "train.critic_lr": 1e-05,
    "train.total_steps": 20480,
}
_Q14 = {"data.template": "qwen3", "model.actor_hf": "/path/to/Qwen3-14B", "model.preset": "Qwen3-14B"}
_OLMO = {"data.template": "olmo", "model.actor_hf": "/path/to/Olmo-3-1025-7B", "model.preset": "OLMo-3-7B"}
_Q8 = {"data.template": "qwen3", "model.actor_hf": "/path/to/Qwen3-8B", "model.preset": "Qwen3-8B"}
RECORDED = {
    "tempo_qwen3_14b_aime": {
        **_TEMPO,
        **_Q14,
        "model.init_from": "/path/to/stage1_run_qwen3_14b",
        "rollout.prompts_per_generate": 32,
        "run_dir": "runs/tempo_qwen3_14b_aime",
        "train.critic_lr": 1e-06,
        "train.ppo_mini_batch_size": 32,
        "train.train_batch_size": 128,
    },
    "tempo_olmo3_7b_aime": {
        **_TEMPO,
        **_OLMO,
        "model.critic_hf": "/path/to/olmo3_7b_value_model",
        "rollout.prompts_per_generate": 8,
        "run_dir": "runs/tempo_olmo3_7b_aime",
        "train.critic_lr": 0.0,
        "train.ppo_mini_batch_size": 64,
        "train.train_batch_size": 256,
    },
    "tempo_qwen3_8b_aime": {
        **_TEMPO,
        **_Q8,
        "model.init_from": "/path/to/stage1_run_qwen3_8b",
        "rollout.prompts_per_generate": 32,
        "run_dir": "runs/tempo_qwen3_8b_aime",
        "train.critic_lr": 0.0,
        "train.ppo_mini_batch_size": 64,
        "train.train_batch_size": 256,
    },
    "zero_rl_qwen3_14b_aime": {
        **_PPO,
        **_Q14,
        "rollout.prompts_per_generate": 32,
        "run_dir": "runs/zero_rl_ppo_qwen3_14b_aime",
        "train.ppo_mini_batch_size": 32,
        "train.train_batch_size": 128,
    },
    "zero_rl_olmo3_7b_aime": {
        **_PPO,
        **_OLMO,
        "rollout.prompts_per_generate": 8,
        "run_dir": "runs/zero_rl_ppo_olmo3_7b_aime",
        "train.ppo_mini_batch_size": 64,
        "train.train_batch_size": 256,
    },
    "zero_rl_qwen3_8b_aime": {
        **_PPO,
        **_Q8,
        "rollout.prompts_per_generate": 32,
        "run_dir": "runs/zero_rl_ppo_qwen3_8b_aime",
        "train.ppo_mini_batch_size": 64,
        "train.train_batch_size": 256,
    },
}
for _method, _reward in (("ttrl", "ttrl_voting"), ("empo", "empo_entropy")):
    for _model, _fields, _critic_lr, _ppg, _batch, _mini in (
        ("qwen3_14b", _Q14, 1e-06, 32, 256, 32),
        ("olmo3_7b", _OLMO, 0.0, 8, 256, 32),
        ("qwen3_8b", _Q8, 0.0, 16, 16, 16),
    ):
        RECORDED[f"{_method}_{_model}_aime"] = {
            **_TTT,
            **_fields,
            "algo.adv_estimator": "grpo",
            "algo.reward": _reward,
            "method": _method,
            "rollout.prompts_per_generate": _ppg,
            "run_dir": f"runs/{_method}_{_model}_aime",
            "train.critic_lr": _critic_lr,
            "train.ppo_mini_batch_size": _mini,
            "train.train_batch_size": _batch,
        }

RENAMED = {  # old key -> key now (the chosen function's options section, tempo_jax/train/algo_options.py)
    "algo.clip_low": "algo.policy_options.clip_low",
    "algo.clip_high": "algo.policy_options.clip_high",
    "algo.loss_agg": "algo.policy_options.agg",
    "algo.entropy_coef": "algo.policy_options.entropy_coef",
    "algo.cliprange_value": "algo.value_options.cliprange_value",
    "algo.value_labeled_only": "algo.value_options.labeled_only",
}


def _get(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def _old_name_and_method(model, method):
    return f"{'zero_rl' if method == 'zero_rl_ppo' else method}_{model}_aime"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", PAPER_METHODS)
def test_paper_recipes_keep_the_recorded_settings(model, method):
    cfg = load_config(f"{PAPER}:{model},{method}")
    old = _old_name_and_method(model, "tempo" if method == "tempo_frozen_critic" else method)
    want = {**RECORDED_COMMON, **RECORDED[old]}
    # the only intended changes: tempo's E-step always runs (critic lr 1e-6); the frozen critic
    # (the OLMo / Qwen3-8B scripts' critic lr 0) is its own method, with its own run directory
    if method == "tempo":
        want["train.critic_lr"] = 1e-6
    # prompts from the checkpoint's own chat template: the same prompt for Qwen3, OLMo's default
    # system message added for OLMo 3 (configs/paper.py)
    want["data.template"] = "auto"
    if method == "tempo_frozen_critic":
        want.update({"method": method, "train.critic_lr": 0.0, "run_dir": f"runs/tempo_frozen_critic_{model}_aime"})
    if method in ("ttrl", "empo"):
        # no critic: train.critic_lr is unused; the dual clip 10 is not an option of GSPO (TEMPO_SPEC §4)
        assert not uses_critic(cfg) and cfg.algo.policy_loss == "gspo"
        assert "clip_ratio_c" not in cfg.algo.policy_options
        del want["train.critic_lr"], want["algo.clip_ratio_c"]
    got = {key: _get(cfg, RENAMED.get(key, key)) for key in want}
    assert got == want
    assert cfg.model.init_from.startswith("/path/to/stage1_run_") == (
        method.startswith("tempo") and model != "olmo3_7b"
    )


def test_tempo_runs_the_e_step_and_the_frozen_critic_is_its_own_method(in_workdir):
    for model in MODELS:
        assert load_config(f"{PAPER}:{model},tempo").train.critic_lr == 1e-6
        frozen = load_config(f"{PAPER}:{model},tempo_frozen_critic")
        assert (frozen.method, frozen.train.critic_lr, frozen.algo.adv_estimator) == (
            "tempo_frozen_critic",
            0.0,
            "em_token",
        )
        expected = load_config(f"{PAPER}:{model},tempo").to_dict()
        expected.update(method="tempo_frozen_critic", run_dir=frozen.run_dir)
        expected["train"]["critic_lr"] = 0.0
        assert frozen.to_dict() == expected  # nothing else differs
    assert method_defaults("tempo_frozen_critic")["train.critic_lr"] == 0.0 and "tempo_frozen_critic" in METHODS
    # switching method on the command line brings the frozen critic; an explicit lr still wins
    assert load_config(f"{TINY}:tempo", ["--config.method=tempo_frozen_critic"]).train.critic_lr == 0.0
    cfg = load_config(f"{TINY}:tempo", ["--config.method=tempo_frozen_critic", "--config.train.critic_lr=1e-4"])
    assert (cfg.method, cfg.train.critic_lr) == ("tempo_frozen_critic", 1e-4)
    assert load_config(f"{TINY}:tempo").train.critic_lr == 1e-3


@pytest.mark.parametrize(
    "spec,needle",
    [
        (
            "qwen3_15b,tempo",
            (
                "unknown model 'qwen3_15b'; write --config=configs/paper.py:<model>,<method> with model "
                "one of qwen3_14b, olmo3_7b, qwen3_8b and method one of tempo, tempo_frozen_critic, ttrl, "
                "empo, zero_rl_ppo"
            ),
        ),
        ("qwen3_14b,zero_rl", "unknown method 'zero_rl'; write"),
        ("qwen3_14b", "configs/paper.py:qwen3_14b is not <model>,<method>; write"),
    ],
)
def test_paper_config_string_errors_list_the_choices(spec, needle):
    with pytest.raises(RecipeError) as info:
        load_config(f"{PAPER}:{spec}")
    assert needle in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(RecipeError, match=r"needs a config string: --config=.*paper.py:<\.\.\.> \(Paper recipes"):
        load_config(PAPER)
    with pytest.raises(RecipeError, match=r"unknown suite 'code'; write .*; add ,nonmath for the non-math"):
        load_config(f"{PAPER}:olmo3_7b,tempo,code")


BENCHMARK_SAMPLES = REPO / "tests" / "data" / "benchmarks"


def test_paper_nonmath_recipe_reads_the_benchmarks(tmp_path, monkeypatch):
    """configs/paper.py:<model>,<method>,nonmath: the AIME recipe with the non-math data (placeholders),
    evaluation and grading; pointed at the sample releases it validates and reads each benchmark."""
    monkeypatch.setenv("TEMPO_JAX_TFDS_DIR", str(tmp_path / "tfds"))
    placeholders = "/path/to/bbh,/path/to/agieval,/path/to/zebralogic"
    cfg = load_config(f"{PAPER}:olmo3_7b,tempo,nonmath")
    assert (cfg.data.unlabeled, cfg.eval.datasets, cfg.run_dir) == (
        placeholders,
        placeholders,
        "runs/tempo_olmo3_7b_nonmath",
    )
    assert cfg.data.labeled.startswith("/path/to/") and "gpqa" not in cfg.eval.datasets  # GPQA-Diamond held out
    aime, nonmath = load_config(f"{PAPER}:olmo3_7b,tempo").to_dict(), cfg.to_dict()
    for section, keys in (("data", ("labeled", "unlabeled")), ("eval", ("datasets",)), ("grader", ("tasks",))):
        for key in keys:
            del aime[section][key], nonmath[section][key]
    del aime["run_dir"], nonmath["run_dir"]
    assert nonmath == aime  # nothing else differs
    samples = f"{BENCHMARK_SAMPLES}/bbh,{BENCHMARK_SAMPLES}/agieval,{BENCHMARK_SAMPLES}/zebralogic"
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text('{"id": "l0", "problem": "Is 7 prime?", "answer": "yes", "data_source": "logic"}\n')
    overrides = [
        f"--config.data.labeled={labeled}",
        f"--config.data.unlabeled={samples}",
        f"--config.eval.datasets={samples},{BENCHMARK_SAMPLES}/gpqa_diamond.csv",
        f"--config.model.actor_hf={tmp_path}",
        f"--config.model.critic_hf={tmp_path}",
    ]
    cfg = load_config(f"{PAPER}:olmo3_7b,tempo,nonmath", overrides)
    validate(cfg)
    d_l, d_u = load_roles(cfg)
    assert [r["id"] for r in d_l] == ["l0"] and len(d_u) == 7 + 5 + 2
    assert [r["data_source"].split("/")[0] for r in d_u] == ["bbh"] * 7 + ["agieval"] * 5 + ["zebralogic"] * 2
    assert not any(r["is_labeled"] for r in d_u) and all(r["answer"] for r in d_u)
    assert eval_datasets(cfg)[-1].endswith("gpqa_diamond.csv")
    tasks = grader_task_map(cfg)
    assert [tasks.task_for(r["data_source"]) for r in d_u if r["id"].startswith("agieval/")] == [
        "multiple_choice",
        "multiple_choice",
        "math",  # AGIEval's cloze task: maths
        "math",
        "multiple_choice",
    ]
    assert {tasks.task_for(s) for s in ("bbh/navigate", "zebralogic", "gpqa_diamond")} == {
        "exact_match",
        "logic_grid",
        "multiple_choice",
    }


# -------------------------------------------------------------------------------------- tiny recipes
# configs/tiny_<name>.py (replaced by configs/tiny.py) -> its config string and what it set on top of
# tiny_recipe(method): recorded from those files.
TINY_RECORDED = {
    "tiny_stage1": ("stage1", {"method": "stage1", "run_dir": "runs/tiny_stage1", "algo.adv_estimator": "gae"}),
    "tiny_tempo": ("tempo", {"method": "tempo", "run_dir": "runs/tiny_tempo", "train.critic_lr": 0.001}),
    "tiny_zero_rl_ppo": ("zero_rl_ppo", {"method": "zero_rl_ppo", "run_dir": "runs/tiny_zero_rl_ppo"}),
    "tiny_ttrl": ("ttrl", {"method": "ttrl", "run_dir": "runs/tiny_ttrl", "algo.reward": "ttrl_voting"}),
    "tiny_empo": ("empo", {"method": "empo", "run_dir": "runs/tiny_empo", "algo.reward": "empo_entropy"}),
    "tiny_tempo_critic_every2": (
        "tempo,critic_every2",
        {
            "method": "tempo",
            "run_dir": "runs/tiny_tempo_critic_every2",
            "algo.critic_update_every": 2,
            "train.critic_lr": 0.001,
        },
    ),
    "tiny_tempo_em": (
        "tempo,em",
        {"method": "tempo", "run_dir": "runs/tiny_tempo_em", "algo.adv_estimator": "em", "algo.critic_update_every": 1},
    ),
    # was method "tempo" with critic lr 0; now the method that says so
    "tiny_tempo_frozen_critic": (
        "tempo_frozen_critic",
        {
            "method": "tempo_frozen_critic",
            "train.critic_lr": 0.0,
            "run_dir": "runs/tiny_tempo_frozen_critic",
            "algo.adv_estimator": "em_token",
        },
    ),
}


@pytest.mark.parametrize("old", sorted(TINY_RECORDED))
def test_tiny_recipes_keep_the_recorded_settings(in_workdir, old):
    spec, want = TINY_RECORDED[old]
    cfg = load_config(f"{TINY}:{spec}")
    assert {key: _get(cfg, key) for key in want} == want
    assert (cfg.train.total_steps, cfg.train.train_batch_size, cfg.model.actor_hf) == (3, 4, "runs/tiny_assets/model")


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("tmpo", "configs/tiny.py: unknown method 'tmpo'; write --config=configs/tiny.py:<method>[,<variant>]"),
        ("ttrl,em", "unknown variant 'em' of ttrl"),
        ("tempo,em2", "unknown variant 'em2' of tempo"),
    ],
)
def test_tiny_config_string_errors_list_the_choices(in_workdir, spec, needle):
    with pytest.raises(RecipeError) as info:
        load_config(f"{TINY}:{spec}")
    assert needle in str(info.value) and "\n" not in str(info.value)
