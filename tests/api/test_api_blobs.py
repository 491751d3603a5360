import time
from urllib.parse import parse_qs, urlsplit

from middleware.adapters.fs_blobs import sign


def assert_problem(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    return resp.json()


def image_url(stack) -> str:
    job = stack.submit().json()
    done = stack.wait_terminal(job["id"])
    return done["result"]["images"][0]["url"]


def split(url: str):
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return parts.path, query


def test_signed_url_works_without_a_bearer_key(stack):
    url = image_url(stack)
    resp = stack.client.get(url)
    assert resp.status_code == 200 and resp.content.startswith(b"\x89PNG")


def test_tampered_signature_is_403(stack):
    path, query = split(image_url(stack))
    bad_sig = ("0" if query["sig"][0] != "0" else "1") + query["sig"][1:]
    for params in (
        {**query, "sig": bad_sig},
        {**query, "expires": str(int(query["expires"]) + 60)},
        {**query, "sig": "zz"},
    ):
        body = assert_problem(stack.client.get(path, params=params), 403)
        assert "expired" in body["detail"] or "invalid" in body["detail"]
    other = path.replace("/images/0.png", "/result.json")
    assert_problem(stack.client.get(other, params=query), 403)


def test_expired_signature_is_403(stack):
    path, _query = split(image_url(stack))
    key = path.removeprefix("/v1/blobs/")
    secret = bytes.fromhex((stack.data_dir / "blob-signing-key").read_text())
    expired = int(time.time()) - 5
    resp = stack.client.get(path, params={"expires": expired, "sig": sign(secret, key, expired)})
    assert_problem(resp, 403)
    # The same secret with a future expiry proves the 403 was about time, not the signature.
    future = int(time.time()) + 600
    assert (
        stack.client.get(path, params={"expires": future, "sig": sign(secret, key, future)}).status_code
        == 200
    )


def test_missing_blob_with_a_valid_signature_is_404_and_missing_params_400(stack):
    secret = bytes.fromhex((stack.data_dir / "blob-signing-key").read_text())
    future = int(time.time()) + 600
    key = "jobs/none/images/0.png"
    assert_problem(
        stack.client.get(f"/v1/blobs/{key}", params={"expires": future, "sig": sign(secret, key, future)}),
        404,
    )
    body = assert_problem(stack.client.get(f"/v1/blobs/{key}"), 400)
    assert {e["field"] for e in body["errors"]} == {"expires", "sig"}


def test_traversal_keys_are_refused(stack):
    secret = bytes.fromhex((stack.data_dir / "blob-signing-key").read_text())
    future = int(time.time()) + 600
    key = "../blob-signing-key"
    resp = stack.client.get(
        "/v1/blobs/..%2Fblob-signing-key", params={"expires": future, "sig": sign(secret, key, future)}
    )
    assert resp.status_code == 403
    assert secret.hex() not in resp.text
