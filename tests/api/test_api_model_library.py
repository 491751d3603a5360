"""The model library through the real app (SQLite, blob folder): uploads in parts over signed
URLs, resume, dedupe, verification failures, permissions, pagination, body limits, imports."""

from __future__ import annotations

import threading

import pytest

from tests.contract.model_files import raw_file, safetensors_bytes, sha256
from tests.support.file_server import serving

PART = 4096


@pytest.fixture
def lib(stack):
    stack.runtime.services.library.part_bytes = PART  # tests only: tiny parts
    return stack


def declare(stack, data: bytes, name="style.safetensors", type="lora", key=None, **extra):
    body = {"name": name, "type": type, "size": len(data), "sha256": sha256(data), **extra}
    return stack.client.post("/v1/models/uploads", json=body, headers=stack.auth(key))


def put_part(stack, url: str, data: bytes):
    return stack.client.put(url, content=data)


def upload(stack, data: bytes, key=None, **kw) -> dict:
    plan = declare(stack, data, key=key, **kw)
    assert plan.status_code in (200, 201), plan.text
    plan = plan.json()
    if plan["status"] == "complete":
        return plan["model"]
    for part in plan["parts"]:
        start = (part["number"] - 1) * plan["part_size"]
        answer = put_part(stack, part["url"], data[start : start + part["size"]])
        assert answer.status_code == 200, answer.text
    done = stack.client.post(f"/v1/models/uploads/{plan['upload_id']}/complete", json={"parts": []}, headers=stack.auth(key))
    assert done.status_code == 200, done.text
    return done.json()["model"]


