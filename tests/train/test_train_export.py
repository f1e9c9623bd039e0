"""The end-of-run export writes the stop and pad ids the rollouts used into generation_config.json."""

from __future__ import annotations

import json
import os
import types

import transformers
from flax import nnx

from tempo_jax.models.decoder import CausalLM
from tempo_jax.train.export import export_final
from tempo_jax.train.tiny import char_tokenizer, tiny_model_config


def test_export_final_writes_the_rollouts_stop_and_pad_ids(tmp_path):
    tokenizer = char_tokenizer(str(tmp_path / "tok"))
    model = CausalLM(tiny_model_config(len(tokenizer)), nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    trainer = types.SimpleNamespace(
        run_dir=str(tmp_path / "run"),
        actor=types.SimpleNamespace(graphdef=graphdef, state=types.SimpleNamespace(params=state)),
        critic=None,
        tokenizer=tokenizer,
        settings=types.SimpleNamespace(stop_ids=(1, 3), pad_id=0),  # eos, then <|im_end|> from the tokenizer
    )
    export_final(trainer)
    out = os.path.join(trainer.run_dir, "export", "actor")
    with open(os.path.join(out, "generation_config.json"), encoding="utf-8") as fh:
        assert json.load(fh) == {"eos_token_id": [1, 3], "pad_token_id": 0}
    gen = transformers.GenerationConfig.from_pretrained(out, local_files_only=True)
    assert gen.eos_token_id == [1, 3] and gen.pad_token_id == 0
