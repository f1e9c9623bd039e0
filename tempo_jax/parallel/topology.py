"""Cloud TPU slices: names, chip facts, and the topology description JAX compiles for on a CPU host.

Slice names follow Cloud TPU: ``v4-N`` and ``v5p-N`` count TensorCores (2 per chip, so v5p-64
is 32 chips), ``v5litepod-N`` / ``v5e-N`` and ``v6e-N`` count chips. A raw topology such as
``v5p:2x4x4`` is accepted too.
"""

from __future__ import annotations

import dataclasses
import math
import re

from jax.experimental import topologies


@dataclasses.dataclass(frozen=True)
class Chip:
    generation: str  # v4 | v5p | v5e | v6e
    hbm_gib: float  # HBM per chip
    peak_bf16_tflops: float  # dense bf16 matmul peak per chip
    hbm_tbps: float  # HBM bandwidth per chip, TB/s
    cores_in_name: int  # TensorCores per chip counted by the slice name
    chip_config: str  # get_topology_desc(chip_config_name=...)
    topology_prefix: str  # get_topology_desc(topology_name=prefix + ":AxBxC")
    dims: int  # 3 (twisted torus) or 2


CHIPS = {
    "v4": Chip("v4", 32.0, 275.0, 1.2, 2, "megacore", "v4", 3),
    "v5p": Chip("v5p", 95.0, 459.0, 2.76, 2, "megacore", "v5p", 3),
    "v5e": Chip("v5e", 16.0, 197.0, 0.82, 1, "default", "v5e", 2),
    "v6e": Chip("v6e", 32.0, 918.0, 1.64, 1, "default", "v6e", 2),
}
_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "v6lite": "v6e", "trillium": "v6e"}


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str  # as the user wrote it
    chip: Chip
    shape: tuple[int, ...]  # chips per physical axis

    @property
    def chips(self) -> int:
        return math.prod(self.shape)

    @property
    def topology_name(self) -> str:
        return f"{self.chip.topology_prefix}:{'x'.join(str(s) for s in self.shape)}"

    @property
    def slice_name(self) -> str:
        prefix = "v5litepod" if self.chip.generation == "v5e" else self.chip.generation
        return f"{prefix}-{self.chips * self.chip.cores_in_name}"

    @property
    def hosts(self) -> int:
        return max(1, self.chips // 4)

    def devices(self):
        """The TPU devices of this slice, for ahead-of-time compilation (needs ``libtpu``)."""
        bounds = tuple(min(2, s) for s in self.shape[:2]) + (1,)
        desc = topologies.get_topology_desc(
            platform="tpu",
            topology_name=self.topology_name,
            chip_config_name=self.chip.chip_config,
            chips_per_host_bounds=bounds,
            num_slices=1,
        )
        return desc.devices


def _shape_for(chips: int, dims: int) -> tuple[int, ...]:
    """The standard slice shape with ``chips`` chips (as close to a cube/square as Cloud TPU makes them)."""
    if chips < 1 or chips & (chips - 1):
        raise ValueError(f"{chips} chips: Cloud TPU slices here are powers of two")
    if dims == 2:
        a = 1 << (int(math.log2(chips)) // 2)
        return (a, chips // a)
    if chips < 4:
        return (chips, 1, 1)
    shape = [2, 2, 1]
    while math.prod(shape) < chips:  # grow the smallest axis, z first: 2x2x1, 2x2x2, 2x2x4, 2x4x4, 4x4x4, ...
        i = min(range(3), key=lambda k: (shape[k], -k))
        shape[i] *= 2
    return tuple(shape)


def parse_topology(name: str) -> Topology:
    """``v5p-64`` / ``v6e-64`` / ``v5litepod-16`` / ``v4-32`` / ``v5p:2x4x4`` -> :class:`Topology`."""
    text = name.strip().lower()
    m = re.fullmatch(r"([a-z0-9]+?)(?:pod)?:(\d+(?:x\d+)*)", text)
    if m:
        gen = _ALIASES.get(m.group(1), m.group(1))
        if gen not in CHIPS:
            raise ValueError(f"unknown TPU generation {m.group(1)!r} in {name!r}; known: {', '.join(CHIPS)}")
        return Topology(name, CHIPS[gen], tuple(int(s) for s in m.group(2).split("x")))
    m = re.fullmatch(r"([a-z0-9]+?)-(\d+)", text)
    if not m:
        raise ValueError(f"cannot read TPU topology {name!r}; write e.g. v5p-64, v6e-64, v5litepod-16 or v5p:2x4x4")
    gen = _ALIASES.get(m.group(1), m.group(1))
    if gen not in CHIPS:
        raise ValueError(
            f"unknown TPU generation {m.group(1)!r} in {name!r}; known: {', '.join(CHIPS)} (and v5litepod)"
        )
    chip = CHIPS[gen]
    count = int(m.group(2))
    if count % chip.cores_in_name:
        raise ValueError(f"{name}: {gen} slice names count TensorCores ({chip.cores_in_name} per chip)")
    return Topology(name, chip, _shape_for(count // chip.cores_in_name, chip.dims))
