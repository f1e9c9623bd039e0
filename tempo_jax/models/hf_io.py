"""Hugging Face safetensors import/export for the actor (CausalLM) and the critic.

Import builds the model abstractly (``nnx.eval_shape``), then creates every parameter
directly on its sharding from a memory-mapped tensor, so no host ever holds the full model.
Our parameter paths mirror HF names: ``kernel`` is a transposed ``weight``, ``embedding`` is
the embedding ``weight``, and scanned layers carry the layer index as a leading axis.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal, overload

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from tempo_jax import storage
from tempo_jax.models.config import ModelConfig
from tempo_jax.models.critic import Critic
from tempo_jax.models.decoder import CausalLM
from tempo_jax.models.hf_config import (
    GENERATION_CONFIG,
    CheckpointError,
    config_from_hf,
    generation_config_dict,
    hf_config_dict,
    read_generation_config,
    read_hf_config,
)
from tempo_jax.models.safetensors_io import SafetensorsError, open_checkpoint_files, save_file
from tempo_jax.models.sharding import state_shardings

# Tensors some checkpoints carry that have no parameter here (recomputed buffers).
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)
# TRL AutoModelForCausalLMWithValueHead names for the value head.
_TRL_HEAD = {"score.weight": "v_head.summary.weight", "score.bias": "v_head.summary.bias"}


def _names(path) -> tuple:
    names = tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
    return names[:-1] if names and names[-1] == "value" else names


def _hf_name(names: tuple, layer: int | None = None) -> tuple[str, bool]:
    """HF tensor name for one of our parameter paths, and whether it is stored transposed."""
    parts = [str(n) for n in names]
    if layer is not None:
        parts.insert(parts.index("layers") + 1, str(layer))
    leaf = parts[-1]
    transpose = leaf == "kernel"
    parts[-1] = {"kernel": "weight", "embedding": "weight"}.get(leaf, leaf)
    return ".".join(parts), transpose


def _iter_params(state: nnx.State, cfg: ModelConfig) -> Iterator[tuple[Any, tuple, int | None, Any]]:
    """(key path, parameter names, number of stacked layers or None, leaf) for every leaf of ``state``."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        names = _names(path)
        stacked = cfg.scan_layers and "layers" in names
        yield path, names, (cfg.num_layers if stacked else None), leaf


def checkpoint_files(path: str | os.PathLike) -> list[str]:
    path = str(path)
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index, encoding="utf-8") as fh:
                weight_map = json.load(fh)["weight_map"]
        except (json.JSONDecodeError, KeyError) as err:
            raise CheckpointError(f"{index}: not a valid safetensors index ({err})") from err
        files = sorted({os.path.join(path, f) for f in weight_map.values()})
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise CheckpointError(f"{index} lists shard files that do not exist: {missing}")
        return files
    files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
    if not files:
        raise CheckpointError(f"no *.safetensors files in {path} (and no model.safetensors.index.json)")
    return files


def _read_tensor(
    tensors: dict, name: str, transpose: bool, expected: tuple[int, ...], *, path: str, critic: bool
) -> tuple[str, np.ndarray]:
    """(key read, array) of HF tensor ``name`` (a TRL value head stands in for ``score.*``), checked
    against the ``expected`` shape; ``CheckpointError`` naming the file and tensor otherwise."""
    key = name
    if key not in tensors and critic and key in _TRL_HEAD and _TRL_HEAD[key] in tensors:
        key = _TRL_HEAD[key]
    if key not in tensors:
        hint = (
            " (a critic needs a value head: load a token-classification checkpoint with num_labels=1, "
            "or build one with critic_from_actor)"
            if name.startswith("score.")
            else ""
        )
        raise CheckpointError(
            f"{path}: tensor {name!r} is missing; expected shape "
            f"{tuple(reversed(expected)) if transpose else expected}{hint}"
        )
    handle = tensors[key]
    try:
        arr = handle.get(key)
    except SafetensorsError as err:  # e.g. a truncated file: report it as a checkpoint problem
        raise CheckpointError(str(err)) from err
    if name == "score.weight" and arr.ndim == 2 and arr.shape[0] != 1:
        raise CheckpointError(f"{handle.path}: {key!r} has {arr.shape[0]} labels; a critic needs num_labels=1")
    arr = arr.T if transpose else arr
    if tuple(arr.shape) != tuple(expected):
        want = tuple(reversed(expected)) if transpose else tuple(expected)
        got = tuple(reversed(arr.shape)) if transpose else tuple(arr.shape)
        raise CheckpointError(f"{handle.path}: tensor {key!r} has shape {got}, expected {want} for this config")
    return key, arr


