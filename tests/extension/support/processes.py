"""Start real processes for tests and stop exactly those (by their own pid, never by name)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    """A port the OS says is free now (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose output is collected; `start` returns once `ready` appears in it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        ready: str,
        cwd: Path = REPO,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.ready = ready
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        self.timeout = timeout
        self.lines: list[str] = []
        self._popen: subprocess.Popen[str] | None = None
        self._ready = threading.Event()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def _pump(self) -> None:
        assert self._popen is not None and self._popen.stdout is not None
        for line in self._popen.stdout:
            self.lines.append(line)
            if self.ready in line:
                self._ready.set()

    def start(self) -> Process:
        self._popen = subprocess.Popen(
            self.argv,
            cwd=str(self.cwd),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._pump, name=f"pump-{self.name}", daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while not self._ready.wait(0.05):
            if self._popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start; its output:\n{self.output[-4000:]}")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal our own child and wait for it; kill it if it does not go."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            popen.send_signal(sig)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(5)
        return popen.returncode
