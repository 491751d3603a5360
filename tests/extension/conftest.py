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


# ---- the WebUI stand-in (tests/extension/webui_standin) ------------------------------------------

STANDIN = os.path.join(os.path.dirname(__file__), "webui_standin")


@pytest.fixture(scope="session")
def webui(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The stand-in WebUI started in this process (flavour: the installed gradio's WebUI) with
    this repository as its one extension, under --nowebui, with no local checkpoint."""
    import sys

    data = tmp_path_factory.mktemp("webui-data")
    saved = {k: os.environ.get(k) for k in ("COMMANDLINE_ARGS", "SDCLOUD_UI_SETTINGS")}
    os.environ["COMMANDLINE_ARGS"] = f"--data-dir {data} --nowebui"
    os.environ["SDCLOUD_UI_SETTINGS"] = str(data / "sdcloud" / "ui-settings.json")  # not the user's own file
    sys.path.insert(0, STANDIN)
    import webui as standin  # the stand-in's webui.py

    from tools.local_processes import REPO

    try:
        yield standin.start([str(REPO)], nowebui=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The REAL middleware in front of the REAL inference container on the tiny random model."""
    reason = missing_backend()
    if reason:
        pytest.skip(reason)
    from tools.local_processes import LocalStack, make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny-sd15.safetensors")
    local = LocalStack(data_dir=tmp_path_factory.mktemp("stack-data"), checkpoint=checkpoint, with_ui=False,
                       container_env={"SDCLOUD_TORCH_THREADS": "2", "SDCLOUD_MARKER_POLL_S": "0.1"})
    local.start(timeout=180)
    try:
        yield local
    finally:
        local.stop()
