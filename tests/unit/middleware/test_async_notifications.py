"""SageMaker async notifications (recorded shapes in tests/events/) → the one completion path."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from middleware.domain.job import JobStatus
from middleware.services.async_completion import AsyncCompletion, invocation_key
from middleware.services.async_notifications import (
    NotificationError,
    S3Location,
    parse_message,
    parse_record,
    readable_reason,
)
from middleware.services.job_events import JobEventHandler

EVENTS = Path(__file__).resolve().parents[2] / "events"
BUCKET = "sdcloud-blobs-example"
SAMPLE_ID = "0190a3f2c4b5d6e7f8091a2b3c4d5e6f"
CKPT = "tiny-sd15.safetensors"


def sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def message_of(event: dict, n: int = 0) -> dict:
    return json.loads(event["Records"][n]["Sns"]["Message"])


def event_for(name: str, job_id: str, **changes: object) -> dict:
    """The recorded event, about ``job_id``, with ``changes`` made to its message."""
    event = copy.deepcopy(sample(name))
    for record in event["Records"]:
        message = json.loads(record["Sns"]["Message"])
        message["inferenceId"] = job_id
        message.update(changes)
        record["Sns"]["Message"] = json.dumps(message).replace(SAMPLE_ID, job_id)
    return event


def new_job(world) -> str:
    job, _ = world.inferences.submit(world.ann, "txt2img", {"prompt": "cat"}, CKPT, None, None)
    return job.id


def result_document(job_id: str, images: int = 1, interrupted: bool = False) -> bytes:
    return json.dumps(
        {
            "id": job_id,
            "output": {"images": [{"key": f"jobs/{job_id}/images/{n}.png"} for n in range(images)]},
            "parameters": {"prompt": "cat"},
            "info": json.dumps({"infotexts": [f"cat\nSeed: {n}" for n in range(images)]}),
            "interrupted": interrupted,
        }
    ).encode()


@pytest.fixture
def completion(world) -> AsyncCompletion:
    return AsyncCompletion(world.events, world.blobs, BUCKET)


# -- parsing ---------------------------------------------------------------------------------


def test_the_recorded_success_parses_to_its_output_location():
    event = sample("sns_lambda_async_success.json")
    result = parse_record(event["Records"][0])
    assert result.job_id == SAMPLE_ID and result.succeeded
    assert result.output_location == S3Location(BUCKET, f"async-outputs/{SAMPLE_ID}.out")
    assert result.message_id == event["Records"][0]["Sns"]["MessageId"]


def test_the_recorded_error_parses_with_its_reason_and_no_location():
    result = parse_record(sample("sns_lambda_async_error.json")["Records"][0])
    assert not result.succeeded and result.failure_location is None
    assert result.failure_reason.startswith("ClientError: Received server error (500) from model")


def test_failure_location_is_found_wherever_the_message_carries_it():
    nested = parse_record(sample("sns_lambda_async_error_failure_location.json")["Records"][0])
    assert nested.failure_location == S3Location(BUCKET, f"async-failures/{SAMPLE_ID}-error.out")
    top = message_of(sample("sns_lambda_async_error.json"))
    top["failureLocation"] = "s3://b-1/x/y-error.out"
    assert parse_message(top).failure_location == S3Location("b-1", "x/y-error.out")


def test_the_http_envelope_carries_the_same_message_under_other_spellings():
    http = sample("sns_http_async_success.json")
    assert "SigningCertURL" in http and "UnsubscribeURL" in http
    lambda_sns = sample("sns_lambda_async_success.json")["Records"][0]["Sns"]
    assert "SigningCertUrl" in lambda_sns and "UnsubscribeUrl" in lambda_sns
    assert parse_message(json.loads(http["Message"])) == parse_message(json.loads(lambda_sns["Message"]))


@pytest.mark.parametrize(
    ("record", "says"),
    [
        ({}, "no Sns object"),
        ({"Sns": {"Message": 3}}, "not a string"),
        ({"Sns": {"Message": "{not json"}}, "not JSON"),
        ({"Sns": {"Message": "[1]"}}, "not a JSON object"),
        ({"Sns": {"Message": json.dumps({"invocationStatus": "Completed"})}}, "inferenceId"),
        ({"Sns": {"Message": json.dumps({"inferenceId": "../../etc", "invocationStatus": "Completed"})}}, "inferenceId"),
        ({"Sns": {"Message": json.dumps({"inferenceId": "a1", "invocationStatus": "InProgress"})}}, "InProgress"),
    ],
)
def test_a_record_that_is_not_a_notification_says_why(record, says):
    with pytest.raises(NotificationError, match=says):
        parse_record(record)


def test_readable_reason_keeps_the_containers_words_and_drops_the_boilerplate():
    recorded = message_of(sample("sns_lambda_async_error_failure_location.json"))["failureReason"]
    reason = readable_reason(recorded)
    assert reason.code == "out_of_memory"
    assert reason.message == "the GPU ran out of memory for this job; lower width/height and retry"

    plain = readable_reason(message_of(sample("sns_lambda_async_error.json"))["failureReason"])
    assert plain.code == "container_error"
    assert plain.message == "Received server error (500) from model"

    unquoted = readable_reason(
        'ClientError: Received client error (400) from primary with message "steps must be at most 150". '
        "See https://example.invalid/logs in account 123456789012 for more information."
    )
    assert unquoted.code == "invalid_request" and unquoted.message == "steps must be at most 150"
    assert "123456789012" not in unquoted.message

    assert readable_reason("").code == "inference_failed"
    assert readable_reason("Request timed out after 3600 seconds").code == "inference_timeout"


# -- applying ---------------------------------------------------------------------------------


def test_success_ends_the_job_with_the_containers_own_result(world, completion):
    job_id = new_job(world)
    world.blobs.put_bytes(f"jobs/{job_id}/result.json", result_document(job_id, images=2))
    summary = completion.handle_sns_event(event_for("sns_lambda_async_success.json", job_id))
    assert summary == {"succeeded": 1, "failed": 0, "skipped": 0}
    job = world.store.get(job_id)
    assert job.status is JobStatus.SUCCEEDED and job.result_summary["count"] == 2


def test_success_without_result_json_uses_the_async_output_object(world, completion):
    job_id = new_job(world)
    world.blobs.put_bytes(f"async-outputs/{job_id}.out", result_document(job_id))
    completion.handle_sns_event(event_for("sns_lambda_async_success.json", job_id))
    assert world.store.get(job_id).status is JobStatus.SUCCEEDED
    # Copied where every later read looks for it.
    assert json.loads(world.blobs.get_bytes(f"jobs/{job_id}/result.json"))["id"] == job_id


def test_success_with_no_result_anywhere_fails_the_job_saying_where_it_looked(world, completion):
    job_id = new_job(world)
    completion.handle_sns_event(event_for("sns_lambda_async_success.json", job_id))
    job = world.store.get(job_id)
    assert job.status is JobStatus.FAILED and job.error.code == "result_missing"
    assert f"jobs/{job_id}/result.json" in job.error.message and ".out" in job.error.message


def test_an_output_location_in_another_bucket_is_never_read(world, completion):
    job_id = new_job(world)
    world.blobs.put_bytes(f"async-outputs/{job_id}.out", result_document(job_id))
    message = message_of(event_for("sns_lambda_async_success.json", job_id))
    event = event_for(
        "sns_lambda_async_success.json",
        job_id,
        responseParameters={**message["responseParameters"], "outputLocation": f"s3://elsewhere/async-outputs/{job_id}.out"},
    )
    completion.handle_sns_event(event)
    assert world.store.get(job_id).error.code == "result_missing"


def test_failure_uses_the_containers_answer_at_the_failure_location(world, completion):
    job_id = new_job(world)
    world.events.job_started(job_id)
    world.blobs.put_bytes(
        f"async-failures/{job_id}-error.out",
        json.dumps({"status": 400, "code": "unknown_model", "detail": "no checkpoint named x"}).encode(),
    )
    completion.handle_sns_event(event_for("sns_lambda_async_error_failure_location.json", job_id))
    job = world.store.get(job_id)
    assert job.status is JobStatus.FAILED
    assert (job.error.code, job.error.message) == ("unknown_model", "no checkpoint named x")


def test_failure_falls_back_to_the_failure_location_kept_at_invoke(world, completion):
    job_id = new_job(world)
    world.blobs.put_bytes(
        invocation_key(job_id),
        json.dumps(
            {
                "endpoint": "sdcloud-sd15",
                "inference_id": job_id,
                "output_location": f"s3://{BUCKET}/async-outputs/{job_id}.out",
                "failure_location": f"s3://{BUCKET}/async-failures/{job_id}-error.out",
                "invoked_at": 1,
            }
        ).encode(),
    )
    world.blobs.put_bytes(
        f"async-failures/{job_id}-error.out",
        json.dumps({"code": "invalid_request", "detail": "must be a multiple of 8", "field": "width"}).encode(),
    )
    completion.handle_sns_event(event_for("sns_lambda_async_error.json", job_id))
    error = world.store.get(job_id).error
    assert error.code == "invalid_request" and error.message == "must be a multiple of 8 (field width)"


def test_failure_with_nothing_stored_keeps_the_cleaned_reason(world, completion):
    job_id = new_job(world)
    world.blobs.put_bytes(invocation_key(job_id), b"not json")
    completion.handle_sns_event(event_for("sns_lambda_async_error.json", job_id))
    error = world.store.get(job_id).error
    assert (error.code, error.message) == ("container_error", "Received server error (500) from model")


def test_duplicates_and_reordering_never_move_a_finished_job(world, completion):
    job_id = new_job(world)
    world.blobs.put_bytes(f"jobs/{job_id}/result.json", result_document(job_id))
    success = event_for("sns_lambda_async_success.json", job_id)
    failure = event_for("sns_lambda_async_error.json", job_id)
    completion.handle_sns_event(success)
    done = world.store.get(job_id)
    completion.handle_sns_event(success)
    completion.handle_sns_event(failure)
    again = world.store.get(job_id)
    assert again.status is JobStatus.SUCCEEDED and again.version == done.version

    other = new_job(world)
    world.blobs.put_bytes(f"jobs/{other}/result.json", result_document(other))
    completion.handle_sns_event(event_for("sns_lambda_async_error.json", other))
    failed = world.store.get(other)
    completion.handle_sns_event(event_for("sns_lambda_async_success.json", other))
    assert world.store.get(other).status is JobStatus.FAILED
    assert world.store.get(other).version == failed.version


def test_a_cancelled_job_whose_container_stopped_early_ends_cancelled(world, completion):
    job_id = new_job(world)
    world.events.job_started(job_id)
    world.inferences.cancel(world.ann, job_id)
    world.blobs.put_bytes(f"jobs/{job_id}/result.json", result_document(job_id, interrupted=True))
    completion.handle_sns_event(event_for("sns_lambda_async_success.json", job_id))
    assert world.store.get(job_id).status is JobStatus.CANCELLED


def test_a_notification_about_an_unknown_job_changes_nothing(world, completion):
    summary = completion.handle_sns_event(event_for("sns_lambda_async_error.json", "f" * 32))
    assert summary["failed"] == 1 and world.store.get("f" * 32) is None


def test_a_malformed_record_is_skipped_and_the_others_applied(world, completion):
    good = new_job(world)
    event = event_for("sns_lambda_async_error.json", good)
    event["Records"].insert(0, {"EventSource": "aws:sns", "Sns": {"MessageId": "m-1", "Message": "{oops"}})
    summary = completion.handle_sns_event(event)
    assert summary == {"succeeded": 0, "failed": 1, "skipped": 1}
    assert world.store.get(good).status is JobStatus.FAILED
    assert completion.handle_sns_event({"detail-type": "Scheduled Event"})["skipped"] == 1


class FlakyJobStore:
    """The world's job store, with reads of some jobs failing as a network blip or throttling does."""

    def __init__(self, store) -> None:
        self._store = store
        self.unreachable: set[str] = set()

    def get(self, job_id):
        if job_id in self.unreachable:
            raise ConnectionError("the job table did not answer")
        return self._store.get(job_id)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_a_transient_store_error_raises_after_the_other_records_are_applied(world):
    flaky = FlakyJobStore(world.store)
    events = JobEventHandler(flaky, world.blobs, world.notifier)
    completion = AsyncCompletion(events, world.blobs, BUCKET)
    first, second = new_job(world), new_job(world)
    event = event_for("sns_lambda_async_error.json", first)
    event["Records"] += event_for("sns_lambda_async_error.json", second)["Records"]
    flaky.unreachable.add(first)
    with pytest.raises(ConnectionError):
        completion.handle_sns_event(event)
    assert world.store.get(first).status is JobStatus.QUEUED
    assert world.store.get(second).status is JobStatus.FAILED
    flaky.unreachable.clear()  # Lambda's retry, once the table answers again: the repeat is harmless
    assert completion.handle_sns_event(event)["failed"] == 2
    assert {world.store.get(j).status for j in (first, second)} == {JobStatus.FAILED}
