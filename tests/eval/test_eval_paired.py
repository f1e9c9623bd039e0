"""Paired changes and their standard errors, against hand computations."""

import math

import numpy as np
import pytest

from tempo_jax.eval.paired import Change, combine_seeds, paired_change


def test_paired_change_by_hand():
    before = {"a": 0.25, "b": 0.5, "c": 0.0, "d": 1.0}
    after = {"a": 0.5, "b": 0.5, "c": 0.25, "d": 1.0, "extra": 0.3}  # ids only in one side are ignored
    c = paired_change(before, after)
    d = np.array([0.25, 0.0, 0.25, 0.0])
    assert c.n == 4 and c.mean == pytest.approx(0.125)
    assert c.se == pytest.approx(d.std(ddof=1) / 2.0)  # sqrt(1/48) / 2
    assert c.se == pytest.approx(math.sqrt(1 / 48) / 2)
    assert c.significant is False  # 0.125 < 2 * 0.072
    with pytest.raises(ValueError, match="no question"):
        paired_change({"x": 1.0}, {"y": 1.0})


def test_combine_seeds_and_significance():
    parts = [Change(0.06, 0.02, 96, (0.06,)), Change(0.10, 0.02, 96, (0.10,)), Change(0.02, 0.02, 96, (0.02,))]
    c = combine_seeds(parts)
    assert c.mean == pytest.approx(0.06) and c.se == pytest.approx(math.sqrt(3 * 0.02**2) / 3)
    assert c.n == 288 and c.per_seed == (0.06, 0.10, 0.02) and c.seed_std == pytest.approx(0.04)
    assert c.significant and c.format() == "+0.060 ± 0.012*"
    assert not Change(-0.01, 0.02, 10).significant and Change(-0.01, 0.02, 10).format() == "-0.010 ± 0.020"
    assert math.isnan(Change(0.1, 0.01, 5).seed_std)
