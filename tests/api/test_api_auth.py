import pytest

PROTECTED = [
    ("GET", "/v1/me"),
    ("GET", "/v1/inferences"),
    ("POST", "/v1/inferences"),
    ("GET", "/v1/inferences/abc"),
    ("DELETE", "/v1/inferences/abc"),
    ("GET", "/v1/endpoints"),
    ("GET", "/v1/models"),
]


def assert_problem(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def test_ping_needs_no_key(stack):
    resp = stack.client.get("/v1/ping")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "version": "0.1.0", "mode": "local"}


def test_me(stack):
    assert stack.client.get("/v1/me", headers=stack.auth()).json() == {"user": "admin", "role": "admin"}
    key = stack.add_user("ann")
    assert stack.client.get("/v1/me", headers=stack.auth(key)).json() == {"user": "ann", "role": "artist"}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_key_is_401(stack, method, path):
    body = assert_problem(stack.client.request(method, path, json={}), 401)
    assert "Authorization: Bearer" in body["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer sdc_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer nonsense",
        "Basic YWRtaW46eA==",
    ],
)
def test_invalid_key_is_401(stack, header):
    resp = stack.client.get("/v1/me", headers={"Authorization": header})
    assert_problem(resp, 401)
    assert resp.headers["www-authenticate"] == "Bearer"
    assert "sdc_" not in resp.text  # the key is never echoed back


def test_another_users_job_is_404_and_not_listed(stack):
    ann, bob = stack.add_user("ann"), stack.add_user("bob")
    job = stack.submit(key=ann).json()
    assert_problem(stack.get(job["id"], key=bob), 404)
    assert_problem(stack.client.delete(f"/v1/inferences/{job['id']}", headers=stack.auth(bob)), 404)
    assert stack.client.get("/v1/inferences", headers=stack.auth(bob)).json()["items"] == []
    assert stack.get(job["id"], key=ann).status_code == 200
    # The same answer as for a job that does not exist at all.
    assert_problem(stack.get("no-such-job", key=bob), 404)
