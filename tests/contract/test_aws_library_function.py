"""The library function in AWS mode, on a real moto_server: the API function queues imports by
URL and upload checks to it (Lambda Event invocations, stubbed: moto would need Docker to run
a function), and that function's own cold start runs each from its event, streaming into S3,
reading uploads back and recording models in DynamoDB, as it would in Lambda."""

from __future__ import annotations

import json
from unittest.mock import ANY

import pytest
from botocore.stub import Stubber
from fastapi.testclient import TestClient

from middleware.adapters.lambda_library_worker import library_event_handler
from tests.contract.model_files import safetensors_bytes, sha256
from tests.contract.test_aws_runtime import aws  # noqa: F401 - the moto-backed settings fixture
from tests.support.file_server import serving

FUNCTION = "sdc-library"


def _runtime(aws_env, **changes):
    from middleware.bootstrap import build_aws

    settings = aws_env["settings"].model_copy(update=changes)
    return build_aws(settings, aws_env["session"], provision=False)


def _lambda_of(runtime):
    """The Lambda client the settings wired into the API's library worker."""
    return runtime.services.library._launcher.__self__._lambda  # noqa: SLF001


def _artist(runtime):
    runtime.storage.users.create_user("ann", "artist")
    _, key = runtime.storage.users.create_key("ann")
    return {"Authorization": f"Bearer {key}"}


def _queued_events(lambda_client):
    """What the API function hands to Lambda: the stubbed invoke's payloads, decoded."""
    payloads = []
    lambda_client.meta.events.register(
        "before-parameter-build.lambda.Invoke", lambda params, **_: payloads.append(json.loads(params["Payload"]))
    )
    return payloads


