"""Which JAX platforms a process starts: a machine with ``libtpu`` installed (the ``plan`` extra,
for compiling TPU programs on a CPU host) but no TPU chips would otherwise probe for a TPU in every
process: a second or two of start-up and a page of libtpu warnings."""

from __future__ import annotations

import glob
import importlib.util
import os

import jax

# TPU VMs expose their chips as /dev/accel* (v2-v4, v5p) or through VFIO (v5e, v6e).
TPU_DEVICE_FILES = ("/dev/accel*", "/dev/vfio/*")


def has_tpu_chips() -> bool:
    return any(glob.glob(pattern) for pattern in TPU_DEVICE_FILES)


def skip_absent_tpu() -> None:
    """Leave the TPU platform out when libtpu is installed but this machine has no TPU chips.

    An explicit ``JAX_PLATFORMS`` wins. Call before the first JAX computation."""
    if os.environ.get("JAX_PLATFORMS") or importlib.util.find_spec("libtpu") is None or has_tpu_chips():
        return
    cuda = importlib.util.find_spec("jax_cuda12_plugin") is not None
    jax.config.update("jax_platforms", "cuda,cpu" if cuda else "cpu")
