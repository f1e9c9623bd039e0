"""Paper-scale recipes (TEMPO_SPEC §2 and §4): one function builds every model x method combination.

Each recipe names the TPU slice it is planned for (``mesh.topology``) and its mesh; check a change
with ``tempo-jax plan --config configs/<recipe>.py`` before launching (launch/README.md).
Checkpoint and data paths are placeholders: override them on the command line, e.g.
``--config.model.actor_hf=/mnt/models/Qwen3-14B --config.run_dir=gs://bucket/runs/q14``.
``model.preset`` is the architecture ``tempo-jax plan`` compiles (no weights needed).
"""
from tempo_jax.train.config import recipe

SEQ = 2048 + 16384  # max prompt + max response tokens

# model key -> (preset, HF placeholder, template, TEMPO batch/mini (prompts), TEMPO critic lr,
#               critic source, TTRL/EMPO batch/mini, prompts per sampler call)
MODELS = {
    "qwen3_14b": dict(preset="Qwen3-14B", hf="/path/to/Qwen3-14B", template="qwen3", batch=128, mini=32,
                      critic_lr=1e-6, critic="init_from", ttt_batch=256, ttt_mini=32, ppg=32),
    "olmo3_7b": dict(preset="OLMo-3-7B", hf="/path/to/Olmo-3-1025-7B", template="olmo", batch=256, mini=64,
                     critic_lr=0.0, critic="critic_hf", ttt_batch=256, ttt_mini=32, ppg=8),
    "qwen3_8b": dict(preset="Qwen3-8B", hf="/path/to/Qwen3-8B", template="qwen3", batch=256, mini=64,
                     critic_lr=0.0, critic="init_from", ttt_batch=16, ttt_mini=16, ppg=32),
}

TOPOLOGY = "v5p-64"  # 32 chips x 95 GiB; see benchmarks/results/plan_<recipe>.json
MESH = (1, -1, 4)  # FSDP over 8 chips x tensor 4 on v5p-64 (-1 = the remaining chips)
ROLLOUT_MESH = (-1, 1, 4)  # sampler: weights replicated over data, split over tensor (no per-token all-gather)
MICRO_ROWS = 8  # one 18k-token sequence per FSDP shard per micro-batch on v5p-64
ATTENTION_CHUNK = 1024  # queries per attention block: E/M-step temporaries 58 -> 25 GiB per chip (Qwen3-8B)


def paper(model: str, method: str, **changes):
    m = MODELS[model]
    ttt = method in ("ttrl", "empo")
    batch = m["ttt_batch"] if ttt else m["batch"]
    base = dict(
        seed=1,
        run_dir=f"runs/{method}_{model}_aime",
        model__actor_hf=m["hf"], model__preset=m["preset"], model__param_dtype="float32", model__dtype="bfloat16",
        model__remat=True, model__scan_layers=True, model__attention_chunk=ATTENTION_CHUNK,
        data__labeled="math_train", data__unlabeled="aime24", data__template=m["template"],
        data__max_prompt_tokens=2048,
        rollout__n=8, rollout__max_new_tokens=16384, rollout__temperature=1.0, rollout__top_p=1.0,
        rollout__top_k=-1, rollout__prompts_per_generate=min(m["ppg"], batch),
        algo__policy_loss="gspo", algo__clip_low=3e-4, algo__clip_high=5e-4, algo__loss_agg="seq-mean-token-mean",
        algo__entropy_coef=0.0, algo__cliprange_value=0.1, algo__max_num_gen_batches=10,
        train__total_steps=20480, train__train_batch_size=batch,
        train__ppo_mini_batch_size=m["ttt_mini"] if ttt else m["mini"], train__ppo_epochs=1,
        train__micro_batch_tokens=MICRO_ROWS * SEQ,
        train__actor_lr=1e-6, train__actor_weight_decay=0.0, train__actor_grad_clip=1.0,
        train__critic_lr=m["critic_lr"], train__critic_weight_decay=0.01, train__critic_grad_clip=1.0,
        checkpoint__save_every=32,
        eval__test_freq=4, eval__datasets="aime24,aime25", eval__n=16, eval__before_train=True,
        mesh__shape=MESH, mesh__rollout_shape=ROLLOUT_MESH, mesh__topology=TOPOLOGY,
    )
    if method == "tempo" and m["critic"] == "init_from":
        base["model__init_from"] = f"/path/to/stage1_run_{model}"  # stage-1 run directory (actor + critic)
    if method == "tempo" and m["critic"] == "critic_hf":
        base["model__critic_hf"] = f"/path/to/{model}_value_model"  # HF token-classification critic
    if ttt:  # §4.1/4.2: GRPO on D_U only, no critic, dual clip 10 (unused by GSPO), no filtering
        base.update(algo__clip_ratio_c=10.0, train__total_steps=128)
    if method == "zero_rl_ppo":  # §4.3: GAE (gamma = lam = 1) on D_L only, verl critic defaults
        base.update(train__critic_lr=1e-5, algo__cliprange_value=0.5)
    base.update(changes)
    return recipe(method, **base)
