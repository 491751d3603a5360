"""The uploader against the REAL middleware (local mode: signed part URLs it serves itself), with
the bytes counted by a TCP proxy between the two: resume after a simulated kill sends only the
missing parts, the same content again sends none, a hash mismatch surfaces the server's 422."""

from __future__ import annotations

import json
import os
import re
import struct
import uuid
from pathlib import Path

import pytest

from sdcloud.client import SDCloudClient
from sdcloud.errors import ApiError
from sdcloud.models.uploader import StateStore, Uploader
from sdcloud.ui.models_page import change_model, own_model_choices
from tests.extension.support.counting_proxy import CountingProxy
from tests.extension.support.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MIB = 1024 * 1024
PART = 64 * MIB  # the middleware's smallest part size
HEADERS_SLACK = 64 * 1024  # HTTP requests (headers, JSON calls) on top of the part bytes


def safetensors_file(path: Path, size: int) -> Path:
    """A valid safetensors file of `size` bytes (one uint8 tensor) with unique random content."""
    header_len = 128
    data = size - 8 - header_len
    header = json.dumps({"weight": {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}}).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", header_len) + header.ljust(header_len, b" "))
        fh.write(os.urandom(64))  # unique content: no other test's upload deduplicates this one
        left = data - 64
        block = b"\x00" * MIB
        while left > 0:
            fh.write(block[: min(left, MIB)])
            left -= MIB
    return path


@pytest.fixture
def routes(backend: Stack) -> Stack:
    client = SDCloudClient(backend.api_url, backend.api_key)
    try:
        client.get_upload("upl_probe")
    except ApiError as exc:
        if exc.status == 405 or (exc.status == 404 and "route" in str(exc).lower()):
            pytest.skip("this middleware has no model upload routes yet")
    return backend


@pytest.fixture
def proxy(routes: Stack):  # type: ignore[no-untyped-def]
    port = int(routes.api_url.rsplit(":", 1)[1])
    counting = CountingProxy(port)
    yield counting
    counting.close()


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).strip()


class Killed(BaseException):
    """Stands in for the process dying: raised from inside the upload, nothing catches it."""


def test_resume_after_a_kill_sends_only_the_missing_parts(routes: Stack, proxy: CountingProxy, tmp_path: Path) -> None:
    size = 2 * PART + 3 * MIB
    path = safetensors_file(tmp_path / f"{uuid.uuid4().hex[:8]}.safetensors", size)
    client = SDCloudClient(f"http://127.0.0.1:{proxy.port}", routes.api_key)
    state = tmp_path / "state"

    def die_in_part_two(phase: str, done: int, total: int) -> None:
        if phase == "uploading" and done > PART + MIB:
            raise Killed()

    with pytest.raises(Killed):
        Uploader(client, concurrency=1, state_dir=state).upload(path, "lora", progress=die_in_part_two)
    saved = StateStore(state).load(str(path.resolve()))
    assert saved is not None and saved.size == size
    held = sum(int(p["size"]) for p in client.get_upload(saved.upload_id)["received"])
    assert held == PART

    before = proxy.upstream_bytes
    result = Uploader(client, concurrency=4, state_dir=state).upload(path, "lora")
    resent = proxy.upstream_bytes - before
    assert result.resumed_parts == 1 and result.bytes_sent == size - PART
    assert size - PART <= resent <= size - PART + HEADERS_SLACK  # part 1 did not go again
    assert result.model.size == size and result.model.type == "lora"
    assert StateStore(state).load(str(path.resolve())) is None


def test_the_same_content_again_sends_no_part(routes: Stack, proxy: CountingProxy, tmp_path: Path) -> None:
    path = safetensors_file(tmp_path / "once.safetensors", 2 * MIB)
    client = SDCloudClient(f"http://127.0.0.1:{proxy.port}", routes.api_key)
    first = Uploader(client, state_dir=tmp_path / "state").upload(path, "embedding", name=f"e{uuid.uuid4().hex[:6]}.safetensors")
    assert first.bytes_sent == 2 * MIB and not first.deduplicated
    before = proxy.upstream_bytes
    again = Uploader(client, state_dir=tmp_path / "state").upload(path, "embedding", name=f"f{uuid.uuid4().hex[:6]}.safetensors")
    assert again.deduplicated and again.bytes_sent == 0
    assert proxy.upstream_bytes - before < HEADERS_SLACK  # only the declare call went out
    assert again.model.sha256 == first.model.sha256
    listed = {m.name for m in client.iter_models("embedding")}
    assert {first.model.name, again.model.name} <= listed
    mine = dict((label, model_id) for label, model_id in own_model_choices(client.list_models(None), client.me().user))
    assert f"{again.model.name} (embedding, private)" in mine  # the Models page may change it
    assert text_of(change_model(lambda: client, again.model.id, "public")) == f"{again.model.name} is now public"
    client.delete_model(again.model.id)
    assert again.model.name not in {m.name for m in client.iter_models("embedding")}


def test_a_hash_mismatch_surfaces_the_servers_422(routes: Stack, tmp_path: Path) -> None:
    path = safetensors_file(tmp_path / "liar.safetensors", MIB)
    client = SDCloudClient(routes.api_url, routes.api_key)
    with pytest.raises(ApiError) as caught:
        Uploader(client, state_dir=tmp_path / "state").upload(path, "lora", sha256="ab" * 32)
    assert caught.value.status == 422 and "sha256" in str(caught.value).lower()
    assert StateStore(tmp_path / "state").load(str(path.resolve())) is None
