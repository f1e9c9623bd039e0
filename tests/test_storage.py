"""tempo_jax.storage: the same calls on a local folder and on a bucket of a real local GCS server."""

import os

import pytest

from tempo_jax import storage
from tempo_jax.testing.gcs_emulator import apply_env, gcs_emulator, restore_env


@pytest.fixture(scope="module")
def gcs():
    with gcs_emulator("unit") as env:
        before = apply_env(env)
        try:
            yield "gs://unit"
        finally:
            restore_env(before)


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "root")
    return f"{request.getfixturevalue('gcs')}/{request.node.name.replace('[', '_').rstrip(']')}"


def test_scheme_and_join():
    assert storage.scheme("gs://b/x") == "gs" and storage.scheme("/tmp/x") is None
    assert storage.scheme("file:///tmp/x") is None
    assert storage.join("gs://b/runs", "r1", "metrics.jsonl") == "gs://b/runs/r1/metrics.jsonl"
    assert storage.join("runs", "r1") == os.path.join("runs", "r1")


def test_write_append_read_list(root):
    path = storage.join(root, "sub", "m.jsonl")
    assert not storage.exists(path) and storage.listdir(root) == []
    storage.write_text(path, "a\n")
    storage.append_text(path, "b\n")
    storage.append_text(path, "c\n")
    assert storage.read_text(path) == "a\nb\nc\n"
    storage.write_text(path, "whole\n")  # replaces, never appends
    assert storage.read_text(path) == "whole\n"
    assert storage.isfile(path) and not storage.isdir(path) and storage.isdir(storage.join(root, "sub"))
    assert storage.listdir(root) == ["sub"] and storage.listdir(storage.join(root, "sub")) == ["m.jsonl"]
    if not storage.is_remote(root):
        assert [n for n in os.listdir(os.path.join(root, "sub")) if n.startswith(".tmp")] == []


def test_local_copy_and_upload_round_trip(root, tmp_path, monkeypatch):
    monkeypatch.setenv("TEMPO_JAX_REMOTE_CACHE", str(tmp_path / "cache"))
    with storage.writable_local_dir(storage.join(root, "model")) as local:
        os.makedirs(os.path.join(local, "nested"))
        with open(os.path.join(local, "w.bin"), "wb") as fh:
            fh.write(bytes(range(256)) * 100)
        with open(os.path.join(local, "nested", "config.json"), "w") as fh:
            fh.write("{}")
    assert storage.listdir(storage.join(root, "model")) == ["nested", "w.bin"]
    copy = storage.local_copy(storage.join(root, "model"))
    assert os.path.isdir(copy)
    with open(os.path.join(copy, "w.bin"), "rb") as fh:
        assert fh.read() == bytes(range(256)) * 100
    with open(os.path.join(copy, "nested", "config.json")) as fh:
        assert fh.read() == "{}"
    if storage.is_remote(root):
        assert copy.startswith(str(tmp_path / "cache"))
        storage.write_text(storage.join(root, "model", "nested", "config.json"), '{"changed": 1}')
        with open(os.path.join(storage.local_copy(storage.join(root, "model")), "nested", "config.json")) as fh:
            assert fh.read() == '{"changed": 1}'  # a changed object is fetched again
    else:
        assert copy == storage.join(root, "model")  # local paths are used in place


def test_failed_block_uploads_nothing(gcs):
    dest = f"{gcs}/never"
    with pytest.raises(RuntimeError), storage.writable_local_dir(dest) as local:
        with open(os.path.join(local, "half.bin"), "wb") as fh:
            fh.write(b"x")
        raise RuntimeError("the writer failed")
    assert not storage.exists(dest)


def test_missing_remote_file_is_named(gcs):
    with pytest.raises(FileNotFoundError, match="gs://unit/nothing/here"):
        storage.local_copy(f"{gcs}/nothing/here")
