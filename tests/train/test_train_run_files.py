"""The run directory's model_config.json: the generation_config.json fields round-trip, and a
model_config.json written before they existed still loads."""

from __future__ import annotations

import json

from tempo_jax.train.run_files import model_config_from_dict, model_config_to_dict
from tempo_jax.train.tiny import tiny_model_config

GENERATION_FIELDS = tuple(f"generation_{k}" for k in ("bos_token_id", "eos_token_id", "pad_token_id", "extras"))


def test_generation_fields_round_trip_through_json():
    cfg = tiny_model_config(
        104,
        eos_token_id=(1, 3),
        generation_eos_token_id=(3, 1),
        generation_pad_token_id=0,
        generation_bos_token_id=2,
        generation_extras='{"temperature": 0.6}',
    )
    again = model_config_from_dict(json.loads(json.dumps(model_config_to_dict(cfg))))
    assert again == cfg and again.stop_ids == (3, 1)
    hash(again)  # lists came back as tuples


def test_old_model_config_without_generation_fields_loads():
    cfg = tiny_model_config(104)
    old = {k: v for k, v in json.loads(json.dumps(model_config_to_dict(cfg))).items() if k not in GENERATION_FIELDS}
    again = model_config_from_dict(old)
    assert again == cfg and all(getattr(again, k) is None for k in GENERATION_FIELDS)
    assert again.stop_ids == (1,) and again.declared_pad_id == 0