@overload
def from_hf(
    path: str | os.PathLike,
    *,
    critic: Literal[False] = False,
    mesh: Mesh | None = None,
    strict: bool = True,
    **overrides: Any,
) -> CausalLM: ...
@overload
def from_hf(
    path: str | os.PathLike, *, critic: Literal[True], mesh: Mesh | None = None, strict: bool = True, **overrides: Any
) -> Critic: ...
@overload
def from_hf(
    path: str | os.PathLike, *, critic: bool, mesh: Mesh | None = None, strict: bool = True, **overrides: Any
) -> CausalLM | Critic: ...
def from_hf(
    path: str | os.PathLike, *, critic: bool = False, mesh: Mesh | None = None, strict: bool = True, **overrides: Any
) -> CausalLM | Critic:
    """Load a HF checkpoint directory as our actor (``CausalLM``) or, with ``critic=True``, critic.

    ``overrides`` set ModelConfig fields (``param_dtype``, ``dtype``, ``remat``, ``scan_layers``).
    A critic is read from a token-classification checkpoint (``score.weight``/``score.bias``,
    ``num_labels=1``) or a TRL value-head checkpoint (``v_head.summary.*``). ``strict`` makes an
    unexpected tensor an error (``lm_head.weight`` of a critic or of a tied model is tolerated).
    """
    path = storage.local_copy(path)  # a gs:// checkpoint is read from a local copy (memory-mapped)
    cfg = config_from_hf(read_hf_config(path), generation=read_generation_config(path), **overrides)
    cls = Critic if critic else CausalLM
    abstract = nnx.eval_shape(lambda: cls(cfg, nnx.Rngs(0)))
    graphdef, abs_state = nnx.split(abstract)
    shardings = state_shardings(abs_state, mesh, cfg.scan_layers)
    try:
        tensors = open_checkpoint_files(checkpoint_files(path))
    except SafetensorsError as err:
        raise CheckpointError(str(err)) from err
    used: set[str] = set()

    def fetch(name: str, transpose: bool, expected: tuple[int, ...]) -> np.ndarray:
        key, arr = _read_tensor(tensors, name, transpose, expected, path=path, critic=critic)
        used.add(key)
        return arr

    def load(path_, leaf):
        names = _names(path_)
        sharding = shardings_by_path[path_]
        stacked = cfg.scan_layers and "layers" in names
        if stacked:
            parts = []
            for i in range(cfg.num_layers):
                name, transpose = _hf_name(names, i)
                parts.append(fetch(name, transpose, leaf.shape[1:]))
            source = parts
        else:
            name, transpose = _hf_name(names)
            source = fetch(name, transpose, leaf.shape)

        def callback(index):
            if stacked:
                layers = range(cfg.num_layers)[index[0]]
                return np.stack([np.array(source[i][index[1:]], dtype=leaf.dtype) for i in layers])
            return np.array(source[index], dtype=leaf.dtype)  # a copy: the file is closed after loading

        return jax.make_array_from_callback(leaf.shape, sharding, callback)

    shardings_by_path = dict(jax.tree_util.tree_leaves_with_path(shardings))
    try:
        state = jax.tree_util.tree_map_with_path(load, abs_state)
        state = jax.block_until_ready(state)
    finally:
        for handle in {id(h): h for h in tensors.values()}.values():
            handle.close()
    extra = sorted(k for k in tensors if k not in used and not k.endswith(_IGNORED_SUFFIXES))
    tolerated = {"lm_head.weight"} if (critic or cfg.tie_word_embeddings) else set()
    extra = [k for k in extra if k not in tolerated]
    if extra and strict:
        raise CheckpointError(
            f"{path}: unexpected tensors not used by a {cfg.model_type} "
            f"{'critic' if critic else 'causal LM'}: {extra[:8]}{' ...' if len(extra) > 8 else ''}"
            " (check model_type/num_hidden_layers in config.json, or pass strict=False)"
        )
    return nnx.merge(graphdef, state)


def hf_tensors(model: CausalLM | Critic) -> dict[str, np.ndarray]:
    """All parameters as HF-named host numpy arrays (transposed and unstacked as HF stores them)."""
    cfg = model.cfg
    out: dict[str, np.ndarray] = {}
    for _, names, layers, leaf in _iter_params(nnx.state(model, nnx.Param), cfg):
        arr = np.asarray(jax.device_get(leaf))
        if layers is None:
            name, transpose = _hf_name(names)
            out[name] = arr.T if transpose else arr
        else:
            for i in range(layers):
                name, transpose = _hf_name(names, i)
                out[name] = arr[i].T if transpose else arr[i]
    return out


def to_hf(
    model: CausalLM | Critic,
    path: str | os.PathLike,
    max_shard_bytes: int = 4 << 30,
    *,
    stop_ids: Sequence[int] | None = None,
    pad_id: int | None = None,
) -> str:
    """Write ``config.json``, ``generation_config.json`` + safetensors (sharded with an index when
    large) that transformers loads.

    generation_config.json holds ``stop_ids`` as ``eos_token_id`` and ``pad_id`` as ``pad_token_id``
    (pass the ids sampling used, :func:`~tempo_jax.models.tokenizer.stop_and_pad_ids`; default the
    model config's own, :func:`~tempo_jax.models.hf_config.generation_config_dict`), and the other
    keys of the generation config the model was loaded with. A critic is written as
    ``<Arch>ForTokenClassification`` with ``num_labels=1`` (its generation_config.json, which
    transformers ignores there, keeps the ids for a reload). ``path`` may be remote (``gs://``): the
    files are written locally first, then uploaded.
    """
    with storage.writable_local_dir(path) as local:
        _write_hf(model, local, max_shard_bytes)
        generation = generation_config_dict(model.cfg, stop_ids, pad_id)
        with open(os.path.join(local, GENERATION_CONFIG), "w", encoding="utf-8") as fh:
            json.dump(generation, fh, indent=2)
    return str(path)


def _write_hf(model: CausalLM | Critic, path: str, max_shard_bytes: int) -> None:
    critic = isinstance(model, Critic)
    tensors = hf_tensors(model)
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name in sorted(tensors):
        nbytes = tensors[name].nbytes
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensors[name]
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, os.path.join(path, fname), metadata={"format": "pt"})
            weight_map.update({name: fname for name in shard})
        total = sum(t.nbytes for t in tensors.values())
        with open(os.path.join(path, "model.safetensors.index.json"), "w", encoding="utf-8") as fh:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh, indent=2)
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as fh:
        json.dump(hf_config_dict(model.cfg, critic=critic), fh, indent=2)
