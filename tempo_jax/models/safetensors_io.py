"""Minimal safetensors reader/writer over numpy memory maps.

Why our own: numpy has no bfloat16, so the reference library's numpy backend cannot read bf16
checkpoints, and its flax backend materialises every tensor on the default device. Reading
the header ourselves lets each tensor (or only a shard's slice of it) be mapped lazily.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Iterable

import ml_dtypes
import numpy as np

from tempo_jax.errors import UserError

_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


class SafetensorsError(UserError, ValueError):
    """A safetensors file that cannot be read; the message names the file."""


class SafetensorsFile:
    """Lazy view of one .safetensors file: ``keys()``, ``shape(k)``, ``get(k)`` (memory-mapped)."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        try:
            self._fh = open(self.path, "rb")
            size = os.fstat(self._fh.fileno()).st_size
            if size < 8:
                raise SafetensorsError(f"{self.path}: file is {size} bytes, too short for a safetensors header")
            (header_len,) = struct.unpack("<Q", self._fh.read(8))
            if header_len > size - 8:
                raise SafetensorsError(
                    f"{self.path}: header length {header_len} exceeds the file size {size}; "
                    "the file is truncated or not safetensors"
                )
            header = json.loads(self._fh.read(header_len))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SafetensorsError(f"{self.path}: cannot read safetensors header ({err})") from err
        self.metadata = header.pop("__metadata__", {}) or {}
        self._entries = header
        self._data_start = 8 + header_len
        self._size = size
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if size > self._data_start else None

    def keys(self) -> list[str]:
        return list(self._entries)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._entries[key]["shape"])

    def dtype(self, key: str) -> np.dtype:
        return np.dtype(_DTYPES[self._entries[key]["dtype"]])

    def get(self, key: str) -> np.ndarray:
        entry = self._entries[key]
        if entry["dtype"] not in _DTYPES:
            raise SafetensorsError(f"{self.path}: tensor {key!r} has unsupported dtype {entry['dtype']}")
        begin, end = entry["data_offsets"]
        if self._data_start + end > self._size:
            raise SafetensorsError(
                f"{self.path}: tensor {key!r} extends past the end of the file "
                f"({self._data_start + end} > {self._size} bytes); the file is truncated"
            )
        dtype = np.dtype(_DTYPES[entry["dtype"]])
        count = (end - begin) // dtype.itemsize if dtype.itemsize else 0
        if not count:
            return np.zeros((0,), dtype).reshape(entry["shape"])
        # a file holding any tensor bytes is always mapped (the bounds check above); None only after close()
        assert self._mm is not None, f"{self.path}: read after close()"
        arr = np.frombuffer(self._mm, dtype=dtype, count=count, offset=self._data_start + begin)
        return arr.reshape(entry["shape"])

    def close(self) -> None:
        self._mm = None
        self._fh.close()


def save_file(tensors: dict[str, np.ndarray], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write tensors (numpy, incl. bfloat16) as one safetensors file, in sorted key order."""
    header: dict = {}
    offset = 0
    keys = sorted(tensors)
    for key in keys:
        arr = np.ascontiguousarray(tensors[key])
        if arr.dtype not in _NAMES:
            raise SafetensorsError(f"cannot save tensor {key!r} of dtype {arr.dtype}")
        header[key] = {
            "dtype": _NAMES[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for key in keys:
            fh.write(np.ascontiguousarray(tensors[key]).tobytes())
    os.replace(tmp, path)


def open_checkpoint_files(files: Iterable[str]) -> dict[str, SafetensorsFile]:
    """Map every tensor name to the open file that holds it (sharded checkpoints)."""
    index: dict[str, SafetensorsFile] = {}
    for path in files:
        handle = SafetensorsFile(path)
        for key in handle.keys():
            if key in index:
                raise SafetensorsError(f"tensor {key!r} appears in both {index[key].path} and {path}")
            index[key] = handle
    return index