def big_file(n_tensor_bytes: int = 3 * PART + 100) -> bytes:
    raw = bytes(i % 251 for i in range(n_tensor_bytes - n_tensor_bytes % 4))
    return safetensors_bytes({"w": ("F32", [len(raw) // 4], raw)})


def test_upload_in_parts_then_resume_sends_only_missing_parts(lib):
    data = big_file()
    plan = declare(lib, data).json()
    assert plan["status"] == "uploading" and plan["part_size"] == PART
    assert [p["size"] for p in plan["parts"]] == [PART, PART, PART, len(data) - 3 * PART]
    first = plan["parts"][0]
    answer = put_part(lib, first["url"], data[:PART])
    assert answer.status_code == 200 and answer.headers["etag"].startswith('"')
    # "The process was killed": the status lists what arrived and fresh URLs for the rest only.
    status = lib.client.get(f"/v1/models/uploads/{plan['upload_id']}", headers=lib.auth()).json()
    assert [r["number"] for r in status["received"]] == [1]
    assert [p["number"] for p in status["parts"]] == [2, 3, 4]
    early = lib.client.post(f"/v1/models/uploads/{plan['upload_id']}/complete", json={}, headers=lib.auth())
    assert early.status_code == 400 and "2, 3, 4" in early.json()["detail"]
    for part in status["parts"]:
        start = (part["number"] - 1) * PART
        assert put_part(lib, part["url"], data[start : start + part["size"]]).status_code == 200
    done = lib.client.post(f"/v1/models/uploads/{plan['upload_id']}/complete", json={}, headers=lib.auth())
    assert done.status_code == 200, done.text
    model = done.json()["model"]
    assert model["sha256"] == sha256(data) and model["size"] == len(data) and model["format"] == "safetensors"
    stored = lib.data_dir / "blobs" / "models" / sha256(data)
    assert stored.read_bytes() == data
    assert not (lib.data_dir / "blobs" / ".multipart" / plan["upload_id"]).exists()
    # The catalog port now finds it for the owner (job references point at the blob folder).
    catalog = lib.runtime.services.inferences._catalog.for_user("admin")
    info = catalog.get("style.safetensors", "lora")
    assert info is not None and info.uri == stored.as_uri() and info.sha256 == sha256(data)


def test_same_bytes_again_complete_at_once_with_zero_bytes(lib):
    data = big_file()
    first = upload(lib, data)
    other = lib.add_user("bob")
    again = declare(lib, data, name="copy.safetensors", key=other)
    assert again.status_code == 200
    body = again.json()
    assert body["status"] == "complete" and body["parts"] == [] and body["upload_id"] is None
    assert body["model"]["owner"] == "bob" and body["model"]["sha256"] == first["sha256"]
    assert body["model"]["id"] != first["id"]


def test_hash_mismatch_fails_and_keeps_nothing(lib):
    data = big_file()
    wrong = bytearray(data)
    wrong[-1] ^= 0xFF
    plan = declare(lib, data).json()
    for part in plan["parts"]:
        start = (part["number"] - 1) * PART
        put_part(lib, part["url"], bytes(wrong[start : start + part["size"]]))
    done = lib.client.post(f"/v1/models/uploads/{plan['upload_id']}/complete", json={}, headers=lib.auth())
    assert done.status_code == 422
    assert done.headers["content-type"].startswith("application/problem+json")
    assert "sha256" in done.json()["detail"]
    assert not (lib.data_dir / "blobs" / "models" / sha256(data)).exists()
    assert not (lib.data_dir / "blobs" / ".multipart" / plan["upload_id"]).exists()
    status = lib.client.get(f"/v1/models/uploads/{plan['upload_id']}", headers=lib.auth()).json()
    assert status["status"] == "failed" and "sha256" in status["error"]


def test_bad_safetensors_header_is_refused(lib):
    data = raw_file({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, bytes(16))
    plan = declare(lib, data).json()
    assert put_part(lib, plan["parts"][0]["url"], data).status_code == 200
    done = lib.client.post(f"/v1/models/uploads/{plan['upload_id']}/complete", json={}, headers=lib.auth())
    assert done.status_code == 422 and "shape" in done.json()["detail"]


def test_part_body_limits(lib):
    data = big_file()
    plan = declare(lib, data).json()
    url = plan["parts"][0]["url"]
    too_big = put_part(lib, url, data[: PART + 1])
    assert too_big.status_code == 413 and too_big.headers["content-type"].startswith("application/problem+json")
    short = put_part(lib, url, data[:10])
    assert short.status_code == 400 and f"{PART} bytes" in short.json()["detail"]
    forged = put_part(lib, url.replace("signature=", "signature=0"), data[:PART])
    assert forged.status_code == 403
    status = lib.client.get(f"/v1/models/uploads/{plan['upload_id']}", headers=lib.auth()).json()
    assert status["received"] == []


def test_abort_frees_the_parts(lib):
    data = big_file()
    plan = declare(lib, data).json()
    put_part(lib, plan["parts"][0]["url"], data[:PART])
    assert lib.client.delete(f"/v1/models/uploads/{plan['upload_id']}", headers=lib.auth()).status_code == 204
    assert not (lib.data_dir / "blobs" / ".multipart" / plan["upload_id"]).exists()
    late = put_part(lib, plan["parts"][1]["url"], data[PART : 2 * PART])
    assert late.status_code == 409


def test_idempotency_key_returns_the_first_upload(lib):
    data = big_file()
    headers = {**lib.auth(), "Idempotency-Key": "k1"}
    body = {"name": "a.safetensors", "type": "lora", "size": len(data), "sha256": sha256(data)}
    one = lib.client.post("/v1/models/uploads", json=body, headers=headers)
    two = lib.client.post("/v1/models/uploads", json=body, headers=headers)
    assert one.status_code == 201 and two.status_code == 200
    assert one.json()["upload_id"] == two.json()["upload_id"]
    other = lib.client.post("/v1/models/uploads", json={**body, "name": "b.safetensors"}, headers=headers)
    assert other.status_code == 422


def test_permissions(lib):
    bob, eve = lib.add_user("bob"), lib.add_user("eve")
    model = upload(lib, big_file(), key=bob)
    assert lib.client.get(f"/v1/models/{model['id']}", headers=lib.auth(eve)).status_code == 404
    assert lib.client.delete(f"/v1/models/{model['id']}", headers=lib.auth(eve)).status_code == 404
    names = [m["name"] for m in lib.client.get("/v1/models?type=lora", headers=lib.auth(eve)).json()["items"]]
    assert names == []
    public = lib.client.patch(f"/v1/models/{model['id']}", json={"visibility": "public"}, headers=lib.auth(bob))
    assert public.status_code == 200 and public.json()["visibility"] == "public"
    assert lib.client.get(f"/v1/models/{model['id']}", headers=lib.auth(eve)).status_code == 200
    assert lib.client.delete(f"/v1/models/{model['id']}", headers=lib.auth(eve)).status_code == 403
    # The admin may delete it; the bytes go with the last record.
    assert lib.client.delete(f"/v1/models/{model['id']}", headers=lib.auth()).status_code == 204
    assert not (lib.data_dir / "blobs" / "models" / model["sha256"]).exists()


def test_delete_keeps_bytes_another_record_uses(lib):
    data = big_file()
    mine = upload(lib, data)
    bob = lib.add_user("bob")
    upload(lib, data, key=bob, name="bobs.safetensors")
    assert lib.client.delete(f"/v1/models/{mine['id']}", headers=lib.auth()).status_code == 204
    assert (lib.data_dir / "blobs" / "models" / mine["sha256"]).exists()


def test_list_pagination_filters_and_operator_checkpoints(lib):
    for n in range(5):
        upload(lib, safetensors_bytes({"w": ("U8", [n + 1], bytes(n + 1))}), name=f"m{n}.safetensors")
    first = lib.client.get("/v1/models?limit=2", headers=lib.auth()).json()
    # The operator's folder checkpoint heads the first page, as GET /v1/models always listed it.
    assert first["items"][0]["owner"] == "operator" and first["items"][0]["type"] == "checkpoint"
    seen = [m["name"] for m in first["items"][1:]]
    cursor = first.get("next_cursor")
    while cursor:
        page = lib.client.get("/v1/models", params={"limit": 2, "cursor": cursor}, headers=lib.auth()).json()
        seen += [m["name"] for m in page["items"]]
        cursor = page.get("next_cursor")
    assert sorted(seen) == [f"m{n}.safetensors" for n in range(5)] and len(seen) == 5
    only = lib.client.get("/v1/models", params={"type": "lora", "q": "M3"}, headers=lib.auth()).json()
    assert [m["name"] for m in only["items"]] == ["m3.safetensors"]
    assert {"name", "type", "size", "sha256"} <= set(only["items"][0])
    bad = lib.client.get("/v1/models", params={"cursor": "nonsense"}, headers=lib.auth())
    assert bad.status_code == 400


def test_bad_declarations_name_the_field(lib):
    data = big_file()
    for name in ("../x.safetensors", "a/b.safetensors", "x.exe"):
        answer = declare(lib, data, name=name)
        assert answer.status_code == 400, name
        assert any(e["field"].endswith("name") for e in answer.json()["errors"])
    conflict_src = upload(lib, data, name="same.safetensors")
    other = declare(lib, safetensors_bytes(), name="same.safetensors")
    assert other.status_code == 409 and conflict_src["id"]


def test_pickle_is_stored_with_its_format(lib):
    data = b"\x80\x04not really a pickle" * 10
    model = upload(lib, data, name="old.ckpt", type="checkpoint")
    assert model["format"] == "pickle"


@pytest.fixture
def files():
    served: dict[str, bytes] = {}
    with serving(served) as base:
        yield served, base


def wait_import(stack, import_id):
    for _ in range(200):
        view = stack.client.get(f"/v1/models/imports/{import_id}", headers=stack.auth()).json()
        if view["status"] != "importing":
            return view
        threading.Event().wait(0.05)
    raise AssertionError(view)


def test_import_refuses_private_hosts_and_http(lib):
    answer = lib.client.post(
        "/v1/models/imports",
        json={"url": "http://127.0.0.1/x.safetensors", "name": "x.safetensors", "type": "lora"},
        headers=lib.auth(),
    )
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "url"
    for url in ("file:///etc/passwd", "ftp://example.com/x"):
        body = {"url": url, "name": "x.safetensors", "type": "lora"}
        assert lib.client.post("/v1/models/imports", json=body, headers=lib.auth()).status_code == 400
    started = lib.client.post(
        "/v1/models/imports",
        json={"url": "https://127.0.0.1:1/x.safetensors", "name": "x.safetensors", "type": "lora"},
        headers=lib.auth(),
    )
    assert started.status_code == 202
    view = wait_import(lib, started.json()["import_id"])
    assert view["status"] == "failed" and "loopback" in view["error"]


@pytest.fixture
def open_lib(tmp_path, fake):
    """A stack whose imports may reach 127.0.0.1 over http (the test-only setting)."""
    from fastapi.testclient import TestClient

    from middleware.bootstrap import build_local, provision_admin
    from tests.api.conftest import Stack, make_settings

    fake.configure(output_dir=str(tmp_path / "data" / "blobs"))
    runtime = build_local(make_settings(tmp_path, fake.url, import_allow_private_hosts=True))
    key = provision_admin(runtime).read_text().strip()
    runtime.start()
    try:
        with TestClient(runtime.app) as client:
            yield Stack(runtime, client, fake, key, tmp_path / "data", "asgi")
    finally:
        runtime.stop()


def test_import_streams_hashes_and_dedupes(open_lib, files):
    data = big_file()
    served, base = files
    served.update({"/lora.safetensors": data, "/bad.safetensors": b"\x01" * 40})
    body = {"url": f"{base}/lora.safetensors?token=secret", "name": "imp.safetensors", "type": "lora", "sha256": sha256(data)}
    started = open_lib.client.post("/v1/models/imports", json=body, headers=open_lib.auth())
    assert started.status_code == 202
    view = wait_import(open_lib, started.json()["import_id"])
    assert view["status"] == "complete", view
    assert view["model"]["sha256"] == sha256(data) and "secret" not in view["url"]
    assert (open_lib.data_dir / "blobs" / "models" / sha256(data)).read_bytes() == data
    wrong = {**body, "name": "w.safetensors", "sha256": "0" * 64}
    view = wait_import(open_lib, open_lib.client.post("/v1/models/imports", json=wrong, headers=open_lib.auth()).json()["import_id"])
    assert view["status"] == "failed" and "sha256" in view["error"]
    bad = {"url": f"{base}/bad.safetensors", "name": "b.safetensors", "type": "lora"}
    view = wait_import(open_lib, open_lib.client.post("/v1/models/imports", json=bad, headers=open_lib.auth()).json()["import_id"])
    assert view["status"] == "failed" and "safetensors" in view["error"]
    assert not any((open_lib.data_dir / "blobs" / "imports").glob("*"))


def test_a_private_lora_resolves_for_its_owner_only(lib):
    """Submit-time resolution goes through the library catalog: the owner's job document gets the
    exact reference (file:// into the blob folder); another user's same prompt is refused."""
    import json

    data = big_file()
    model = upload(lib, data, name="ink.safetensors")
    answer = lib.submit({"prompt": "a cat <lora:ink:0.8>", "steps": 4})
    assert answer.status_code in (200, 202), answer.text
    job_id = answer.json()["id"]
    document = json.loads((lib.data_dir / "blobs" / "jobs" / job_id / "request.json").read_bytes())
    (ref,) = document["models"]["loras"]
    assert ref["sha256"] == model["sha256"] and ref["size"] == len(data)
    assert ref["uri"] == (lib.data_dir / "blobs" / "models" / model["sha256"]).resolve().as_uri()
    bob = lib.add_user("bob")
    refused = lib.submit({"prompt": "a cat <lora:ink:0.8>", "steps": 4}, key=bob)
    assert refused.status_code == 400 and "ink" in refused.text
