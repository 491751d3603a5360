"""The Lambda-facing shapes: the scheduled sweep's summary, and the test stand-ins' conversions
(SNS → HTTP into SNS → Lambda, HTTP into API Gateway proxy events) checked against the recorded
samples in tests/events/, so the e2e test feeds the handlers what AWS would; and the real-time
function's entry point, built from the environment the stack gives it."""

from __future__ import annotations

import base64
import importlib
import json
import sys
from pathlib import Path

import pytest
from botocore.stub import ANY, Stubber

from middleware.domain.job import JobStatus, request_key
from middleware.services.async_notifications import parse_record
from middleware.services.job_events import JobEventHandler
from middleware.services.scheduled_sweep import sweep_summary
from middleware.services.sweeper import JobSweeper
from tests.support.apigw_front import proxy_event, response_parts
from tests.support.sns_http_bridge import lambda_event

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_the_scheduled_sweep_reports_what_it_ended(world):
    clock = [10_000_000_000]
    events = JobEventHandler(world.store, world.blobs, world.notifier, clock_us=lambda: clock[0])
    sweeper = JobSweeper(world.store, events, world.compute, silence_s=30, clock_us=lambda: clock[0])
    job, _ = world.inferences.submit(world.ann, "txt2img", {"prompt": "cat"}, "tiny-sd15.safetensors", None, None)
    events.job_started(job.id)
    assert sweep_summary(sweeper)["ended"] == 0
    clock[0] += 31_000_000
    summary = sweep_summary(sweeper)
    assert summary["ended"] == 1 and summary["job_ids"] == [job.id]
    assert world.store.get(job.id).status is JobStatus.FAILED
    json.dumps(summary)  # Lambda serialises what the handler returns


def test_the_recorded_schedule_event_is_eventbridges_scheduled_event():
    event = sample("schedule_sweeper.json")
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"


def test_an_http_delivery_becomes_the_lambda_record_sns_would_send():
    http = sample("sns_http_async_success.json")
    converted = lambda_event(http)["Records"][0]
    recorded = sample("sns_lambda_async_success.json")["Records"][0]
    assert converted["EventSource"] == recorded["EventSource"] == "aws:sns"
    for name in ("Type", "MessageId", "TopicArn", "Message", "Timestamp", "SigningCertUrl", "UnsubscribeUrl"):
        assert converted["Sns"][name] == recorded["Sns"][name], name
    assert "SigningCertURL" not in converted["Sns"]
    assert parse_record(converted) == parse_record(recorded)


def test_an_http_request_becomes_a_rest_api_proxy_event():
    event = proxy_event(
        "GET",
        "/v1/inferences/abc?wait=20&version=3&tag=a&tag=b",
        [("Host", "127.0.0.1:9"), ("Authorization", "Bearer k"), ("Connection", "keep-alive")],
        b"",
    )
    assert event["httpMethod"] == "GET" and event["path"] == "/v1/inferences/abc"
    assert event["queryStringParameters"] == {"wait": "20", "version": "3", "tag": "b"}
    assert event["multiValueQueryStringParameters"]["tag"] == ["a", "b"]
    assert event["headers"]["Authorization"] == "Bearer k" and "Connection" not in event["headers"]
    assert event["body"] is None and event["isBase64Encoded"] is False
    assert event["requestContext"]["stage"] == "prod" and event["pathParameters"] == {"proxy": "v1/inferences/abc"}

    posted = proxy_event("POST", "/v1/inferences", [("Content-Type", "application/json")], b'{"a": 1}')
    assert posted["body"] == '{"a": 1}' and posted["isBase64Encoded"] is False
    binary = proxy_event("PUT", "/x", [("Content-Type", "image/png")], b"\x89PNG\x00")
    assert binary["isBase64Encoded"] and base64.b64decode(binary["body"]) == b"\x89PNG\x00"


def test_a_proxy_answer_becomes_the_http_response():
    status, headers, body = response_parts(
        {"statusCode": 201, "headers": {"content-type": "application/json"},
         "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]}, "body": "{}", "isBase64Encoded": False}
    )
    assert status == 201 and body == b"{}"
    assert ("set-cookie", "a=1") in headers and ("set-cookie", "b=2") in headers
    assert ("content-type", "application/json") in headers
    assert response_parts({"statusCode": 200, "body": base64.b64encode(b"\x00").decode(), "isBase64Encoded": True})[2] == b"\x00"


# Nothing listens on this port: a call that escaped the Stubber fails instead of reaching AWS.
UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def stack_environment(monkeypatch):
    """What template.yaml gives a function (Globals plus its own variables), with no AWS behind it."""
    import middleware.bootstrap as bootstrap

    variables = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "SDCLOUD_MODE": "aws", "SDCLOUD_AWS_REGION": "us-east-1", "SDCLOUD_AWS_ENDPOINT_URL": UNREACHABLE,
        "SDCLOUD_JOBS_TABLE": "sdcloud-jobs", "SDCLOUD_USERS_TABLE": "sdcloud-users",
        "SDCLOUD_API_KEYS_TABLE": "sdcloud-api-keys", "SDCLOUD_BLOB_BUCKET": "sdcloud-blobs",
        "SDCLOUD_SAGEMAKER_ENDPOINTS": "fast=realtime:sdc-rt",
    }  # fmt: skip
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(bootstrap, "_AWS_RUNTIME", None)
    for entry in ("middleware.entrypoints.lambda_realtime", "middleware.entrypoints.lambda_library"):
        monkeypatch.delitem(sys.modules, entry, raising=False)
    yield bootstrap
    bootstrap._AWS_RUNTIME = None  # noqa: SLF001 - the next test builds its own
    for entry in ("middleware.entrypoints.lambda_realtime", "middleware.entrypoints.lambda_library"):
        sys.modules.pop(entry, None)


def test_the_realtime_entry_point_builds_at_import_and_ignores_a_stray_event(stack_environment):
    entry = importlib.import_module("middleware.entrypoints.lambda_realtime")  # the cold start
    answer = entry.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)
    assert answer["handled"] is False and "not an SD Cloud real-time job event" in answer["reason"]
    json.dumps(answer)


def test_the_library_entry_point_builds_at_import_and_ignores_a_stray_event(stack_environment, monkeypatch):
    monkeypatch.setenv("SDCLOUD_LIBRARY_FUNCTION_NAME", "sdcloud-library")
    entry = importlib.import_module("middleware.entrypoints.lambda_library")  # the cold start
    answer = entry.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)
    assert answer == {"handled": False}
    json.dumps(answer)


def test_an_api_given_the_realtime_function_hands_realtime_jobs_to_it(stack_environment, monkeypatch):
    monkeypatch.setenv("SDCLOUD_REALTIME_FUNCTION_NAME", "sdcloud-realtime")
    compute = stack_environment.aws_runtime(provision_admin=False).compute
    lam = compute._lambda  # noqa: SLF001 - the clients the settings wired in
    sagemaker = compute._sagemaker  # noqa: SLF001
    with Stubber(lam) as invoked, Stubber(sagemaker) as listed:
        # The directory lists the endpoints created through the API after those of the settings.
        listed.add_response("list_endpoint_configs", {"EndpointConfigs": []}, {})
        invoked.add_response(
            "invoke", {"StatusCode": 202},
            {"FunctionName": "sdcloud-realtime", "InvocationType": "Event", "Payload": ANY},
        )  # fmt: skip
        compute.submit("job-1", request_key("job-1"), endpoint="fast")
        compute.stop()
        invoked.assert_no_pending_responses()
