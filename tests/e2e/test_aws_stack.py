"""AWS mode end to end, on loopback: the Python client → API Gateway stand-in → the real
``lambda_api.handler`` (Mangum) → DynamoDB/S3 in a real moto_server → SageMaker async stand-in →
the real inference container (tiny model, read by s3:// URI, outputs to the bucket) → SNS in moto
→ HTTP subscriber → the real ``lambda_sns.handler`` → the job record → the client's long-poll.

See tests/support/aws_stack.py for what runs where.
"""

from __future__ import annotations

import io
import json
import subprocess
import time

import pytest
import requests
from PIL import Image

from sdcloud.client import SDCloudClient
from sdcloud.errors import JobCancelled, JobFailed
from tests.support import moto_server as moto
from tests.support.aws_stack import CHECKPOINT_NAME, CORRUPT_NAME, AwsStack
from tools.local_processes import REPO, backend_python

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAYLOAD = {"prompt": "a red fox in snow", "steps": 12, "width": 64, "height": 64, "seed": 7,
           "sampler_name": "DPM++ 2M", "scheduler": "karras"}
# Long enough on the CPU that a cancel always lands while it samples.
LONG = {"prompt": "a red fox in snow", "steps": 150, "n_iter": 32, "width": 64, "height": 64, "seed": 3}


@pytest.fixture(scope="module")
def moto_url():
    yield from moto.serve_or_skip("AWS mode")


@pytest.fixture(scope="module")
def stack(moto_url, tiny_checkpoint, tmp_path_factory):
    aws = AwsStack(moto_url, tmp_path_factory.mktemp("aws-stack"), tiny_checkpoint)
    with aws:
        yield aws


@pytest.fixture(scope="module")
def client(stack):
    with SDCloudClient(stack.api_url, stack.api_key, timeout=(5, 40)) as sd:
        yield sd


def deliveries(stack) -> dict:
    return requests.get(f"{stack.url('bridge')}/_bridge/deliveries", timeout=10).json()


def standin(stack) -> dict:
    return requests.get(f"{stack.url('standin')}/_standin/invocations", timeout=10).json()


def wait_for_standin(stack, job_id: str, status: str, limit_s: float = 300) -> None:
    """Until the stand-in's invocation of ``job_id`` has ``status`` ("delivered": its SNS publish,
    and so moto's delivery to the subscriber, has returned)."""
    deadline = time.monotonic() + limit_s

    def reached(invocation: dict) -> bool:
        return bool(invocation.get("delivered")) if status == "delivered" else invocation.get("status") == status

    while not reached(standin(stack).get(job_id, {})):
        if time.monotonic() > deadline:
            raise AssertionError(f"the stand-in never reached {status!r} for {job_id}:\n{stack.logs()}")
        time.sleep(0.1)


def test_a_job_succeeds_through_sagemaker_async_and_sns(stack, client):
    assert client.ping().mode == "aws"
    # The notification waits until the test has looked at the job: no race with it.
    requests.post(f"{stack.url('standin')}/_standin/hold", timeout=10).raise_for_status()
    try:
        job = client.submit_inference("txt2img", PAYLOAD, CHECKPOINT_NAME)
        wait_for_standin(stack, job.id, "held")
        # The container is done, SageMaker has not told us: what the client sees came from the
        # progress.json the container wrote to the bucket, relayed to the record.
        running = client.get_inference(job.id)
        assert running.status == "running" and running.progress.steps == PAYLOAD["steps"], running
    finally:
        requests.post(f"{stack.url('standin')}/_standin/release", timeout=10).raise_for_status()
    done = client.wait_for(job.id, timeout=300)

    assert done.status == "succeeded" and len(done.result.images) == 1
    png = client.fetch_image_bytes(done.result.images[0])
    image = Image.open(io.BytesIO(png))
    assert image.size == (64, 64)
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in image.info["parameters"]
    assert image.info["parameters"] == done.result.infotexts[0]
    # A presigned S3 URL (moto's), not a route of the API.
    assert "X-Amz-Signature=" in done.result.images[0].url and stack.bucket in done.result.images[0].url

    # It came through SageMaker async and the SNS handler, with the invoke's answer kept.
    invocation = json.loads(stack.client("s3").get_object(
        Bucket=stack.bucket, Key=f"jobs/{job.id}/invocation.json")["Body"].read())
    assert invocation["inference_id"] == job.id
    assert invocation["output_location"] == f"{stack.output_path}/{job.id}.out"
    assert deliveries(stack)["errors"] == []


