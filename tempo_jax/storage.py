"""One path layer for every file a run reads or writes: local paths and ``gs://`` URLs alike.

Everything goes through ``etils.epath`` (the layer Orbax already uses for checkpoints; for
``gs://`` it uses fsspec's gcsfs, or TensorFlow's gfile when TensorFlow is installed), so
``run_dir=gs://bucket/runs/x`` puts metrics, TensorBoard events, the config, the tokenizer,
exports and evaluation outputs in the bucket next to the checkpoints, and ``model.actor_hf`` or
``data.*`` may name objects in a bucket.

Libraries that only take local paths (transformers' tokenizer loading and saving, safetensors)
work on a local copy: :func:`local_copy` downloads a remote directory or file into a cache once
per process, :func:`writable_local_dir` hands out a local folder and uploads it on success.

Object stores have no append and no atomic rename of a folder; :func:`append_text` rewrites the
object (metrics files are small) and nothing here renames folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, Any, TypeAlias

from etils import epath

from tempo_jax.errors import UserError

PathLike: TypeAlias = str | os.PathLike
Path: TypeAlias = pathlib.Path | epath.Path  # what as_path returns: pathlib's API, local or remote
# Where remote inputs are copied for libraries that need local files (TEMPO_JAX_REMOTE_CACHE overrides).
REMOTE_CACHE = os.path.join("~", ".cache", "tempo_jax", "remote")
# The fsspec implementation each remote scheme needs (epath reaches it through fsspec).
SCHEME_PACKAGES = {"gs": ("gcsfs", "gcs"), "s3": ("s3fs", None)}


class MissingStorageBackendError(UserError, ImportError):
    """A remote path whose filesystem package is not installed."""


def scheme(path: PathLike) -> str | None:
    """``"gs"`` for ``gs://b/x``; None for a local path (``file://`` counts as local)."""
    text = os.fspath(path)
    if "://" not in text:
        return None
    name = text.split("://", 1)[0]
    return None if name == "file" else name


def is_remote(path: PathLike) -> bool:
    return scheme(path) is not None


def as_path(path: PathLike) -> Path:
    """A ``pathlib.Path`` for a local path (``~`` expanded), an ``epath.Path`` for a remote one; a
    remote scheme whose package is missing is an error that says what to install."""
    name = scheme(path)
    if name is None:
        return pathlib.Path(os.path.expanduser(os.fspath(path).removeprefix("file://")))
    package, extra = SCHEME_PACKAGES.get(name, (None, None))
    if package and not _has_backend(package):
        hint = f"pip install 'tempo-jax[{extra}]'" if extra else f"pip install {package}"
        raise MissingStorageBackendError(f"{os.fspath(path)}: {name}:// paths need the {package} package ({hint})")
    return epath.Path(os.fspath(path))


def _has_backend(package: str) -> bool:
    return importlib.util.find_spec(package) is not None or importlib.util.find_spec("tensorflow") is not None


def join(base: PathLike, *parts: str) -> str:
    """``base/part/...`` as a string; keeps ``gs://`` intact (``os.path.join`` would too, but
    :func:`as_path` is the one place paths are interpreted)."""
    return os.fspath(as_path(base).joinpath(*parts))


def refresh(path: PathLike) -> None:
    """Drop cached listings of a remote filesystem (gcsfs caches them per process; another
    process, or TensorStore inside Orbax, may have written since)."""
    if is_remote(path):
        with contextlib.suppress(Exception):  # a backend without a listing cache has nothing to drop
            epath.backend.fsspec_backend.fs(os.fspath(path)).invalidate_cache()


def exists(path: PathLike) -> bool:
    refresh(path)
    return as_path(path).exists()


def isdir(path: PathLike) -> bool:
    refresh(path)
    return as_path(path).is_dir()


def isfile(path: PathLike) -> bool:
    p = as_path(path)
    refresh(path)
    return p.exists() and not p.is_dir()


