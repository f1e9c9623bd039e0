"""Paper recipes (TEMPO_SPEC §2 and §4): ``--config=configs/paper.py:<model>,<method>[,<suite>]``.

    models:  qwen3_14b, olmo3_7b, qwen3_8b
    methods: tempo, tempo_frozen_critic, ttrl, empo, zero_rl_ppo
    suites:  aime (the default: MATH train as D_L, AIME 2024 as D_U), nonmath (below)

e.g. ``tempo-jax train --config=configs/paper.py:qwen3_14b,tempo``.

``nonmath``: the paper's non-math runs (OLMo-3-7B; ``configs/paper.py:olmo3_7b,tempo,nonmath``):
test-time training on BIG-Bench Hard, AGIEval and ZebraLogic (their average is the paper's number),
GPQA-Diamond held out (``tempo-jax eval --config=... --datasets=/path/to/gpqa_diamond.csv``). The
data paths are placeholders for your copies of the releases, read as released
(tempo_jax/data/benchmarks.py): BBH's ``bbh/`` directory, AGIEval's ``data/v1_1/`` directory (or the
tasks you evaluate), ZebraLogic's ``grid_mode/`` directory (the graded copy,
allenai/ZebraLogicBench-private), GPQA's ``gpqa_diamond.csv``; ``data.labeled`` is your labeled
set for the critic (D_L; any schema of tempo_jax/data/records.py). Each row is graded by its
``data_source`` (``grader.tasks``; AGIEval's cloze tasks are maths). Every ``tempo`` recipe runs a real
E-step: the critic is recalibrated with lr 1e-6 each step, as the reference's Qwen3-14B script does.
The reference's OLMo-3-7B and Qwen3-8B scripts set critic lr 0 (no recalibration); that is the
frozen-critic ablation (TEMPO_SPEC §5.1), method ``tempo_frozen_critic``, never a default.

Each recipe names the TPU slice it is planned for (``mesh.topology``) and its mesh; check a change
with ``tempo-jax plan --config=configs/paper.py:<model>,<method>`` before launching (launch/README.md).
Checkpoint and data paths are placeholders: override them on the command line, e.g.
``--config.model.actor_hf=/mnt/models/Qwen3-14B --config.run_dir=gs://bucket/runs/q14``.
``model.preset`` is the architecture ``tempo-jax plan`` compiles (no weights needed).
"""

from tempo_jax.train.config import RecipeError, recipe

SEQ = 2048 + 16384  # max prompt + max response tokens

# model key -> (preset, HF placeholder, template, TEMPO/PPO batch/mini (prompts), where the TEMPO
#               critic comes from, TTRL/EMPO batch/mini, prompts per sampler call)
# Prompts come from each checkpoint's own chat template ("auto"). For Qwen3 that is the prompt the
# hand-built "qwen3" template gave (token for token, tests/data/test_data_templates.py). For OLMo 3
# it is not: the checkpoint's template adds OLMo's default system message, which "olmo" (bare
# ChatML) left out -- on purpose, as the model was trained with it. A checkpoint whose tokenizer has
# no chat template stops with an error; then set --config.data.template=olmo (the old prompt).
MODELS = {
    "qwen3_14b": dict(
        preset="Qwen3-14B",
        hf="/path/to/Qwen3-14B",
        template="auto",
        batch=128,
        mini=32,
        critic="init_from",
        ttt_batch=256,
        ttt_mini=32,
        ppg=32,
    ),
    "olmo3_7b": dict(
        preset="OLMo-3-7B",
        hf="/path/to/Olmo-3-1025-7B",
        template="auto",
        batch=256,
        mini=64,
        critic="critic_hf",
        ttt_batch=256,
        ttt_mini=32,
        ppg=8,
    ),
    "qwen3_8b": dict(
        preset="Qwen3-8B",
        hf="/path/to/Qwen3-8B",
        template="auto",
        batch=256,
        mini=64,
        critic="init_from",
        ttt_batch=16,
        ttt_mini=16,
        ppg=32,
    ),
}
METHODS = ("tempo", "tempo_frozen_critic", "ttrl", "empo", "zero_rl_ppo")
SUITES = ("aime", "nonmath")
NONMATH_BENCHMARKS = "/path/to/bbh,/path/to/agieval,/path/to/zebralogic"  # D_U and the evaluated benchmarks
NONMATH = dict(
    data__labeled="/path/to/nonmath_labeled.jsonl",  # D_L: your labeled set (the critic's E-step)
    data__unlabeled=NONMATH_BENCHMARKS,  # comma-separated sources, read together
    eval__datasets=NONMATH_BENCHMARKS,  # a row per benchmark (per-task rows for BBH, AGIEval) and their average
    # rows are graded by their data_source (tempo_jax/rewards/tasks.py: bbh, agieval, zebra built in);
    # AGIEval's cloze tasks are maths
    grader__tasks="agieval/math:math,agieval/gaokao-mathcloze:math",
)
TEMPO_CRITIC_LR = 1e-6  # the E-step's critic lr (the reference's Qwen3-14B script, TEMPO_SPEC §2 / §5.1)