def test_a_repeated_or_late_notification_leaves_the_finished_job_alone(stack, client):
    job = client.submit_inference("txt2img", {**PAYLOAD, "steps": 2}, CHECKPOINT_NAME)
    done = client.wait_for(job.id, timeout=300)
    wait_for_standin(stack, job.id, "delivered")
    handled = deliveries(stack)["counts"].get("handled", 0)
    sns = stack.client("sns")
    base = {"awsRegion": moto.REGION, "eventTime": "2026-12-02T05:40:12.345Z", "inferenceId": job.id,
            "eventVersion": "1.0", "eventSource": "aws:sagemaker", "eventName": "InferenceResult",
            "requestParameters": {"contentType": "application/json", "endpointName": "x",
                                  "inputLocation": f"s3://{stack.bucket}/jobs/{job.id}/request.json"}}
    again = {**base, "invocationStatus": "Completed",
             "responseParameters": {"contentType": "application/json",
                                    "outputLocation": f"{stack.output_path}/{job.id}.out"}}
    late = {**base, "invocationStatus": "Failed", "failureReason": "ClientError: Received server error (500) from model."}
    for message in (again, late, {"not": "a notification"}):
        sns.publish(TopicArn=stack.topics["error"], Message=json.dumps(message))
    # moto delivers inside publish: each came back answered.
    counts = deliveries(stack)["counts"]
    assert counts.get("handled", 0) == handled + 3 and not counts.get("failed")
    after = client.get_inference(job.id)
    assert after.status == "succeeded" and after.version == done.version


def test_a_container_failure_ends_the_job_failed_with_the_containers_reason(stack, client):
    job = client.submit_inference("txt2img", {**PAYLOAD, "steps": 2}, CORRUPT_NAME)
    with pytest.raises(JobFailed) as failed:
        client.wait_for(job.id, timeout=300)
    error = failed.value.job.error
    assert error is not None and error.message
    # The container's own words (read from the failure location), not SageMaker's boilerplate.
    assert "sha256" in error.message.lower() or "hash" in error.message.lower(), error
    assert "ClientError" not in error.message and "123456789012" not in error.message
    invoked = standin(stack)[job.id]
    assert invoked["status"] == "Failed" and invoked["container_status"] >= 400


def test_cancel_reaches_the_container_and_keeps_the_images_sampled_so_far(stack, client):
    job = client.submit_inference("txt2img", LONG, CHECKPOINT_NAME)
    for view in client.watch_inference(job.id, timeout=300, first=job):
        if view.progress.phase == "sampling":
            break
    asked = client.cancel_inference(job.id)
    assert asked.status == "running" and asked.progress.phase == "cancelling"
    with pytest.raises(JobCancelled) as cancelled:
        client.wait_for(job.id, timeout=300)
    ended = cancelled.value.job
    assert ended.error is None and 1 <= len(ended.result.images) < LONG["n_iter"]
    png = client.fetch_image_bytes(ended.result.images[0])
    assert Image.open(io.BytesIO(png)).info["parameters"] == ended.result.infotexts[0]


def test_the_scheduled_sweeper_runs_against_the_stack(stack):
    """The sweeper Lambda's entry point, in a fresh process with the functions' settings, given
    the recorded schedule event: every job here has ended, so it ends none."""
    code = ("import json, sys; from middleware.entrypoints.lambda_sweeper import handler; "
            "print(json.dumps(handler(json.load(open(sys.argv[1])), None)))")
    out = subprocess.run(  # noqa: S603 - our own interpreter and module
        [backend_python(), "-c", code, str(REPO / "tests" / "events" / "schedule_sweeper.json")],
        cwd=REPO, env={**stack.middleware_env(), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["ended"] == 0 and summary["job_ids"] == []
