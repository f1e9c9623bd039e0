"""MixedStream: flags, replication, seeded epochs, exact resume."""

import collections
import json

import pytest

from tempo_jax.data.mixing import MixedStream


def _recs(prefix, n, labeled=True):
    return [
        {"id": f"{prefix}{i}", "problem": f"p{i}", "answer": str(i), "is_labeled": labeled, "data_source": prefix}
        for i in range(n)
    ]


DL, DU = _recs("L", 23), _recs("U", 5, labeled=True)  # D_U flag is overridden by membership


def _ids(batch):
    return [(r["id"], r["replica"]) for r in batch]


@pytest.mark.parametrize("drop_last", [True, False])
def test_exact_resume(drop_last):
    kw = dict(batch_size=8, seed=3, replicate_unlabeled_to=12, drop_last=drop_last)
    a = MixedStream(DL, DU, **kw)
    for _ in range(5):  # k batches, crossing an epoch boundary (pool = 23 + 15 = 38)
        a.next_batch()
    state = json.loads(json.dumps(a.state()))  # survives JSON (it goes into checkpoints)
    more = [_ids(a.next_batch()) for _ in range(9)]
    b = MixedStream(DL, DU, **kw)
    b.restore(state)
    assert [_ids(b.next_batch()) for _ in range(9)] == more
    c = MixedStream(DL, DU, **{**kw, "seed": 4})
    with pytest.raises(ValueError, match="different data or settings"):
        c.restore(state)


def test_flags_replication_and_epochs():
    s = MixedStream(DL, DU, batch_size=8, seed=0, replicate_unlabeled_to=12)
    assert s.unlabeled_copies == 3 and s.pool_size == 23 + 15 and s.mode == "mixed"
    rows = [r for _ in range(4) for r in s.next_batch()]  # one epoch: 4 full batches of 38 rows
    assert s.epoch == 0
    for r in rows:
        assert r["is_labeled"] == r["id"].startswith("L")
    seen = collections.Counter((r["id"], r["replica"]) for r in rows)
    assert max(seen.values()) == 1 and len(seen) == 32
    s.next_batch()
    assert s.epoch == 1  # tail of 6 dropped (drop_last=True)
    full = MixedStream(DL, DU, batch_size=8, seed=0, replicate_unlabeled_to=12, drop_last=False)
    rows = [r for _ in range(19) for r in full.next_batch()]  # 152 rows = 4 epochs of 38, nothing dropped
    per_q = collections.Counter(r["id"] for r in rows)
    assert all(per_q[f"L{i}"] == 4 for i in range(23)) and all(per_q[f"U{i}"] == 12 for i in range(5))
    # Returned rows are copies: mutating them does not change the stream.
    b = MixedStream(DL, DU, batch_size=4, seed=1).next_batch()
    b[0]["problem"] = "mutated"
    assert MixedStream(DL, DU, batch_size=4, seed=1).next_batch()[0]["problem"] != "mutated"


def test_determinism_and_seeds():
    a = [_ids(MixedStream(DL, DU, batch_size=7, seed=5).next_batch()) for _ in range(2)]
    assert a[0] == a[1]
    assert _ids(MixedStream(DL, DU, batch_size=7, seed=6).next_batch()) != a[0]
    ordered = MixedStream(DL, (), batch_size=5, shuffle=False).next_batch()
    assert [r["id"] for r in ordered] == ["L0", "L1", "L2", "L3", "L4"]


def test_single_set_modes_and_errors():
    u = MixedStream.unlabeled_only(DU, batch_size=16, replicate_unlabeled_to=16, seed=0)
    batch = u.next_batch()
    assert u.mode == "unlabeled" and not any(r["is_labeled"] for r in batch)
    assert collections.Counter(r["id"] for r in batch).most_common(1)[0][1] <= 4  # 5 questions x 4 copies
    lab = MixedStream.labeled_only(DL, batch_size=4)
    assert lab.mode == "labeled" and all(r["is_labeled"] for r in lab.next_batch())
    mixed = MixedStream.from_records(_recs("L", 4) + _recs("U", 4, labeled=False), batch_size=8)
    assert mixed.n_labeled == 4 and mixed.n_unlabeled == 4
    with pytest.raises(ValueError, match="larger than the pool"):
        MixedStream.unlabeled_only(DU, batch_size=16)
    with pytest.raises(ValueError, match="both are empty"):
        MixedStream((), (), batch_size=1)
    with pytest.raises(ValueError, match="no boolean 'is_labeled'"):
        MixedStream.from_records([{"id": "x"}], batch_size=1)
