"""The backend for extension tests: the fake inference container and the REAL middleware, as
processes run with the backend's Python (SDCLOUD_BACKEND_PYTHON, default <repo>/.venv/bin/python).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.extension.support.processes import REPO, Process, free_port

CHECKPOINT = "tiny-sd15.safetensors"


def backend_python() -> Path:
    return Path(os.environ.get("SDCLOUD_BACKEND_PYTHON") or REPO / ".venv" / "bin" / "python")


def missing_backend() -> str | None:
    """Why the backend cannot be started here, or None when it can."""
    python = backend_python()
    if not python.is_file():
        return f"backend python {python} not found (set SDCLOUD_BACKEND_PYTHON)"
    for module in ("middleware/entrypoints/local.py", "tests/fakes/fake_container.py"):
        if not (REPO / module).is_file():
            return f"{module} is missing: the middleware / fake container are not in this checkout yet"
    return None


@dataclass
class Stack:
    api_url: str
    api_key: str
    container_url: str
    data_dir: Path
    container: Process
    middleware: Process

    def configure_container(self, **knobs: Any) -> None:
        """Turn the fake container's knobs (delay_s, fail_status, ...) through its HTTP hook."""
        response = requests.post(f"{self.container_url}/_fake/config", json=knobs, timeout=5)
        response.raise_for_status()

    def stop(self) -> None:
        self.middleware.stop()
        self.container.stop()


def start_stack(workdir: Path, container_delay: float = 0.0) -> Stack:
    """Fake container + middleware on free loopback ports, with one dummy checkpoint file."""
    python = str(backend_python())
    models = workdir / "models"
    models.mkdir(parents=True, exist_ok=True)
    # the fake container never reads it; the middleware lists and hashes it like any checkpoint
    (models / CHECKPOINT).write_bytes(b"not really a model, but hashed like one" * 100)
    data = workdir / "data"
    container_port = free_port()
    container = Process(
        "fake-container",
        [
            python,
            "-m",
            "tests.fakes.fake_container",
            "--port",
            str(container_port),
            "--delay",
            str(container_delay),
        ],
        ready="fake container listening",
    ).start()
    api_port = free_port()
    try:
        middleware = Process(
            "middleware",
            [
                python,
                "-m",
                "middleware.entrypoints.local",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--data-dir",
                str(data),
                "--models-dir",
                str(models),
                "--container-url",
                f"http://127.0.0.1:{container_port}",
            ],
            ready="SD Cloud middleware listening on",
        ).start()
    except Exception:
        container.stop()
        raise
    api_key = (data / "admin-api-key").read_text(encoding="utf-8").strip()
    return Stack(
        api_url=f"http://127.0.0.1:{api_port}",
        api_key=api_key,
        container_url=f"http://127.0.0.1:{container_port}",
        data_dir=data,
        container=container,
        middleware=middleware,
    )
