"""Several configured containers: two real fake containers on 127.0.0.1 behind one middleware."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from middleware.bootstrap import LocalRuntime, build_local, provision_admin
from tests.api.conftest import CHECKPOINT, TERMINAL, make_settings
from tests.fakes.fake_container import FakeContainer


@dataclass
class TwoGpus:
    runtime: LocalRuntime
    client: httpx.Client
    headers: dict[str, str]
    gpu0: FakeContainer
    gpu1: FakeContainer

    def submit(self, **body: Any) -> httpx.Response:
        document = {"task": "txt2img", "payload": {"prompt": "a cat", "steps": 3}, "checkpoint": CHECKPOINT}
        return self.client.post("/v1/inferences", json={**document, **body}, headers=self.headers)

    def wait_terminal(self, job_id: str) -> dict[str, Any]:
        view = self.client.get(f"/v1/inferences/{job_id}", headers=self.headers).json()
        for _ in range(40):
            if view["status"] in TERMINAL:
                return view
            view = self.client.get(
                f"/v1/inferences/{job_id}",
                params={"wait": 10, "version": view["version"]},
                headers=self.headers,
            ).json()
        raise AssertionError(f"job {job_id} did not finish: {view}")


MANAGED_FIELDS = (
    "instance_type",
    "image",
    "min_instances",
    "max_instances",
    "current_instances",
    "desired_instances",
    "backlog",
    "failure_reason",
    "scaling",
)


def two_gpu_setting(gpu0: FakeContainer, gpu1: FakeContainer) -> str:
    return f"gpu0={gpu0.url},gpu1={gpu1.url}"


@pytest.fixture
def gpus() -> Iterator[tuple[FakeContainer, FakeContainer]]:
    gpu0, gpu1 = FakeContainer().start(), FakeContainer().start()
    try:
        yield gpu0, gpu1
    finally:
        gpu0.down()
        gpu1.down()


@pytest.fixture
def two(tmp_path, gpus) -> Iterator[TwoGpus]:
    gpu0, gpu1 = gpus
    runtime = build_local(make_settings(tmp_path, two_gpu_setting(gpu0, gpu1)))
    key_file = provision_admin(runtime)
    runtime.start()
    try:
        with TestClient(runtime.app) as client:
            headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
            yield TwoGpus(runtime, client, headers, gpu0, gpu1)
    finally:
        runtime.stop()


def test_jobs_run_on_the_endpoint_they_name(two):
    on_gpu1 = two.submit(endpoint="gpu1")
    on_gpu0 = two.submit(endpoint="gpu0")
    assert on_gpu1.status_code == 202 and on_gpu0.status_code == 202
    assert on_gpu1.json()["endpoint"] == "gpu1" and on_gpu0.json()["endpoint"] == "gpu0"
    done1 = two.wait_terminal(on_gpu1.json()["id"])
    done0 = two.wait_terminal(on_gpu0.json()["id"])
    assert done1["status"] == "succeeded" and done0["status"] == "succeeded", (done1, done0)
    assert done1["endpoint"] == "gpu1" and done0["endpoint"] == "gpu0"
    assert [d["id"] for d in two.gpu1.invocations] == [done1["id"]]
    assert [d["id"] for d in two.gpu0.invocations] == [done0["id"]]
    # The container receives the job document unchanged: the endpoint travels beside it.
    assert "endpoint" not in two.gpu1.invocations[0]


def test_no_endpoint_means_the_first_configured_one(two):
    resp = two.submit()
    assert resp.status_code == 202 and resp.json()["endpoint"] == "gpu0"
    done = two.wait_terminal(resp.json()["id"])
    assert done["status"] == "succeeded" and done["endpoint"] == "gpu0"
    assert [d["id"] for d in two.gpu0.invocations] == [done["id"]] and two.gpu1.invocations == []


def test_unknown_endpoint_is_400_naming_the_field_and_the_configured_names(two):
    resp = two.submit(endpoint="gpu9")
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    [error] = body["errors"]
    assert error["field"] == "endpoint"
    assert "'gpu9'" in error["message"] and "gpu0, gpu1" in error["message"]
    # Nothing was stored and nothing reached a container.
    assert two.client.get("/v1/inferences", headers=two.headers).json()["items"] == []
    assert two.gpu0.invocations == [] and two.gpu1.invocations == []


def test_endpoints_lists_both_with_their_state(two):
    listing = two.client.get("/v1/endpoints", headers=two.headers)
    assert listing.status_code == 200
    # The original four fields, unchanged; the fields of managed endpoints are null here.
    items = listing.json()["items"]
    assert all(set(item) == {"name", "kind", "status", "detail", *MANAGED_FIELDS} for item in items)
    assert all(item[field] is None for item in items for field in MANAGED_FIELDS)
    assert {"items": [{k: item[k] for k in ("name", "kind", "status", "detail")} for item in items]} == {
        "items": [
            {
                "name": "gpu0",
                "kind": "local",
                "status": "InService",
                "detail": f"inference container at {two.gpu0.url}",
            },
            {
                "name": "gpu1",
                "kind": "local",
                "status": "InService",
                "detail": f"inference container at {two.gpu1.url}",
            },
        ]
    }
    two.gpu1.down()
    gpu0, gpu1 = two.client.get("/v1/endpoints", headers=two.headers).json()["items"]
    assert (gpu0["name"], gpu0["status"]) == ("gpu0", "InService")
    assert (gpu1["name"], gpu1["status"]) == ("gpu1", "OutOfService")
    assert gpu1["detail"].startswith(f"inference container at {two.gpu1.url} is not reachable")
    # gpu0 still runs jobs while gpu1 is down.
    done = two.wait_terminal(two.submit(endpoint="gpu0").json()["id"])
    assert done["status"] == "succeeded"


def test_restart_resubmits_queued_jobs_to_their_own_endpoint(tmp_path, gpus):
    gpu0, gpu1 = gpus
    first = build_local(make_settings(tmp_path, two_gpu_setting(gpu0, gpu1)))
    headers = {"Authorization": f"Bearer {provision_admin(first).read_text().strip()}"}
    body = {"task": "txt2img", "payload": {"prompt": "a cat", "steps": 3}, "checkpoint": CHECKPOINT}
    # Workers never started: both jobs stay queued, as after a crash before a worker took them.
    try:
        with TestClient(first.app) as client:
            on_gpu1 = client.post("/v1/inferences", json={**body, "endpoint": "gpu1"}, headers=headers).json()
            on_gpu0 = client.post("/v1/inferences", json={**body, "endpoint": "gpu0"}, headers=headers).json()
    finally:
        first.stop()
    assert gpu0.invocations == [] and gpu1.invocations == []

    # Restarted with gpu0 renamed to "box": gpu1's job runs there again, gpu0's job cannot.
    second = build_local(make_settings(tmp_path, f"box={gpu0.url},gpu1={gpu1.url}"))
    second.start()
    try:
        assert second.recovery is not None and second.recovery.failed == [on_gpu0["id"]]
        with TestClient(second.app) as client:
            two = TwoGpus(second, client, headers, gpu0, gpu1)
            done = two.wait_terminal(on_gpu1["id"])
            orphan = two.wait_terminal(on_gpu0["id"])
    finally:
        second.stop()
    assert done["status"] == "succeeded" and done["endpoint"] == "gpu1"
    assert [d["id"] for d in gpu1.invocations] == [on_gpu1["id"]] and gpu0.invocations == []
    assert orphan["status"] == "failed" and orphan["error"]["code"] == "endpoint_not_configured"
    assert "endpoint 'gpu0' is no longer configured (configured: box, gpu1)" in orphan["error"]["message"]


# --- endpoint administration in local mode: reads work, changes are refused with the reason ------

SPEC = {"name": "gpu2", "instance_type": "ml.g5.xlarge", "kind": "async", "min_instances": 0, "max_instances": 2,
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sdcloud-engine:1.0"}


def artist_headers(runtime: LocalRuntime) -> dict[str, str]:
    runtime.users.create_user("ann", "artist")
    _info, key = runtime.users.create_key("ann")
    return {"Authorization": f"Bearer {key}"}


def test_describe_a_configured_endpoint_and_404_for_an_unknown_one(two):
    one = two.client.get("/v1/endpoints/gpu1", headers=two.headers)
    assert one.status_code == 200
    assert (one.json()["name"], one.json()["kind"], one.json()["status"]) == ("gpu1", "local", "InService")
    missing = two.client.get("/v1/endpoints/gpu9", headers=two.headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert "gpu9" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/endpoints", SPEC),
        ("POST", "/v1/endpoints/gpu1/scale", {"min_instances": 1, "max_instances": 2}),
        ("POST", "/v1/endpoints/gpu1/stop", None),
        ("DELETE", "/v1/endpoints/gpu1", None),
    ],
)
def test_local_mode_refuses_changes_with_the_setting_to_edit(two, method, path, body):
    resp = two.client.request(method, path, json=body, headers=two.headers)
    assert resp.status_code == 409, resp.text
    problem = resp.json()
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "endpoints_not_managed"
    assert "SDCLOUD_CONTAINER_URL (gpu0, gpu1)" in problem["detail"] and "restart" in problem["detail"]
    # Nothing changed.
    names = [e["name"] for e in two.client.get("/v1/endpoints", headers=two.headers).json()["items"]]
    assert names == ["gpu0", "gpu1"]


def test_local_refusal_comes_before_field_errors(two):
    resp = two.client.post("/v1/endpoints", json={**SPEC, "image": None}, headers=two.headers)
    assert resp.status_code == 409 and resp.json()["code"] == "endpoints_not_managed"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/endpoints", SPEC),
        ("POST", "/v1/endpoints/gpu1/scale", {"min_instances": 1, "max_instances": 2}),
        ("POST", "/v1/endpoints/gpu1/stop", None),
        ("DELETE", "/v1/endpoints/gpu1", None),
    ],
)
def test_changes_are_for_admins_only(two, method, path, body):
    artist = artist_headers(two.runtime)
    resp = two.client.request(method, path, json=body, headers=artist)
    assert resp.status_code == 403, resp.text
    assert resp.json()["code"] == "forbidden" and "only an admin" in resp.json()["detail"]
    anonymous = two.client.request(method, path, json=body)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    # Artists still read.
    assert two.client.get("/v1/endpoints", headers=artist).status_code == 200
    assert two.client.get("/v1/endpoints/gpu0", headers=artist).status_code == 200


def test_a_bad_create_body_names_the_field(two):
    resp = two.client.post("/v1/endpoints", json={**SPEC, "max_instances": 0, "colour": "red"}, headers=two.headers)
    assert resp.status_code == 400
    fields = {e["field"] for e in resp.json()["errors"]}
    assert fields == {"max_instances", "colour"}
