"""The real middleware process, killed with SIGKILL mid-job and started again on the same data."""

from __future__ import annotations

import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import CHECKPOINT, TERMINAL
from tests.fakes.fake_container import FakeContainer

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"SD Cloud middleware listening on (http://127\.0\.0\.1:\d+)")


class Middleware:
    def __init__(self, data_dir: Path, models_dir: Path, container_url: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SDCLOUD_PROGRESS_POLL_S": "0.05"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "middleware.entrypoints.local",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                "--models-dir",
                str(models_dir),
                "--container-url",
                container_url,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = self._wait_listening()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def _wait_listening(self) -> str:
        while True:
            try:
                line = self.lines.get(timeout=60)
            except queue.Empty:
                raise AssertionError("middleware did not start:\n" + "".join(self.output)) from None
            match = LISTENING.search(line)
            if match:
                return match.group(1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.mark.slow
def test_kill_9_mid_job_then_restart_loses_nothing(tmp_path):
    data, models = tmp_path / "data", tmp_path / "models"
    models.mkdir()
    (models / CHECKPOINT).write_bytes(b"tiny checkpoint bytes")
    with FakeContainer(delay_s=60) as fake:
        first = Middleware(data, models, fake.url)
        try:
            key_file = data / "admin-api-key"
            assert f"Admin API key written to {key_file}\n" in first.output
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            key = key_file.read_text().strip()
            assert key not in "".join(first.output)  # the key itself is never printed
            headers = {"Authorization": f"Bearer {key}"}
            body = {"task": "txt2img", "payload": {"prompt": "a cat", "steps": 8}, "checkpoint": CHECKPOINT}
            with httpx.Client(base_url=first.url, headers=headers, timeout=40) as client:
                running = client.post("/v1/inferences", json=body).json()
                view = running
                while view["status"] != "running":
                    view = client.get(
                        f"/v1/inferences/{running['id']}", params={"wait": 10, "version": view["version"]}
                    ).json()
                # A second job waits behind the first (one worker).
                queued = client.post(
                    "/v1/inferences", json=body, headers={"Idempotency-Key": "second"}
                ).json()
                assert client.get(f"/v1/inferences/{queued['id']}").json()["status"] == "queued"
        finally:
            first.kill()

        fake.configure(delay_s=0)
        fake.release()
        second = Middleware(data, models, fake.url)
        try:
            assert not any("Admin API key written" in line for line in second.output)
            with httpx.Client(base_url=second.url, headers=headers, timeout=40) as client:
                failed = client.get(f"/v1/inferences/{running['id']}").json()
                assert failed["status"] == "failed"
                assert "middleware restarted while the job was running" in failed["error"]["message"]
                view = client.get(f"/v1/inferences/{queued['id']}").json()
                while view["status"] not in TERMINAL:
                    view = client.get(
                        f"/v1/inferences/{queued['id']}", params={"wait": 10, "version": view["version"]}
                    ).json()
                assert view["status"] == "succeeded", view["error"]
                assert client.get(view["result"]["images"][0]["url"]).status_code == 200
                # The retry of the second request still finds the same job.
                again = client.post("/v1/inferences", json=body, headers={"Idempotency-Key": "second"})
                assert again.status_code == 200 and again.json()["id"] == queued["id"]
                listed = [item["id"] for item in client.get("/v1/inferences").json()["items"]]
                assert listed == [queued["id"], running["id"]]
        finally:
            second.stop()
        assert second.proc.returncode is not None
