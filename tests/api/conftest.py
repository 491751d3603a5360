"""The real middleware app over real adapters (SQLite in tmp_path, a folder, the fake container
over HTTP), reached both through FastAPI's TestClient and through a real uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from middleware.bootstrap import LocalRuntime, build_local, provision_admin
from middleware.settings import Settings
from tests.fakes.fake_container import FakeContainer

CHECKPOINT = "tiny-sd15.safetensors"
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Stack:
    runtime: LocalRuntime
    client: httpx.Client
    fake: FakeContainer
    admin_key: str
    data_dir: Path
    mode: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def add_user(self, name: str, role: str = "artist") -> str:
        self.runtime.users.create_user(name, role)
        return self.runtime.users.create_key(name)[1]

    def submit(
        self,
        payload: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> httpx.Response:
        document = {
            "task": "txt2img",
            "payload": payload or {"prompt": "a cat", "steps": 4},
            "checkpoint": CHECKPOINT,
        }
        document.update(body)
        return self.client.post(
            "/v1/inferences", json=document, headers={**self.auth(key), **(headers or {})}
        )

    def get(self, job_id: str, key: str | None = None, **params: Any) -> httpx.Response:
        return self.client.get(f"/v1/inferences/{job_id}", params=params, headers=self.auth(key))

    def wait_terminal(self, job_id: str, key: str | None = None, rounds: int = 40) -> dict[str, Any]:
        """Follow the job with long-polls until it is terminal."""
        view = self.get(job_id, key).json()
        for _ in range(rounds):
            if view["status"] in TERMINAL:
                return view
            view = self.get(job_id, key, wait=10, version=view["version"]).json()
        raise AssertionError(f"job {job_id} did not finish: {view}")

    def wait_status(self, job_id: str, status: str, rounds: int = 40) -> dict[str, Any]:
        view = self.get(job_id).json()
        for _ in range(rounds):
            if view["status"] == status:
                return view
            view = self.get(job_id, wait=10, version=view["version"]).json()
        raise AssertionError(f"job {job_id} never became {status}: {view}")


def make_settings(tmp_path: Path, container_url: str, **overrides: Any) -> Settings:
    models = tmp_path / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / CHECKPOINT).write_bytes(b"not really a checkpoint, but hashed like one")
    options: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "models_dir": models,
        "container_url": container_url,
        "progress_poll_s": 0.05,
        "connect_retries": 1,
        "retry_backoff_s": 0.01,
        "sweep_interval_s": 0.5,
    }
    options.update(overrides)
    return Settings(**options)


class UvicornThread:
    """A real uvicorn server on 127.0.0.1 (port from the OS) in a background thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def fake() -> Iterator[FakeContainer]:
    with FakeContainer() as container:
        yield container


@pytest.fixture(params=["asgi", "http"])
def stack(request, tmp_path, fake) -> Iterator[Stack]:
    # As in local mode, the container writes outputs into the middleware's blob folder.
    fake.configure(output_dir=str(tmp_path / "data" / "blobs"))
    runtime = build_local(make_settings(tmp_path, fake.url))
    key_file = provision_admin(runtime)
    runtime.start()
    try:
        if request.param == "asgi":
            with TestClient(runtime.app) as client:
                yield Stack(runtime, client, fake, key_file.read_text().strip(), tmp_path / "data", "asgi")
        else:
            with (
                UvicornThread(runtime.app) as server,
                httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client,
            ):
                yield Stack(runtime, client, fake, key_file.read_text().strip(), tmp_path / "data", "http")
    finally:
        runtime.stop()
