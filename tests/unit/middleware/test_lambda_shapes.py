"""The Lambda-facing shapes: the scheduled sweep's summary, and the test stand-ins' conversions
(SNS → HTTP into SNS → Lambda, HTTP into API Gateway proxy events) checked against the recorded
samples in tests/events/, so the e2e test feeds the handlers what AWS would."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from middleware.domain.job import JobStatus
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
