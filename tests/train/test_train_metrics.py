"""metrics.jsonl: a line torn by a crash is dropped on resume; damage elsewhere is named."""

import json

import pytest

from tempo_jax.train.metrics import MetricsFileError, MetricsWriter, read_metrics


def _write(path, text):
    path.write_text(text, encoding="utf-8")


def test_torn_last_line_is_dropped_on_resume(tmp_path):
    rows = [json.dumps({"step": s, "loss": 0.5 * s}) for s in (1, 2, 3)]
    _write(tmp_path / "metrics.jsonl", "\n".join(rows) + "\n" + '{"step": 4, "lo')
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1, 2, 3]
    writer = MetricsWriter(str(tmp_path), total_steps=5, start_step=2, tensorboard=False, progress_bar=False)
    writer.write(3, {"loss": 9.0})
    writer.close()
    assert read_metrics(str(tmp_path)) == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 1.0}, {"step": 3, "loss": 9.0}]


def test_last_line_without_newline_but_complete_is_kept(tmp_path):
    _write(tmp_path / "metrics.jsonl", '{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 2.0}')
    writer = MetricsWriter(str(tmp_path), total_steps=5, start_step=2, tensorboard=False, progress_bar=False)
    writer.write(3, {"loss": 3.0})
    writer.close()
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1, 2, 3]


def test_damaged_middle_line_is_named_and_file_left_alone(tmp_path):
    text = '{"step": 1}\nnot json\n{"step": 2}\n'
    _write(tmp_path / "metrics.jsonl", text)
    with pytest.raises(MetricsFileError, match=r"metrics.jsonl, line 2: not a JSON object"):
        MetricsWriter(str(tmp_path), total_steps=5, start_step=1, tensorboard=False, progress_bar=False)
    assert (tmp_path / "metrics.jsonl").read_text(encoding="utf-8") == text