def listdir(path: PathLike) -> list[str]:
    """Names in a folder, sorted (empty when it does not exist)."""
    refresh(path)
    p = as_path(path)
    return sorted(child.name for child in p.iterdir()) if p.is_dir() else []


def makedirs(path: PathLike) -> None:
    as_path(path).mkdir(parents=True, exist_ok=True)


def open_file(path: PathLike, mode: str = "r", **kwargs: Any) -> IO:
    """``open`` for local and remote paths alike (text modes default to UTF-8)."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    if not is_remote(path):
        return open(os.fspath(as_path(path)), mode, **kwargs)  # builtins.open: the plain local case
    return as_path(path).open(mode, **kwargs)


def read_text(path: PathLike) -> str:
    with open_file(path) as fh:
        return fh.read()


def write_text(path: PathLike, text: str) -> None:
    """Replace a file's contents whole: a local file through a temporary file and ``os.replace``,
    an object by one upload (object writes are atomic). A reader never sees half a file."""
    if is_remote(path):
        as_path(path).write_text(text, encoding="utf-8")
        return
    local = os.fspath(as_path(path))
    folder = os.path.dirname(os.path.abspath(local))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, local)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def append_text(path: PathLike, text: str) -> None:
    """Append to a local file; rewrite an object with the text added (object stores cannot append)."""
    if is_remote(path):
        before = read_text(path) if isfile(path) else ""
        write_text(path, before + text)
        return
    with open(os.fspath(as_path(path)), "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()


def _cache_root() -> str:
    return os.path.expanduser(os.environ.get("TEMPO_JAX_REMOTE_CACHE", REMOTE_CACHE))


def local_copy(path: PathLike) -> str:
    """A local path with the contents of ``path``: the path itself when it is local, else a copy
    (file or whole folder) in the remote cache, downloaded again when sizes differ."""
    if not is_remote(path):
        return os.fspath(as_path(path))
    src = as_path(path)
    key = hashlib.sha256(os.fspath(src).encode()).hexdigest()[:16]
    dest = os.path.join(_cache_root(), key, src.name)
    refresh(path)
    if not src.exists():
        raise FileNotFoundError(f"{os.fspath(src)} does not exist")
    if src.is_dir():
        _download_tree(src, dest)
    else:
        _download_file(src, dest)
    return dest


def _download_file(src: Path, dest: str) -> None:
    if os.path.isfile(dest) and os.path.getsize(dest) == _size(src):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = f"{dest}.part-{os.getpid()}"
    with src.open("rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, length=16 << 20)
    os.replace(tmp, dest)


def _size(path: Path) -> int:
    stat = path.stat()
    return stat.st_size if isinstance(stat, os.stat_result) else stat.length


def _download_tree(src: Path, dest: str) -> None:
    os.makedirs(dest, exist_ok=True)
    for child in src.iterdir():
        target = os.path.join(dest, child.name)
        if child.is_dir():
            _download_tree(child, target)
        else:
            _download_file(child, target)


def upload_tree(local: str, dest: PathLike) -> None:
    """Copy a local folder's files under ``dest`` (local or remote), overwriting."""
    for root, _, files in os.walk(local):
        rel = os.path.relpath(root, local)
        target = as_path(dest) if rel == "." else as_path(dest).joinpath(rel)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            with open(os.path.join(root, name), "rb") as fin, target.joinpath(name).open("wb") as fout:
                shutil.copyfileobj(fin, fout, length=16 << 20)


@contextlib.contextmanager
def writable_local_dir(dest: PathLike) -> Iterator[str]:
    """A local folder for a library that writes only local files: ``dest`` itself when local,
    else a temporary folder uploaded to ``dest`` when the block succeeds."""
    if not is_remote(dest):
        local = os.fspath(as_path(dest))
        os.makedirs(local, exist_ok=True)
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="tempo_jax_upload_") as tmp:
        yield tmp
        upload_tree(tmp, dest)
