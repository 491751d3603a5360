"""A real ``moto_server`` process on 127.0.0.1 for the AWS adapters' contract tests.

moto checks conditional writes, GSIs and transactions like DynamoDB does, and serves S3 over real
HTTP (presigned URLs included), but it does not check signatures or expiry: those are unit-tested.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.local_processes import free_port

REGION = "us-east-1"
# moto accepts any credentials; these only have to be well-formed, and never reach AWS.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}


def unavailable_reason() -> str | None:
    """Why moto's server cannot run here, or None when it can."""
    for module in ("moto.server", "flask", "flask_cors"):
        try:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install 'moto[server]')"
        except ImportError:
            return f"{module} is not importable (pip install 'moto[server]')"
    return None


def _command(port: int) -> list[str]:
    exe = Path(sys.executable).parent / "moto_server"
    if exe.exists():
        return [str(exe), "-H", "127.0.0.1", "-p", str(port)]
    found = shutil.which("moto_server")
    if found:
        return [found, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


@contextmanager
def moto_server(startup_s: float = 60.0) -> Iterator[str]:
    """Start ``moto_server`` on a free loopback port; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # A file, not a pipe: moto logs every request, and a full pipe would stall it.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        _command(port), stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"moto_server exited with {proc.returncode}: {err}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2):  # noqa: S310 - loopback
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {url} within {startup_s} s") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def serve_or_skip(what: str) -> Iterator[str]:
    """For a fixture: ``yield from serve_or_skip("the S3 adapters")`` yields a moto server's URL,
    or skips the tests that need it, saying why."""
    import pytest

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"{what} needs moto's server: {reason}")
    with moto_server() as url:
        yield url
