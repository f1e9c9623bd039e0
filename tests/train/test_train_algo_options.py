"""Config sections of the chosen estimator and losses: exactly the function's options, rebuilt when
the function changes, typed, and passed to the function as given."""

import pytest

from tempo_jax.rl.options import GaeOptions, GroupNormOptions, PpoOptions, ValueClipOptions
from tempo_jax.train import programs
from tempo_jax.train.algo_options import algo_options
from tempo_jax.train.config import RecipeError, UnknownKeyError, load_config, recipe, set_path, validate


def test_sections_hold_exactly_the_chosen_functions_options():
    cfg = recipe("tempo")
    assert set(cfg.algo.adv_options) == {"whiten"}
    cfg = recipe("stage1")  # gae, and verl's PPO critic settings
    assert algo_options(cfg).adv == GaeOptions()
    assert algo_options(cfg).value == ValueClipOptions(cliprange_value=0.5, labeled_only=False)
    assert algo_options(recipe("ttrl")).adv == GroupNormOptions()


def test_an_option_the_function_does_not_take_is_an_error_naming_the_key():
    cfg = recipe("tempo")
    with pytest.raises(UnknownKeyError, match=r"algo\.adv_options\.gamma.*whiten"):
        set_path(cfg, "algo.adv_options.gamma", 0.99)
    with pytest.raises(UnknownKeyError, match=r"algo\.policy_options\.clip_ratio_c"):
        set_path(cfg, "algo.policy_options.clip_ratio_c", 3.0)  # gspo has no dual clip


def test_choosing_another_function_rebuilds_its_section_and_keeps_shared_values():
    cfg = recipe("tempo", algo__policy_options__clip_high=0.28)
    set_path(cfg, "algo.policy_loss", "ppo")
    set_path(cfg, "algo.policy_options.clip_ratio_c", 3.0)
    assert algo_options(cfg).policy == PpoOptions(clip_low=3e-4, clip_high=0.28, clip_ratio_c=3.0)
    set_path(cfg, "algo.adv_estimator", "gae")
    set_path(cfg, "algo.adv_options.gamma", 0.9)
    assert algo_options(cfg).adv == GaeOptions(gamma=0.9)  # whiten carried over from em_token


def test_overrides_on_the_command_line(tmp_path):
    path = tmp_path / "recipe.py"
    path.write_text("from tempo_jax.train.config import recipe\n\ndef get_config():\n    return recipe('tempo')\n")
    cfg = load_config(str(path), ["--config.algo.adv_estimator=gae", "--config.algo.adv_options.lam=0.95"])
    assert programs.advantage_kwargs(cfg) == {"gamma": 1.0, "lam": 0.95, "whiten": "global"}


def test_option_values_are_validated():
    cfg = recipe("tempo", algo__policy_options__kl_coef=0.1, algo__adv_options__whiten="batch")
    with pytest.raises(RecipeError) as err:
        validate(cfg)
    assert "kl_coef needs a reference policy" in str(err.value)
    assert "whiten='batch' must be 'global' or 'none'" in str(err.value)


def test_the_trainer_and_the_planner_pass_the_configured_options(monkeypatch):
    cfg = recipe("zero_rl_ppo", algo__policy_loss="ppo", algo__policy_options__clip_ratio_c=3.0)
    seen = {}

    def fake_make(graphdef, tx, spec, name, **kwargs):
        seen[name] = kwargs
        return lambda *a: a

    monkeypatch.setattr(programs, "make_m_step", fake_make)
    monkeypatch.setattr(programs, "make_e_step", fake_make)
    programs.update_step(cfg, "actor", None, None, None)
    programs.update_step(cfg, "critic", None, None, None)
    assert seen["ppo"]["clip_ratio_c"] == 3.0 and seen["ppo"]["clip_low"] == 3e-4
    assert seen["seq_clip"] == {"cliprange_value": 0.5, "agg": "seq-mean-token-mean", "labeled_only": False}
