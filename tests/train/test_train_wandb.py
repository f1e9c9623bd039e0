"""log.wandb: a tiny training logs its config and every metrics.jsonl row to an offline W&B run, a
resume continues the same W&B run, and a missing wandb package is a one-line error."""

import json
import math
import pathlib
import struct

import pytest

from tempo_jax.train import wandb_logger
from tempo_jax.train.config import RecipeError, validate
from tempo_jax.train.loop import Trainer
from tempo_jax.train.metrics import read_metrics

try:
    from wandb.proto import wandb_internal_pb2
except ImportError:  # the wandb extra is not installed: only the missing-package test runs
    wandb_internal_pb2 = None

BLOCK, HEADER = 32768, 7  # the transaction log's LevelDB-style blocks; file and record headers are 7 bytes


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    """No network, no output, and W&B's settings and caches inside the test's folder."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))


def _records(path: pathlib.Path) -> list:
    """The protobuf records of an offline run's ``run-<id>.wandb`` transaction log."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, chunks, records = HEADER, b"", []
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:
            break
        chunks += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


def _offline_run(path: pathlib.Path) -> tuple[str, dict, dict[int, dict]]:
    """(run id, config, history by step) of one offline run."""
    run_id, config, history = "", {}, {}
    for record in _records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history[record.history.step.num] = {k: v for k, v in row.items() if not k.startswith("_")}
    config.pop("_wandb", None)
    return run_id, config, history


def _same(logged: dict, row: dict) -> bool:
    expected = {k: v for k, v in row.items() if k != "step"}
    if logged.keys() != expected.keys():
        return False
    return all(
        (isinstance(v, float) and math.isnan(v) and math.isnan(logged[k])) or logged[k] == pytest.approx(v, rel=1e-12)
        for k, v in expected.items()
    )


@pytest.mark.skipif(wandb_internal_pb2 is None, reason="needs the wandb extra")
def test_offline_run_holds_config_and_metrics_and_resume_continues_it(tiny_config, offline_wandb):
    cfg = tiny_config("ttrl", train__total_steps=2, log__wandb=True, log__wandb_mode="offline")
    Trainer(cfg).run()
    run_dir = pathlib.Path(cfg.run_dir)
    run_id = (run_dir / wandb_logger.RUN_ID_FILE).read_text().strip()
    [first] = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    logged_id, config, history = _offline_run(first)
    assert logged_id == run_id
    assert config == json.loads(cfg.to_json_best_effort())
    assert config["method"] == "ttrl" and config["train"]["total_steps"] == 2
    rows = read_metrics(str(run_dir))
    assert sorted(history) == [r["step"] for r in rows] == [1, 2]
    assert all(_same(history[r["step"]], r) for r in rows)

    cfg.train.total_steps = 3
    Trainer(cfg, resume=True).run()
    runs = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"), key=lambda p: p.stat().st_mtime)
    assert len(runs) == 2
    resumed_id, resumed_config, resumed_history = _offline_run(runs[-1])
    assert resumed_id == run_id  # the same W&B run, continued
    assert resumed_config["train"]["total_steps"] == 3
    rows = read_metrics(str(run_dir))
    assert [r["step"] for r in rows] == [1, 2, 3] and sorted(resumed_history) == [3]
    assert _same(resumed_history[3], rows[-1])


def test_missing_wandb_is_a_one_line_error(monkeypatch, tiny_config, tmp_path):
    monkeypatch.setattr(wandb_logger, "wandb", None)
    cfg = tiny_config("ttrl", log__wandb=True)
    with pytest.raises(RecipeError, match=r"pip install 'tempo-jax\[wandb\]'"):
        validate(cfg)
    with pytest.raises(wandb_logger.WandbMissingError) as err:
        wandb_logger.wandb_sinks(cfg, str(tmp_path / "run"))
    assert "\n" not in str(err.value) and "pip install 'tempo-jax[wandb]'" in str(err.value)
    validate(tiny_config("ttrl"))  # log.wandb=False needs no wandb


def test_wandb_settings_are_checked_and_files_stay_local(monkeypatch, tiny_config, tmp_path):
    with pytest.raises(RecipeError, match="log.wandb_mode='bogus'"):
        validate(tiny_config("ttrl", log__wandb=True, log__wandb_mode="bogus"))
    assert wandb_logger.local_dir(str(tmp_path)) == str(tmp_path)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "w"))
    assert wandb_logger.local_dir("gs://bucket/runs/x") == str(tmp_path / "w")
    monkeypatch.delenv("WANDB_DIR")
    assert not wandb_logger.local_dir("gs://bucket/runs/x").startswith("gs://")