@pytest.fixture
def lora():
    raw = bytes(i % 251 for i in range(40_000))
    return safetensors_bytes({"lora_up.weight": ("F32", [len(raw) // 4], raw)})


def test_an_import_is_queued_to_the_import_function_and_runs_there_into_s3_and_dynamodb(aws, lora):  # noqa: F811
    api = _runtime(aws, library_function_name=FUNCTION, import_allow_private_hosts=True)
    lam = _lambda_of(api)
    auth = _artist(api)
    events = _queued_events(lam)
    with serving({"/style.safetensors": lora}) as base, TestClient(api.app) as client:
        body = {"url": f"{base}/style.safetensors?token=hf_secret", "name": "style.safetensors", "type": "lora",
                "sha256": sha256(lora)}  # fmt: skip
        with Stubber(lam) as stub:
            stub.add_response("invoke", {"StatusCode": 202},
                              {"FunctionName": FUNCTION, "InvocationType": "Event", "Payload": ANY})  # fmt: skip
            started = client.post("/v1/models/imports", json=body, headers=auth)
            stub.assert_no_pending_responses()
        assert started.status_code == 202, started.text
        import_id = started.json()["import_id"]
        # the token travels in the event only: the record shows the URL without its query
        assert events == [{"sdcloud": "sdcloud-import", "import_id": import_id, "url": body["url"]}]
        waiting = client.get(f"/v1/models/imports/{import_id}", headers=auth).json()
        assert waiting["status"] == "importing" and "hf_secret" not in json.dumps(waiting)

        # The import function's cold start: its own runtime, the event Lambda delivers.
        function = _runtime(aws, library_function_name=FUNCTION, import_allow_private_hosts=True)
        handler = library_event_handler(function.services.library)
        assert handler(events[0], None) == {"handled": True, "import_id": import_id}

        done = client.get(f"/v1/models/imports/{import_id}", headers=auth).json()
        assert done["status"] == "complete", done
        assert done["model"]["sha256"] == sha256(lora) and done["model"]["owner"] == "ann"
        stored = aws["s3"].get_object(Bucket=aws["bucket"], Key=f"models/{sha256(lora)}")["Body"].read()
        assert stored == lora
        assert aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix="imports/").get("KeyCount") == 0
        listed = client.get("/v1/models?type=lora", headers=auth).json()
        assert "style.safetensors" in json.dumps(listed)

        # Lambda delivers an Event at least once: a second delivery changes nothing.
        assert handler(events[0], None)["handled"] is True
        assert client.get(f"/v1/models/imports/{import_id}", headers=auth).json() == done


def test_a_bad_download_ends_the_import_failed_and_leaves_nothing_in_s3(aws):  # noqa: F811
    api = _runtime(aws, library_function_name=FUNCTION, import_allow_private_hosts=True)
    lam = _lambda_of(api)
    auth = _artist(api)
    events = _queued_events(lam)
    with serving({"/bad.safetensors": b"\x01" * 64}) as base, TestClient(api.app) as client:
        with Stubber(lam) as stub:
            stub.add_response("invoke", {"StatusCode": 202}, {"FunctionName": FUNCTION, "InvocationType": "Event",
                                                              "Payload": ANY})  # fmt: skip
            started = client.post("/v1/models/imports", headers=auth,
                                  json={"url": f"{base}/bad.safetensors", "name": "b.safetensors", "type": "lora"})
        handler = library_event_handler(_runtime(aws, library_function_name=FUNCTION,
                                                 import_allow_private_hosts=True).services.library)
        assert handler(events[0], None)["handled"] is True
        view = client.get(f"/v1/models/imports/{started.json()['import_id']}", headers=auth).json()
    assert view["status"] == "failed" and "safetensors" in view["error"]
    assert aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix="imports/").get("KeyCount") == 0


def test_lambda_refusing_the_invocation_ends_the_import_with_the_reason(aws):  # noqa: F811
    api = _runtime(aws, library_function_name=FUNCTION)
    lam = _lambda_of(api)
    auth = _artist(api)
    with TestClient(api.app) as client, Stubber(lam) as stub:
        stub.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
        started = client.post("/v1/models/imports", headers=auth, json={
            "url": "https://huggingface.co/a/b/resolve/main/style.safetensors?download=1&token=t0ken",
            "name": "s.safetensors", "type": "lora"})  # fmt: skip
    assert started.status_code == 202, started.text
    answer = started.json()
    assert answer["status"] == "failed"
    assert FUNCTION in answer["error"] and "TooManyRequestsException" in answer["error"]
    assert "t0ken" not in answer["error"]


def test_without_an_import_function_aws_mode_points_at_the_uploader(aws):  # noqa: F811
    api = _runtime(aws)
    auth = _artist(api)
    with TestClient(api.app) as client:
        refused = client.post("/v1/models/imports", headers=auth, json={
            "url": "https://huggingface.co/a/b/resolve/main/x.safetensors", "name": "x.safetensors", "type": "lora"})
    assert refused.status_code == 404
    assert "sdcloud.models upload" in refused.json()["detail"]


def test_a_stray_event_is_answered_not_raised():
    class Library:
        ran: list[str] = []

        def run_import(self, import_id, url):
            self.ran.append(import_id)

        def run_verification(self, upload_id):
            self.ran.append(upload_id)

    handler = library_event_handler(Library())
    assert handler({"source": "aws.events"}, None) == {"handled": False}
    assert handler({"sdcloud": "sdcloud-verify-upload"}, None) == {"handled": False}
    assert handler("nonsense", None) == {"handled": False}
    assert Library.ran == []


def test_an_upload_is_checked_in_the_library_function_and_the_client_follows_it(aws):  # noqa: F811
    """Parts go to S3 by presigned URL; completing answers 202 verifying and queues the check;
    the function's run reads the object back and records the model; the upload then reads
    complete, which is what SDCloudClient.complete_upload waits for."""
    import requests

    from middleware.adapters.s3_blobs import MIN_PART_BYTES

    api = _runtime(aws, library_function_name=FUNCTION)
    lam = _lambda_of(api)
    auth = _artist(api)
    events = _queued_events(lam)
    raw = bytes(i % 253 for i in range(MIN_PART_BYTES + 1000))
    data = safetensors_bytes({"w": ("U8", [len(raw)], raw)})
    with TestClient(api.app) as client:
        declared = client.post("/v1/models/uploads", headers={**auth, "Idempotency-Key": "u1"}, json={
            "name": "big.safetensors", "type": "checkpoint", "size": len(data), "sha256": sha256(data)})  # fmt: skip
        assert declared.status_code == 201, declared.text
        plan = declared.json()
        parts = []
        for part in plan["parts"]:
            start = (part["number"] - 1) * plan["part_size"]
            put = requests.put(part["url"], data=data[start : start + part["size"]], timeout=30)
            assert put.status_code == 200, put.text
            parts.append({"number": part["number"], "etag": put.headers["ETag"]})
        with Stubber(lam) as stub:
            stub.add_response("invoke", {"StatusCode": 202},
                              {"FunctionName": FUNCTION, "InvocationType": "Event", "Payload": ANY})  # fmt: skip
            completed = client.post(f"/v1/models/uploads/{plan['upload_id']}/complete", headers=auth,
                                    json={"parts": parts})  # fmt: skip
        assert completed.status_code == 202 and completed.json()["status"] == "verifying", completed.text
        assert events == [{"sdcloud": "sdcloud-verify-upload", "upload_id": plan["upload_id"]}]

        handler = library_event_handler(_runtime(aws, library_function_name=FUNCTION).services.library)
        assert handler(events[0], None) == {"handled": True, "upload_id": plan["upload_id"]}
        done = client.get(f"/v1/models/uploads/{plan['upload_id']}", headers=auth).json()
    assert done["status"] == "complete" and done["model"]["sha256"] == sha256(data)
    assert aws["s3"].get_object(Bucket=aws["bucket"], Key=f"models/{sha256(data)}")["Body"].read() == data
