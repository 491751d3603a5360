"""The model uploader and the CLI against a real HTTP server with the library's upload API shape
(support/model_api_server.py: small parts, bytes counted on the server side)."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdcloud.client import SDCloudClient
from sdcloud.errors import ApiError
from sdcloud.models.__main__ import main as cli_main
from sdcloud.models.uploader import StateStore, Uploader, validate_name
from tests.extension.support.model_api_server import ModelApiServer

KEY = "sdk_TEST-uploader-key-0123456789"
PART = 64 * 1024
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ModelApiServer]:
    srv = ModelApiServer(tmp_path / "server", part_size=PART, api_key=KEY).start()
    try:
        yield srv
    finally:
        srv.stop()


def model_file(folder: Path, size: int, name: str = "style.safetensors", seed: int = 1) -> Path:
    path = folder / name
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB of non-repeating-ish bytes
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            fh.write(block[: min(left, len(block))])
            left -= len(block)
            block = hashlib.sha256(block[:64]).digest() * 2048
    return path


def uploader(api: ModelApiServer, tmp_path: Path, **kw) -> Uploader:  # type: ignore[no-untyped-def]
    kw.setdefault("sleep", lambda s: None)
    return Uploader(SDCloudClient(api.url, KEY), state_dir=tmp_path / "state", **kw)


def test_parallel_upload_sends_each_byte_once_without_the_key(api: ModelApiServer, tmp_path: Path) -> None:
    path = model_file(tmp_path, 5 * PART + 1234)
    seen: list[tuple[str, int, int]] = []
    result = uploader(api, tmp_path).upload(path, "lora", progress=lambda *a: seen.append(a))
    assert result.model.name == "style.safetensors" and result.model.type == "lora"
    assert result.model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not result.deduplicated and result.bytes_sent == path.stat().st_size
    assert api.bytes_received == path.stat().st_size and api.part_puts == 6
    assert api.auth_on_parts == []  # signed part URLs never get the API key
    uploading = [done for phase, done, _ in seen if phase == "uploading"]
    assert uploading[-1] == path.stat().st_size and uploading == sorted(uploading)
    assert [p for p in seen if p[0] == "hashing"][-1][1] == path.stat().st_size
    assert list((tmp_path / "state").glob("*.json")) == []  # no resume state left behind


def test_same_content_again_sends_zero_bytes(api: ModelApiServer, tmp_path: Path) -> None:
    path = model_file(tmp_path, 3 * PART)
    up = uploader(api, tmp_path)
    up.upload(path, "lora")
    before = api.bytes_received
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(path.read_bytes())
    again = up.upload(copy, "lora", name="renamed.safetensors")
    assert again.deduplicated and again.bytes_sent == 0 and api.bytes_received == before
    assert again.model.name == "renamed.safetensors"


def test_hash_mismatch_surfaces_the_servers_422_detail(api: ModelApiServer, tmp_path: Path) -> None:
    path = model_file(tmp_path, 2 * PART)
    with pytest.raises(ApiError) as caught:
        uploader(api, tmp_path).upload(path, "lora", sha256="0" * 64)
    assert caught.value.status == 422 and "sha256 mismatch" in str(caught.value)
    assert StateStore(tmp_path / "state").load(str(path.resolve())) is None  # failed upload: start over next time


def test_failed_parts_are_retried_with_backoff(api: ModelApiServer, tmp_path: Path) -> None:
    path = model_file(tmp_path, 2 * PART)
    delays: list[float] = []
    api.fail_next_puts = 2
    result = uploader(api, tmp_path, concurrency=1, sleep=delays.append).upload(path, "vae")
    assert result.model.type == "vae" and delays == [0.5, 1.0]
    assert result.bytes_sent == path.stat().st_size + 2 * PART  # the two refused attempts went again


def test_resume_after_the_process_was_killed_sends_only_missing_parts(api: ModelApiServer, tmp_path: Path) -> None:
    size = 16 * PART
    path = model_file(tmp_path, size, name="big.safetensors")
    settings = tmp_path / "cfg" / "ui-settings.json"
    env = {**os.environ, "SDCLOUD_API_URL": api.url, "SDCLOUD_API_KEY": KEY, "SDCLOUD_UI_SETTINGS": str(settings),
           "PYTHONPATH": str(REPO)}
    api.chunk_delay_s = 0.01  # slow enough that the kill lands mid-upload
    proc = subprocess.Popen([sys.executable, "-m", "sdcloud.models", "upload", str(path), "--type", "lora",
                             "--concurrency", "1", "--no-progress"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while api.bytes_received < size // 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    api.chunk_delay_s = 0.0
    [upload] = api.uploads.values()
    # What the dead process had already written to its socket still reaches the server, and a
    # part it had sent whole is still stored: count once the server has settled.
    settled = None
    while settled != (api.bytes_received, sum(upload["received"].values())):
        settled = (api.bytes_received, sum(upload["received"].values()))
        time.sleep(0.3)
    first, held = settled
    assert size // 2 <= first < size

    result = Uploader(SDCloudClient(api.url, KEY), state_dir=settings.parent / "uploads").upload(path, "lora")
    resent = api.bytes_received - first
    assert resent == size - held == result.bytes_sent  # only the parts the server lacked
    assert first + resent - size <= PART  # what the kill wasted: at most the part in flight
    assert result.resumed_parts == held // PART and result.model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_changed_file_starts_a_new_upload(api: ModelApiServer, tmp_path: Path) -> None:
    path = model_file(tmp_path, 4 * PART)
    up = uploader(api, tmp_path)
    plan = up.client.declare_upload(path.name, "lora", 4 * PART, "1" * 64)
    stat = path.stat()
    from sdcloud.models.uploader import ResumeState

    up.states.save(ResumeState(plan["upload_id"], str(path.resolve()), stat.st_size, stat.st_mtime_ns - 1,
                               "1" * 64, up.client.base_url, path.name, "lora"))
    result = up.upload(path, "lora")  # the saved state is for another mtime: hashed and declared anew
    assert result.bytes_sent == 4 * PART and result.resumed_parts == 0


@pytest.mark.parametrize("name", ["", "a/b.safetensors", "..\\x", "bad..name", "x\n.pt", "n" * 256])
def test_bad_names_are_refused_before_anything_is_sent(name: str) -> None:
    with pytest.raises(ValueError):
        validate_name(name)


# ---- the CLI ------------------------------------------------------------------------------------


def run_cli(args: list[str], api_url: str, tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"SDCLOUD_API_URL": api_url, "SDCLOUD_API_KEY": KEY,
           "SDCLOUD_UI_SETTINGS": str(tmp_path / "cfg" / "ui-settings.json")}
    saved = os.environ.get("SDCLOUD_UI_SETTINGS")  # the session's value (tests/extension/conftest.py)
    os.environ["SDCLOUD_UI_SETTINGS"] = env["SDCLOUD_UI_SETTINGS"]  # the resume state's folder
    try:
        code = cli_main(args, env=env, out=out, err=err)
    finally:
        if saved is None:
            os.environ.pop("SDCLOUD_UI_SETTINGS", None)
        else:
            os.environ["SDCLOUD_UI_SETTINGS"] = saved
    return code, out.getvalue(), err.getvalue()


def test_cli_upload_then_list(api: ModelApiServer, tmp_path: Path) -> None:
    path = model_file(tmp_path, 2 * PART + 7, name="ink.safetensors")
    code, out, err = run_cli(["upload", str(path), "--type", "lora", "--public"], api.url, tmp_path)
    assert code == 0, err
    assert "lora ink.safetensors sha256" in out and f"{2 * PART + 7} bytes sent" in out
    code, out, _ = run_cli(["upload", str(path), "--type", "lora", "--name", "ink2.safetensors"], api.url, tmp_path)
    assert code == 0 and "already stored, 0 bytes sent" in out
    code, out, _ = run_cli(["list", "--type", "lora"], api.url, tmp_path)
    lines = sorted(out.splitlines(), key=lambda line: line.split()[-1])
    assert code == 0 and len(lines) == 2
    assert lines[0].split()[-2:] == ["public", "ink.safetensors"]
    assert lines[1].split()[-2:] == ["private", "ink2.safetensors"]


def test_cli_bad_input_is_one_line_and_exit_2(api: ModelApiServer, tmp_path: Path) -> None:
    code, _, err = run_cli(["upload", str(tmp_path / "nope.safetensors"), "--type", "lora"], api.url, tmp_path)
    assert code == 2 and err.strip().endswith("nope.safetensors: no such file") and err.count("\n") == 1
    code, _, err = run_cli(["list"], "", tmp_path)
    assert code == 2 and "no API URL" in err
    code, _, err = run_cli(["list", "--api-url", api.url], "", tmp_path)  # options after the command too
    assert code == 0 and "no models" in err
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    code, _, err = run_cli(["upload", str(empty), "--type", "embedding"], api.url, tmp_path)
    assert code == 2 and "is empty" in err
    code, _, err = run_cli(["sync", "--webui-dir", str(tmp_path / "missing")], api.url, tmp_path)
    assert code == 2 and "is not a folder" in err
    with pytest.raises(SystemExit) as caught:  # argparse: an unknown type
        run_cli(["upload", "x", "--type", "hypernetwork"], api.url, tmp_path)
    assert caught.value.code == 2


def test_cli_server_refusal_is_exit_1(api: ModelApiServer, tmp_path: Path, refused_url: str) -> None:
    path = model_file(tmp_path, PART)
    code, _, err = run_cli(["upload", str(path), "--type", "lora"], refused_url, tmp_path)
    assert code == 1 and "failed:" in err and KEY not in err


# ---- AWS mode: completion answers "verifying" while the library function checks the bytes -----


def _verifying_client(answers: list[dict]) -> tuple[SDCloudClient, list[str]]:
    client = SDCloudClient("http://127.0.0.1:9", KEY)
    polled: list[str] = []
    client._json = lambda *a, **k: {"status": "verifying", "upload_id": "upl_1"}  # type: ignore[method-assign]

    def get_upload(upload_id: str) -> dict:
        polled.append(upload_id)
        return answers.pop(0)

    client.get_upload = get_upload  # type: ignore[method-assign]
    return client, polled


def test_complete_follows_a_verifying_upload_to_its_model() -> None:
    model = {"id": "mdl_1", "name": "big.safetensors", "type": "checkpoint", "sha256": "a" * 64, "size": 9}
    client, polled = _verifying_client([{"status": "verifying"}, {"status": "complete", "model": model}])
    info = client.complete_upload("upl_1", [], poll_s=0, sleep=lambda s: None)
    assert info.name == "big.safetensors" and polled == ["upl_1", "upl_1"]


def test_a_verification_that_fails_is_a_422_like_the_inline_check() -> None:
    client, _ = _verifying_client([{"status": "failed", "error": "the file's sha256 is 00.., not the ff.. declared"}])
    with pytest.raises(ApiError) as caught:
        client.complete_upload("upl_1", [], poll_s=0, sleep=lambda s: None)
    assert caught.value.status == 422 and "sha256" in str(caught.value)


def test_a_verification_longer_than_the_wait_is_a_timeout_that_keeps_the_upload() -> None:
    from sdcloud.errors import Timeout

    client, _ = _verifying_client([{"status": "verifying"}] * 5)
    with pytest.raises(Timeout, match="still being verified"):
        client.complete_upload("upl_1", [], wait_s=0, poll_s=0, sleep=lambda s: None)


def test_a_run_killed_while_the_server_verified_resumes_by_following_the_check(tmp_path: Path) -> None:
    """Every byte was sent; the process died while completion was verifying. The next run
    sends nothing and waits for the check instead of uploading gigabytes again."""
    from sdcloud.models.uploader import ResumeState

    path = model_file(tmp_path, 3 * PART)
    model = {"id": "mdl_1", "name": path.name, "type": "checkpoint", "sha256": "b" * 64, "size": 3 * PART}

    class Client(SDCloudClient):
        completed: list[str] = []

        def get_upload(self, upload_id: str) -> dict:
            return {"status": "verifying", "upload_id": upload_id, "parts": [], "received": []}

        def declare_upload(self, *a, **k):  # type: ignore[no-untyped-def]
            raise AssertionError("declared again: the file would be sent again")

        def complete_upload(self, upload_id, parts, **k):  # type: ignore[no-untyped-def]
            self.completed.append(upload_id)
            from sdcloud.records import ModelInfo
            return ModelInfo.from_json(model)

    client = Client("http://127.0.0.1:9", KEY)
    stat = path.stat()
    states = StateStore(tmp_path / "state")
    states.save(ResumeState("upl_9", str(path.resolve()), stat.st_size, stat.st_mtime_ns, "b" * 64,
                            client.base_url, path.name, "checkpoint"))  # fmt: skip
    result = Uploader(client, state_dir=tmp_path / "state").upload(path, "checkpoint")
    assert result.bytes_sent == 0 and Client.completed == ["upl_9"] and result.model.id == "mdl_1"
