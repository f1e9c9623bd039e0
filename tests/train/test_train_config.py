"""Recipe loading and validation: bad settings fail at start, name the key and say what to do."""
import pytest

from tempo_jax.errors import UserError
from tempo_jax.train.config import RecipeError, UnknownKeyError, load_config, parse_override, set_path, validate


def test_boolean_typo_is_refused_not_read_as_false(tiny_config):
    cfg = tiny_config("tempo")
    with pytest.raises(RecipeError, match=r"algo.value_labeled_only='Treu' is not a boolean"):
        set_path(cfg, *parse_override("--config.algo.value_labeled_only=Treu"))
    set_path(cfg, *parse_override("--config.algo.value_labeled_only=false"))
    assert cfg.algo.value_labeled_only is False
    set_path(cfg, *parse_override("--config.algo.value_labeled_only=On"))
    assert cfg.algo.value_labeled_only is True


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


def test_model_must_embed_the_tokenizer_and_hold_the_lengths(tiny_config):
    from tempo_jax.models.config import ModelConfig, RopeConfig
    from tempo_jax.models.tokenizer import TokenizerError
    from tempo_jax.train.setup import check_model_fits

    model = ModelConfig(model_type="qwen3", vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=1,
                        num_heads=4, num_kv_heads=2, head_dim=8, rope=RopeConfig(theta=1e4),
                        max_position_embeddings=128)
    cfg = tiny_config("tempo", data__max_prompt_tokens=96, rollout__max_new_tokens=16)
    check_model_fits(cfg, [0] * 64, model)
    with pytest.raises(TokenizerError, match="the tokenizer has 65 tokens but the model's vocab_size is 64"):
        check_model_fits(cfg, [0] * 65, model)
    set_path(cfg, "eval.max_new_tokens", 40)
    with pytest.raises(RecipeError, match=r"= 136 exceeds the model's max_position_embeddings=128"):
        check_model_fits(cfg, [0] * 64, model)
