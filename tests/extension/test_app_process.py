"""The standalone launcher as a real process: it serves, says where, and stops cleanly on signals."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import requests

from tests.extension.conftest import API_KEY
from tools.local_processes import Service, free_port

pytestmark = pytest.mark.slow

pytest.importorskip("gradio")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_app_serves_and_stops_cleanly(tmp_path: Path, refused_url: str, sig: int) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "SDCLOUD_API_KEY": API_KEY,
        "SDCLOUD_API_URL": refused_url,
    }
    settings = tmp_path / "ui-settings.json"
    process = Service(
        "ui",
        [
            sys.executable,
            "-m",
            "sdcloud.app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--settings-file",
            str(settings),
        ],
        None,
        tmp_path / "ui.log",
        env=env,
        ready_line="SD Cloud UI on http://",
    ).start().wait_ready(60)
    try:
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        config = requests.get(f"http://127.0.0.1:{port}/config", timeout=10)
    finally:
        code = process.stop(sig)

    assert f"SD Cloud UI on http://127.0.0.1:{port}" in process.output
    assert page.status_code == 200 and "SD Cloud" in page.text
    assert config.status_code == 200 and API_KEY not in config.text
    assert code == 0, process.output[-2000:]
    assert "SD Cloud UI stopped" in process.output
    assert API_KEY not in process.output
    assert not settings.exists()  # start-up values are not written to disk unless saved in the UI