TOPOLOGY = "v5p-64"  # 32 chips x 95 GiB; see benchmarks/results/plan_<recipe>.json
MESH = (1, -1, 4)  # FSDP over 8 chips x tensor 4 on v5p-64 (-1 = the remaining chips)
ROLLOUT_MESH = (-1, 1, 4)  # sampler: weights replicated over data, split over tensor (no per-token all-gather)
MICRO_ROWS = 8  # one 18k-token sequence per FSDP shard per micro-batch on v5p-64
ATTENTION_CHUNK = 1024  # queries per attention block: E/M-step temporaries 58 -> 25 GiB per chip (Qwen3-8B)

USAGE = (
    f"write --config=configs/paper.py:<model>,<method> with model one of {', '.join(MODELS)} "
    f"and method one of {', '.join(METHODS)}; add ,nonmath for the non-math benchmarks (BBH, AGIEval, ZebraLogic)"
)


def paper(model: str, method: str, suite: str = "aime", **changes):
    """The recipe of ``method`` on ``model`` for ``suite``; ``changes`` (``section__key=value``) go on top."""
    if model not in MODELS:
        raise RecipeError(f"configs/paper.py: unknown model {model!r}; {USAGE}")
    if method not in METHODS:
        raise RecipeError(f"configs/paper.py: unknown method {method!r}; {USAGE}")
    if suite not in SUITES:
        raise RecipeError(f"configs/paper.py: unknown suite {suite!r}; {USAGE}")
    m = MODELS[model]
    ttt = method in ("ttrl", "empo")
    tempo = method in ("tempo", "tempo_frozen_critic")
    batch = m["ttt_batch"] if ttt else m["batch"]
    base = dict(
        seed=1,
        run_dir=f"runs/{method}_{model}_aime",
        model__actor_hf=m["hf"],
        model__preset=m["preset"],
        model__param_dtype="float32",
        model__dtype="bfloat16",
        model__remat=True,
        model__scan_layers=True,
        model__attention_chunk=ATTENTION_CHUNK,
        model__attention_impl="auto",  # splash attention on TPU, cuDNN on GPU (bf16), ours on CPU
        data__labeled="math_train",
        data__unlabeled="aime24",
        data__template=m["template"],
        data__max_prompt_tokens=2048,
        rollout__n=8,
        rollout__max_new_tokens=16384,
        rollout__temperature=1.0,
        rollout__top_p=1.0,
        rollout__top_k=-1,
        rollout__prompts_per_generate=min(m["ppg"], batch),
        algo__policy_loss="gspo",
        algo__policy_options__clip_low=3e-4,
        algo__policy_options__clip_high=5e-4,
        algo__policy_options__agg="seq-mean-token-mean",
        algo__policy_options__entropy_coef=0.0,
        algo__value_options__cliprange_value=0.1,
        algo__max_num_gen_batches=10,
        train__total_steps=20480,
        train__train_batch_size=batch,
        train__ppo_mini_batch_size=m["ttt_mini"] if ttt else m["mini"],
        train__ppo_epochs=1,
        train__micro_batch_tokens=MICRO_ROWS * SEQ,
        train__actor_lr=1e-6,
        train__actor_weight_decay=0.0,
        train__actor_grad_clip=1.0,
        train__critic_weight_decay=0.01,
        train__critic_grad_clip=1.0,
        checkpoint__save_every=32,
        eval__test_freq=4,
        eval__datasets="aime24,aime25",
        eval__n=16,
        eval__before_train=True,
        mesh__shape=MESH,
        mesh__rollout_shape=ROLLOUT_MESH,
        mesh__topology=TOPOLOGY,
    )
    if tempo:  # E-step with lr 1e-6; tempo_frozen_critic: lr 0 (the OLMo / Qwen3-8B scripts' setting)
        base["train__critic_lr"] = TEMPO_CRITIC_LR if method == "tempo" else 0.0
        if m["critic"] == "init_from":
            base["model__init_from"] = f"/path/to/stage1_run_{model}"  # stage-1 run directory (actor + critic)
        else:
            base["model__critic_hf"] = f"/path/to/{model}_value_model"  # HF token-classification critic
    if ttt:  # §4.1/4.2: GRPO on D_U only, no critic, no filtering (their dual clip 10 is unused by GSPO)
        base.update(train__total_steps=128)
    if method == "zero_rl_ppo":  # §4.3: GAE (gamma = lam = 1) on D_L only, verl critic defaults
        base.update(train__critic_lr=1e-5, algo__value_options__cliprange_value=0.5)
    if suite == "nonmath":
        base.update(NONMATH, run_dir=f"runs/{method}_{model}_nonmath")
    base.update(changes)
    return recipe(method, **base)


def get_config(config_string: str):
    """``"<model>,<method>[,<suite>]"``, e.g. ``"qwen3_14b,tempo"``, ``"olmo3_7b,tempo,nonmath"``."""
    parts = [p.strip() for p in config_string.split(",")]
    if len(parts) not in (2, 3):
        raise RecipeError(f"configs/paper.py:{config_string} is not <model>,<method>; {USAGE}")
    return paper(*parts)
