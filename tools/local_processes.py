"""Launch our own local processes (inference container, middleware, UI) on loopback, and stop them.

Used by `make demo`, the end-to-end and browser tests and the benchmarks. Standard library only,
so it runs under either of the project's environments. The container and the middleware share
one blob folder (``<data-dir>/blobs``): the container writes each job's images and result.json
there, as a SageMaker async endpoint writes to its S3 output location.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def backend_python() -> str:
    return os.environ.get("SDCLOUD_BACKEND_PYTHON") or str(REPO / ".venv" / "bin" / "python")


def extension_python() -> str:
    return os.environ.get("SDCLOUD_EXTENSION_PYTHON") or str(REPO / ".venv-a1111" / "bin" / "python")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URLs we built
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class Service:
    """One child process with its own log file, started in its own process group.

    It is ready when ``health_url`` answers 200, or, for a process with no health route, when
    ``ready_line`` appears in its output.
    """

    name: str
    command: list[str]
    health_url: str | None
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    ready_line: str | None = None
    process: subprocess.Popen | None = None

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 120.0) -> Service:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; log:\n{self.log_tail()}")
            if self.ready_line is not None and self.ready_line in self.output:
                return self
            if self.health_url is not None and http_status(self.health_url) == 200:
                return self
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s; log:\n{self.log_tail()}")

    @property
    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signal the process group and wait; SIGKILL if it does not go. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:]) or "(no log)"


def make_tiny_checkpoint(path: Path) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([backend_python(), "-m", "inference_container.tiny", str(path)], cwd=REPO, check=True,  # noqa: S603
                       stdout=sys.stderr)
    return path


@dataclass
class LocalStack:
    """The three processes on loopback, sharing one data folder."""

    data_dir: Path
    checkpoint: Path
    host: str = "127.0.0.1"
    fake_container: bool = False
    with_ui: bool = True
    container_env: dict[str, str] = field(default_factory=dict)
    container_port: int = field(default_factory=free_port)
    middleware_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def models_dir(self) -> Path:
        return self.checkpoint.parent

    @property
    def container_url(self) -> str:
        return f"http://{self.host}:{self.container_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.middleware_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.ui_port}"

    @property
    def blob_dir(self) -> Path:
        """The middleware's blob folder (middleware/bootstrap.py puts it in <data-dir>/blobs)."""
        return self.data_dir / "blobs"

    @property
    def api_key_file(self) -> Path:
        return self.data_dir / "admin-api-key"

    @property
    def api_key(self) -> str:
        return self.api_key_file.read_text().strip()

    def container_service(self) -> Service:
        logs = self.data_dir / "logs"
        if self.fake_container:
            command = [backend_python(), "-m", "tests.fakes.fake_container", "--port", str(self.container_port)]
        else:
            command = [backend_python(), "-m", "inference_container.server", "--host", self.host,
                       "--port", str(self.container_port), "--preload", str(self.checkpoint)]
        env = {"SDCLOUD_MODEL_CACHE_DIR": str(self.data_dir / "model-cache"), "HF_HUB_OFFLINE": "1",
               "SDCLOUD_OUTPUT_STORE": self.blob_dir.resolve().as_uri(),
               # The middleware hands out file:// references into its models folder and, for the
               # model library's uploads, into <data-dir>/blobs/models (content addressed).
               "SDCLOUD_MODEL_ROOTS": f"{self.models_dir.resolve()}:{(self.blob_dir / 'models').resolve()}",
               **self.container_env}
        return Service("container", command, f"{self.container_url}/ping", logs / "container.log", env)

    def middleware_service(self) -> Service:
        command = [backend_python(), "-m", "middleware.entrypoints.local", "--host", self.host,
                   "--port", str(self.middleware_port), "--data-dir", str(self.data_dir),
                   "--models-dir", str(self.models_dir), "--container-url", self.container_url]
        return Service("middleware", command, f"{self.api_url}/v1/ping", self.data_dir / "logs" / "middleware.log")

    def ui_service(self) -> Service:
        command = [extension_python(), "-m", "sdcloud.app", "--host", self.host, "--port", str(self.ui_port),
                   "--api-url", self.api_url, "--api-key-file", str(self.api_key_file),
                   # The demo keeps everything in its data folder: the UI's settings and its images
                   # (outputs/txt2img-images/<date>/, A1111's layout).
                   "--settings-file", str(self.data_dir / "ui-settings.json"),
                   "--outputs-dir", str(self.data_dir / "outputs")]
        return Service("ui", command, f"{self.ui_url}/", self.data_dir / "logs" / "ui.log")

    def start(self, timeout: float = 180.0) -> LocalStack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.services["container"] = self.container_service().start()
        self.services["middleware"] = self.middleware_service().start()
        if self.with_ui:
            self.services["ui"] = self.ui_service().start()
        try:
            for service in self.services.values():
                service.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    def __enter__(self) -> LocalStack:
        # `with LocalStack(...).start(timeout=...) as stack:` is started already: starting again
        # would put new processes in `services` and leave the first ones running, unowned.
        return self if self.services else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

