"""Group filters (host-side NumPy) and the registry."""

import numpy as np
import pytest

from tempo_jax.rl import GroupAccumulator, Registry, confidence_filter, constant_labeled_groups


def test_constant_labeled_groups_hand_example():
    # group 10 labeled, rewards [1, 1, 1]    -> constant, dropped
    # group 11 labeled, rewards [1, -1, 1]   -> kept
    # group 12 unlabeled, rewards [-1, -1, -1] -> kept (unlabeled groups are always kept)
    # group 13 labeled, rewards [-1, -1, -1] -> constant, dropped
    # group 14 labeled singleton             -> std 0, dropped (as the TEMPO trainer)
    scores = np.array([1, 1, 1, 1, -1, 1, -1, -1, -1, -1, -1, -1, 1.0])
    gids = np.array([10, 10, 10, 11, 11, 11, 12, 12, 12, 13, 13, 13, 14])
    lab = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1], bool)
    keep = constant_labeled_groups(scores, gids, lab)
    np.testing.assert_array_equal(keep, [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0])


def test_constant_labeled_groups_interleaved_ids_and_tolerance():
    # groups need not be contiguous; a spread below tol counts as constant
    scores = np.array([0.5, 1.0, 0.5 + 1e-9, 0.0])
    gids = np.array([3, 4, 3, 4])
    keep = constant_labeled_groups(scores, gids, np.ones(4, bool))
    np.testing.assert_array_equal(keep, [False, True, False, True])


def test_constant_labeled_groups_rejects_mixed_group():
    with pytest.raises(ValueError, match="mixes labeled and unlabeled"):
        constant_labeled_groups(np.array([1.0, -1.0]), np.array([5, 5]), np.array([True, False]))


def test_confidence_filter():
    np.testing.assert_array_equal(confidence_filter(np.array([0.125, 0.3, 0.5, 1.0])), [False, True, True, True])
    np.testing.assert_array_equal(confidence_filter(np.array([0.2, 0.9]), lower=0.1, upper=0.8), [True, False])


def _gen_batch(first_group, n_groups, n=2):
    gids = np.repeat(np.arange(n_groups), n)  # per-batch ids 0..P-1: collide across batches
    return {
        "group_ids": gids,
        "uid": np.repeat(np.arange(first_group, first_group + n_groups), n),  # global, for checking
        "tokens": np.arange(n_groups * n * 3).reshape(n_groups * n, 3) + 1000 * first_group,
    }


def test_accumulate_until_full_then_truncate():
    acc = GroupAccumulator(target_groups=5, max_gen_batches=10)
    # batch 0: 4 groups of 2, groups 1 and 2 filtered -> keeps uid 0, 3
    b0 = _gen_batch(0, 4)
    assert acc.add(b0, np.isin(b0["uid"], [0, 3])) is False
    assert acc.stats() == {"gen_batches": 1, "kept_groups": 2, "filtered_groups": 2, "target_groups": 5}
    # batch 1: keeps uid 4 (both rows) and uid 6 (only one of its rows kept)
    b1 = _gen_batch(4, 4)
    keep1 = np.isin(b1["uid"], [4, 6]) & ~((b1["uid"] == 6) & (np.arange(8) % 2 == 1))
    assert acc.add(b1, keep1) is False
    assert acc.num_groups == 4
    # batch 2: keeps all 4 -> 8 groups >= 5: full
    b2 = _gen_batch(8, 4)
    assert acc.add(b2, np.ones(8, bool)) is True
    out = acc.take()
    # first 5 groups in arrival order: uid 0, 3, 4, 6 (one row), 8; surplus 9, 10, 11 dropped
    np.testing.assert_array_equal(out["uid"], [0, 0, 3, 3, 4, 4, 6, 8, 8])
    np.testing.assert_array_equal(out["group_ids"], [0, 0, 1, 1, 2, 2, 3, 4, 4])  # renumbered
    np.testing.assert_array_equal(out["tokens"][0], b0["tokens"][0])
    np.testing.assert_array_equal(out["tokens"][-1], b2["tokens"][1])
    assert acc.last_stats == {
        "gen_batches": 3,
        "kept_groups": 8,
        "filtered_groups": 4,
        "target_groups": 5,
        "surplus_groups": 3,
        "rows": 9,
    }
    # reset: a new cycle starts empty
    assert acc.num_groups == 0 and acc.stats()["gen_batches"] == 0
    with pytest.raises(ValueError, match="only 0 of 5 groups"):
        acc.take()


def test_truncation_is_exactly_target_times_n_rows():
    acc = GroupAccumulator(target_groups=3)
    b = _gen_batch(0, 5, n=4)
    assert acc.add(b, np.ones(20, bool))
    out = acc.take()
    assert out["tokens"].shape == (3 * 4, 3)
    np.testing.assert_array_equal(out["uid"], np.repeat([0, 1, 2], 4))


def test_max_gen_batches_error_message():
    acc = GroupAccumulator(target_groups=4, max_gen_batches=3)
    for i in range(2):
        b = _gen_batch(10 * i, 4)
        assert acc.add(b, b["uid"] == 10 * i) is False  # 1 of 4 groups kept per batch
    b = _gen_batch(20, 4)
    with pytest.raises(ValueError) as e:
        acc.add(b, b["uid"] == 20)
    msg = str(e.value)
    assert "after 3 generation batches only 3 groups were kept, 4 are needed" in msg
    assert "9 groups were filtered out" in msg
    assert "max_num_gen_batches (now 3" in msg and "D_L harder" in msg and "bigger generation batch" in msg


def test_unbounded_when_max_gen_batches_nonpositive():
    acc = GroupAccumulator(target_groups=2, max_gen_batches=0)
    for i in range(20):
        b = _gen_batch(i, 1)
        full = acc.add(b, np.zeros(2, bool) if i < 19 else np.ones(2, bool))
    assert not full and acc.stats()["gen_batches"] == 20


def test_accumulator_input_validation():
    acc = GroupAccumulator(target_groups=1)
    with pytest.raises(KeyError, match="group_ids"):
        acc.add({"x": np.zeros(2)}, np.ones(2, bool))
    with pytest.raises(ValueError, match="keep_rows_mask has 3 entries for 2 rows"):
        acc.add({"group_ids": np.zeros(2)}, np.ones(3, bool))
    with pytest.raises(ValueError, match="leading dim"):
        acc.add({"group_ids": np.zeros(2), "x": np.zeros(3)}, np.ones(2, bool))
    with pytest.raises(ValueError, match="target_groups"):
        GroupAccumulator(target_groups=0)


def test_registry_basics():
    reg = Registry("widget")

    @reg.register("a")
    def a():
        return 1

    assert reg.get("a") is a and "a" in reg and reg.names() == ("a",)
    with pytest.raises(ValueError, match="unknown widget 'b'; known: a"):
        reg.get("b")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(lambda: 2)
    with pytest.raises(ValueError, match="non-empty"):
        reg.register("")
