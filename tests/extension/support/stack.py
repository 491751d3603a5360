"""The backend for extension tests: the fake inference container and the REAL middleware, as
processes run with the backend's Python (SDCLOUD_BACKEND_PYTHON, default <repo>/.venv/bin/python),
started by the same launcher `make demo` uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tools.local_processes import REPO, LocalStack, backend_python

CHECKPOINT = "tiny-sd15.safetensors"


def missing_backend() -> str | None:
    """Why the backend cannot be started here, or None when it can."""
    python = Path(backend_python())
    if not python.is_file():
        return f"backend python {python} not found (set SDCLOUD_BACKEND_PYTHON)"
    for module in ("middleware/entrypoints/local.py", "tests/fakes/fake_container.py"):
        if not (REPO / module).is_file():
            return f"{module} is missing: the middleware / fake container are not in this checkout yet"
    return None


@dataclass
class Stack:
    local: LocalStack

    @property
    def api_url(self) -> str:
        return self.local.api_url

    @property
    def api_key(self) -> str:
        return self.local.api_key

    @property
    def container_url(self) -> str:
        return self.local.container_url

    @property
    def data_dir(self) -> Path:
        return self.local.data_dir

    def configure_container(self, **knobs: Any) -> None:
        """Turn the fake container's knobs (delay_s, fail_status, ...) through its HTTP hook."""
        response = requests.post(f"{self.container_url}/_fake/config", json=knobs, timeout=5)
        response.raise_for_status()

    def stop(self) -> None:
        self.local.stop()


def start_stack(workdir: Path, container_delay: float = 0.0) -> Stack:
    """Fake container + middleware on free loopback ports, with one dummy checkpoint file."""
    models = workdir / "models"
    models.mkdir(parents=True, exist_ok=True)
    # the fake container never reads it; the middleware lists and hashes it like any checkpoint
    (models / CHECKPOINT).write_bytes(b"not really a model, but hashed like one" * 100)
    stack = Stack(LocalStack(data_dir=workdir / "data", checkpoint=models / CHECKPOINT, fake_container=True,
                             with_ui=False).start(timeout=60))
    if container_delay:
        stack.configure_container(delay_s=container_delay)
    return stack
