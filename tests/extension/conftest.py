"""Fixtures for the extension side (runs under .venv-a1111: gradio 3.41.2, Python 3.10-compatible code)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from tests.extension.support.scripted_server import ScriptedServer
from tests.extension.support.stack import Stack, missing_backend, start_stack

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

API_KEY = "sdk_TEST-secret-key-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL where nothing listens (the OS picked the port, then we let it go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class SleepRecorder:
    """Stands in for time.sleep in the client: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real middleware in front of the fake container, shared by the tests that need it."""
    reason = missing_backend()
    if reason:
        pytest.skip(reason)
    stack = start_stack(tmp_path_factory.mktemp("backend"))
    try:
        yield stack
    finally:
        stack.stop()
