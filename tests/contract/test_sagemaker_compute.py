"""SageMakerCompute against a real moto_server (SageMaker control plane, sagemaker-runtime, S3),
with botocore's Stubber where moto accepts anything (the exact InvokeEndpointAsync parameters,
errors) or lacks the call's real behaviour (real-time invoke_endpoint answers, Lambda's invoke,
which moto runs only in Docker)."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from middleware.adapters.inprocess_notifier import InProcessNotifier
from middleware.adapters.sagemaker_compute import (
    REALTIME_EVENT,
    SageMakerCompute,
    SageMakerRefused,
    SageMakerTarget,
    StaticEndpointDirectory,
    invocation_key,
)
from middleware.domain import job as jobs
from middleware.domain.job import JobStatus
from middleware.services.job_events import JobEventHandler
from tests.contract.conftest import make_bucket
from tests.fakes.memory_ports import MemoryJobStore
from tests.support import moto_server as moto

INSTANCE = "ml.g4dn.xlarge"  # moto rejects ml.g5.*


@pytest.fixture(scope="module")
def sm_clients(moto_url):
    import boto3

    session = boto3.Session(**moto.CREDENTIALS)
    return {
        "sagemaker": session.client("sagemaker", endpoint_url=moto_url),
        "runtime": session.client("sagemaker-runtime", endpoint_url=moto_url),
    }


def _offline_client(service: str):
    """A client that never reaches a server: every call is answered by a Stubber."""
    import boto3

    return boto3.Session(**moto.CREDENTIALS).client(service, endpoint_url="http://127.0.0.1:9")


def count_calls(client, operation: str) -> list[int]:
    """A list that grows by one for every call of ``operation`` the client makes."""
    calls: list[int] = []
    service = client.meta.service_model.service_name
    client.meta.events.register(f"before-parameter-build.{service}.{operation}", lambda **_: calls.append(1))
    return calls


def create_endpoint(sagemaker, bucket: str, *, asynchronous: bool = True) -> str:
    name = f"sdc-{uuid.uuid4().hex[:10]}"
    sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sdcloud:latest"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sdcloud-sagemaker",
    )
    config = {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {"VariantName": "main", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": INSTANCE}
        ],
    }
    if asynchronous:
        config["AsyncInferenceConfig"] = {"OutputConfig": {"S3OutputPath": f"s3://{bucket}/async-out/"}}
    sagemaker.create_endpoint_config(**config)
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return name


@pytest.fixture
def env(aws_clients, sm_clients):
    from middleware.adapters.s3_blobs import S3BlobStore

    s3 = aws_clients["s3"]
    bucket = make_bucket(s3)
    blobs = S3BlobStore(s3, bucket)
    store = MemoryJobStore()
    events = JobEventHandler(store, blobs, InProcessNotifier())
    return {"bucket": bucket, "blobs": blobs, "store": store, "events": events, "s3": s3, **sm_clients}


def queued_job(store: MemoryJobStore, blobs, endpoint: str = "default") -> jobs.Job:
    job_id = uuid.uuid4().hex
    job = jobs.new_job(
        id=job_id, owner="alice", task="txt2img", payload={"prompt": "a lighthouse", "steps": 4},
        checkpoint="tiny.safetensors", checkpoint_sha256="0" * 64, endpoint=endpoint, now_us=1,
    )
    document = jobs.request_document(job_id, "txt2img", {"prompt": "a lighthouse"}, {})
    blobs.put_bytes(jobs.request_key(job_id), json.dumps(document).encode(), "application/json")
    store.create(job)
    return job


def compute_for(env, targets, *, runtime=None, sagemaker=None, **options) -> SageMakerCompute:
    return SageMakerCompute(
        runtime or env["runtime"],
        sagemaker or env["sagemaker"],
        env["blobs"],
        env["bucket"],
        StaticEndpointDirectory(targets),
        env["events"],
        **options,
    )


# -- async submit ----------------------------------------------------------------------------------


def test_submit_invokes_the_async_endpoint_and_keeps_the_invocation(env):
    endpoint = create_endpoint(env["sagemaker"], env["bucket"])
    compute = compute_for(env, [("default", SageMakerTarget(endpoint, "async"))], wall_clock=lambda: 1700000000.5)
    job = queued_job(env["store"], env["blobs"])

    compute.submit(job.id, jobs.request_key(job.id))

    record = json.loads(env["blobs"].get_bytes(invocation_key(job.id)))
    assert set(record) == {"endpoint", "inference_id", "output_location", "failure_location", "invoked_at"}
    assert record["endpoint"] == endpoint
    assert record["inference_id"] == job.id
    assert record["output_location"].startswith("s3://")  # moto's made-up location
    assert record["invoked_at"] == 1700000000
    assert env["store"].get(job.id).status is JobStatus.QUEUED  # SageMaker reports the rest


def test_submit_sends_exactly_the_documented_parameters(env):
    runtime = _offline_client("sagemaker-runtime")
    compute = compute_for(
        env, [("default", SageMakerTarget("sdc-prod", "async"))], runtime=runtime,
        invocation_timeout_s=900, request_ttl_s=600,
    )
    job = queued_job(env["store"], env["blobs"])
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint_async",
            {"InferenceId": job.id, "OutputLocation": "s3://out/x.out", "FailureLocation": "s3://out/x.err"},
            {
                "EndpointName": "sdc-prod",
                "InputLocation": f"s3://{env['bucket']}/jobs/{job.id}/request.json",
                "InferenceId": job.id,
                "ContentType": "application/json",
                "Accept": "application/json",
                "InvocationTimeoutSeconds": 900,
                "RequestTTLSeconds": 600,
            },
        )
        compute.submit(job.id, jobs.request_key(job.id), endpoint="default")
        stub.assert_no_pending_responses()
    record = json.loads(env["blobs"].get_bytes(invocation_key(job.id)))
    assert record["output_location"] == "s3://out/x.out"
    assert record["failure_location"] == "s3://out/x.err"


def test_submit_refuses_an_unconfigured_name_and_a_missing_endpoint(env):
    runtime = _offline_client("sagemaker-runtime")
    compute = compute_for(env, [("default", SageMakerTarget("sdc-gone", "async"))], runtime=runtime)
    job = queued_job(env["store"], env["blobs"])
    with pytest.raises(ValueError, match="'other' is not configured"):
        compute.submit(job.id, jobs.request_key(job.id), endpoint="other")
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint_async", "ValidationException", "Endpoint sdc-gone of account 1234 not found."
        )
        with pytest.raises(ValueError, match="'sdc-gone'.*does not exist"):
            compute.submit(job.id, jobs.request_key(job.id))
    with pytest.raises(ValueError, match="InferenceId"):
        compute.submit("x" * 65, jobs.request_key(job.id))


def test_throttling_and_access_errors_become_readable_refusals(env):
    runtime = _offline_client("sagemaker-runtime")
    compute = compute_for(env, [("default", SageMakerTarget("sdc-busy", "async"))], runtime=runtime)
    job = queued_job(env["store"], env["blobs"])
    with Stubber(runtime) as stub:
        stub.add_client_error("invoke_endpoint_async", "ThrottlingException", "Rate exceeded", 400)
        stub.add_client_error("invoke_endpoint_async", "AccessDeniedException", "not authorized", 403)
        with pytest.raises(SageMakerRefused, match="throttling InvokeEndpointAsync on 'sdc-busy'.*try again"):
            compute.submit(job.id, jobs.request_key(job.id))
        with pytest.raises(SageMakerRefused, match="role may not call InvokeEndpointAsync") as refused:
            compute.submit(job.id, jobs.request_key(job.id))
    assert "Traceback" not in str(refused.value)
    assert not env["blobs"].exists(invocation_key(job.id))


def test_limits_outside_sagemakers_ranges_are_refused(env):
    targets = [("default", SageMakerTarget("sdc-x", "async"))]
    with pytest.raises(ValueError, match="invocation timeout must be 1 to 3600"):
        compute_for(env, targets, invocation_timeout_s=3601)
    with pytest.raises(ValueError, match="request TTL must be 60 to 21600"):
        compute_for(env, targets, request_ttl_s=59)


# -- cancel and skip -------------------------------------------------------------------------------


def test_cancel_and_skip_write_the_markers_the_container_reads(env):
    compute = compute_for(env, [("default", SageMakerTarget("sdc-x", "async"))])
    job = queued_job(env["store"], env["blobs"])
    compute.cancel(job.id)
    compute.skip(job.id, 2)
    # Read back through S3 itself, where the container's JobMarkers looks.
    cancel = env["s3"].get_object(Bucket=env["bucket"], Key=f"jobs/{job.id}/cancel")
    skip = env["s3"].get_object(Bucket=env["bucket"], Key=f"jobs/{job.id}/skip")
    assert json.loads(cancel["Body"].read()) == {"action": "interrupt"}
    assert json.loads(skip["Body"].read()) == {"iteration": 2}
    with pytest.raises(ValueError, match="0 or more"):
        compute.skip(job.id, -1)


# -- endpoint states -------------------------------------------------------------------------------


def test_endpoints_report_sagemakers_states(env):
    live = create_endpoint(env["sagemaker"], env["bucket"])
    compute = compute_for(
        env,
        [("default", SageMakerTarget(live, "async")), ("gone", SageMakerTarget("sdc-never-made", "realtime"))],
    )
    states = {s.name: s for s in compute.endpoints()}
    assert states["default"].status == "InService"
    assert states["default"].kind == "async"
    assert live in states["default"].detail
    assert states["gone"].status == "OutOfService"
    assert "does not exist" in states["gone"].detail


def test_a_scaled_to_zero_endpoint_is_said_so_and_states_are_cached(env):
    sagemaker = _offline_client("sagemaker")
    now = [100.0]
    compute = compute_for(
        env, [("default", SageMakerTarget("sdc-idle", "async"))], sagemaker=sagemaker,
        status_cache_s=15, clock=lambda: now[0],
    )

    def described(count: int) -> dict:
        return {
            "EndpointName": "sdc-idle",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/sdc-idle",
            "EndpointConfigName": "sdc-idle",
            "EndpointStatus": "InService",
            "CreationTime": "2026-01-01T00:00:00Z",
            "LastModifiedTime": "2026-01-01T00:00:00Z",
            "ProductionVariants": [
                {"VariantName": "main", "CurrentInstanceCount": count, "DesiredInstanceCount": count}
            ],
        }

    calls = count_calls(sagemaker, "DescribeEndpoint")
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", described(0), {"EndpointName": "sdc-idle"})
        stub.add_response("describe_endpoint", described(1), {"EndpointName": "sdc-idle"})
        first = compute.endpoints()
        again = compute.endpoints()  # within the cache: SageMaker is not asked again
        assert len(calls) == 1
        now[0] += 16
        later = compute.endpoints()
        stub.assert_no_pending_responses()
    assert first[0].detail == "scaled to zero" and again == first
    assert later[0].detail == "SageMaker endpoint sdc-idle, 1 instance(s)"


# -- real-time -------------------------------------------------------------------------------------


def _body(document: dict) -> StreamingBody:
    raw = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def test_realtime_invocation_completes_through_the_job_events(env):
    runtime = _offline_client("sagemaker-runtime")
    compute = compute_for(env, [("fast", SageMakerTarget("sdc-rt", "realtime"))], runtime=runtime)
    job = queued_job(env["store"], env["blobs"], endpoint="fast")
    request = env["blobs"].get_bytes(jobs.request_key(job.id))
    answer = {
        "id": job.id,
        "output": {"images": [{"key": jobs.image_key(job.id, 0)}]},
        "parameters": {"steps": 4},
        "info": "{}",
        "interrupted": False,
    }
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": _body(answer), "ContentType": "application/json"},
            {
                "EndpointName": "sdc-rt",
                "Body": request,
                "ContentType": "application/json",
                "Accept": "application/json",
                "InferenceId": job.id,
            },
        )
        compute.submit(job.id, jobs.request_key(job.id), endpoint="fast")
        compute.stop()
        stub.assert_no_pending_responses()
    done = env["store"].get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result["images"] == [{"index": 0, "key": jobs.image_key(job.id, 0)}]
    stored = json.loads(env["blobs"].get_bytes(jobs.result_key(job.id)))
    assert stored["output"]["images"] == [{"key": jobs.image_key(job.id, 0)}]


def test_realtime_model_error_fails_the_job_with_the_containers_words(env):
    runtime = _offline_client("sagemaker-runtime")
    compute = compute_for(env, [("fast", SageMakerTarget("sdc-rt", "realtime"))], runtime=runtime)
    job = queued_job(env["store"], env["blobs"], endpoint="fast")
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            "ModelError",
            "Received client error (422) from primary",
            424,
            response_meta={},
        )
        compute.submit(job.id, jobs.request_key(job.id), endpoint="fast")
        compute.stop()
    failed = env["store"].get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error.code == "container_error"
    assert "Received client error (422)" in failed.error.message
    assert "Traceback" not in failed.error.message


def test_realtime_job_cancelled_before_it_ran_is_not_invoked(env):
    runtime = _offline_client("sagemaker-runtime")
    compute = compute_for(env, [("fast", SageMakerTarget("sdc-rt", "realtime"))], runtime=runtime)
    job = queued_job(env["store"], env["blobs"], endpoint="fast")
    env["events"].apply(job.id, jobs.cancelled)
    calls = count_calls(runtime, "InvokeEndpoint")
    with Stubber(runtime):
        compute.submit(job.id, jobs.request_key(job.id), endpoint="fast")
        compute.stop()
    assert calls == []
    assert env["store"].get(job.id).status is JobStatus.CANCELLED


# -- real-time in AWS Lambda: handed to the real-time function -------------------------------------

FUNCTION = "sdcloud-realtime"
FAST = [("fast", SageMakerTarget("sdc-rt", "realtime"))]


def capture_payloads(lambda_client) -> list[dict]:
    """The decoded Payload of every Invoke the client makes (the Stubber sees it as bytes)."""
    payloads: list[dict] = []

    def keep(params, **_):
        payloads.append(json.loads(params["Payload"]))

    lambda_client.meta.events.register("before-parameter-build.lambda.Invoke", keep)
    return payloads


def realtime_answer(job_id: str) -> dict:
    return {"id": job_id, "output": {"images": [{"key": jobs.image_key(job_id, 0)}]},
            "parameters": {"steps": 4}, "info": "{}", "interrupted": False}  # fmt: skip


def test_with_a_realtime_function_the_job_is_handed_to_it_and_runs_there_to_the_end(env):
    lam = _offline_client("lambda")
    api_runtime = _offline_client("sagemaker-runtime")
    api_side = compute_for(env, FAST, runtime=api_runtime, lambda_client=lam, realtime_function=FUNCTION)
    job = queued_job(env["store"], env["blobs"], endpoint="fast")
    payloads = capture_payloads(lam)
    not_on_the_api_side = count_calls(api_runtime, "InvokeEndpoint")
    with Stubber(lam) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 202},
            {"FunctionName": FUNCTION, "InvocationType": "Event", "Payload": ANY},
        )
        api_side.submit(job.id, jobs.request_key(job.id), endpoint="fast")
        api_side.stop()
        stub.assert_no_pending_responses()
    assert payloads == [
        {"sdcloud": REALTIME_EVENT, "job_id": job.id, "request_key": jobs.request_key(job.id), "endpoint": "fast"}
    ]
    assert not_on_the_api_side == []
    assert env["store"].get(job.id).status is JobStatus.QUEUED

    # The real-time function's cold start builds its own compute; the event is what Lambda delivers.
    runtime = _offline_client("sagemaker-runtime")
    function_side = compute_for(env, FAST, runtime=runtime)
    request = env["blobs"].get_bytes(jobs.request_key(job.id))
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": _body(realtime_answer(job.id)), "ContentType": "application/json"},
            {"EndpointName": "sdc-rt", "Body": request, "ContentType": "application/json",
             "Accept": "application/json", "InferenceId": job.id},  # fmt: skip
        )
        answer = function_side.lambda_realtime_handler(payloads[0], None)
        stub.assert_no_pending_responses()
    assert answer == {"handled": True, "job_id": job.id}
    json.dumps(answer)  # Lambda serialises what the handler returns
    done = env["store"].get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result["images"] == [{"index": 0, "key": jobs.image_key(job.id, 0)}]
    stored = json.loads(env["blobs"].get_bytes(jobs.result_key(job.id)))
    assert stored["id"] == job.id and stored["output"]["images"] == [{"key": jobs.image_key(job.id, 0)}]

    # Lambda delivers an Event at least once: a second delivery runs nothing again.
    again = count_calls(runtime, "InvokeEndpoint")
    with Stubber(runtime):
        assert function_side.lambda_realtime_handler(payloads[0], None)["handled"] is True
    assert again == [] and env["store"].get(job.id).status is JobStatus.SUCCEEDED


def test_a_refused_handover_is_a_readable_refusal(env):
    lam = _offline_client("lambda")
    compute = compute_for(env, FAST, runtime=_offline_client("sagemaker-runtime"), lambda_client=lam,
                          realtime_function=FUNCTION)  # fmt: skip
    job = queued_job(env["store"], env["blobs"], endpoint="fast")
    with Stubber(lam) as stub:
        stub.add_client_error("invoke", "AccessDeniedException", "not authorized to perform lambda:InvokeFunction", 403)
        stub.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
        stub.add_client_error("invoke", "ResourceNotFoundException", "Function not found: sdcloud-realtime", 404)
        stub.add_response("invoke", {"StatusCode": 200})
        with pytest.raises(SageMakerRefused, match="role may not call lambda:InvokeFunction") as refused:
            compute.submit(job.id, jobs.request_key(job.id), endpoint="fast")
        with pytest.raises(SageMakerRefused, match="throttling invocations.*try again"):
            compute.submit(job.id, jobs.request_key(job.id), endpoint="fast")
        with pytest.raises(SageMakerRefused, match=r"'sdcloud-realtime' \(ResourceNotFoundException\): Function not found"):
            compute.submit(job.id, jobs.request_key(job.id), endpoint="fast")
        with pytest.raises(SageMakerRefused, match="did not queue.*status 200"):
            compute.submit(job.id, jobs.request_key(job.id), endpoint="fast")
        stub.assert_no_pending_responses()
    assert "Traceback" not in str(refused.value)
    assert env["store"].get(job.id).status is JobStatus.QUEUED  # the service fails it as submit_failed


def test_a_realtime_function_needs_a_lambda_client(env):
    with pytest.raises(ValueError, match="Lambda client is needed"):
        compute_for(env, FAST, realtime_function=FUNCTION)


def _event(job: jobs.Job, **changes) -> dict:
    event = {"sdcloud": REALTIME_EVENT, "job_id": job.id, "request_key": jobs.request_key(job.id), "endpoint": "fast"}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


@pytest.mark.parametrize(
    ("make_event", "reason"),
    [
        (lambda job: None, "not an SD Cloud real-time job event"),
        (lambda job: [_event(job)], "not an SD Cloud real-time job event"),
        (lambda job: {"Records": [{"Sns": {}}]}, "not an SD Cloud real-time job event"),
        (lambda job: _event(job, sdcloud="async-job"), "not an SD Cloud real-time job event"),
        (lambda job: _event(job, job_id=7), "'job_id' must be a non-empty string"),
        (lambda job: {k: v for k, v in _event(job).items() if k != "request_key"}, "'request_key' must be"),
        (lambda job: _event(job, endpoint=""), "'endpoint' must be a non-empty string"),
        (lambda job: _event(job, endpoint="../x"), "'endpoint' is not an endpoint name"),
        (lambda job: _event(job, job_id="x" * 65), "InferenceId must be 1 to 64"),
        (lambda job: _event(job, request_key="models/" + "0" * 64), "not under its job's own prefix"),
    ],
)
def test_the_realtime_handler_ignores_a_malformed_event(env, make_event, reason):
    runtime = _offline_client("sagemaker-runtime")
    compute = compute_for(env, FAST, runtime=runtime)
    job = queued_job(env["store"], env["blobs"], endpoint="fast")
    calls = count_calls(runtime, "InvokeEndpoint")
    with Stubber(runtime):
        answer = compute.lambda_realtime_handler(make_event(job), None)
    assert answer["handled"] is False and reason in answer["reason"]
    json.dumps(answer)
    assert calls == []
    assert env["store"].get(job.id).status is JobStatus.QUEUED


def test_the_realtime_handler_fails_a_job_whose_endpoint_is_gone(env):
    runtime = _offline_client("sagemaker-runtime")
    # Since the submit, "fast" was removed and "slow" became an async endpoint.
    compute = compute_for(env, [("slow", SageMakerTarget("sdc-async", "async"))], runtime=runtime)
    gone = queued_job(env["store"], env["blobs"], endpoint="fast")
    now_async = queued_job(env["store"], env["blobs"], endpoint="slow")
    calls = count_calls(runtime, "InvokeEndpoint")
    with Stubber(runtime):
        assert compute.lambda_realtime_handler(_event(gone), None) == {"handled": True, "job_id": gone.id}
        compute.lambda_realtime_handler(_event(now_async, endpoint="slow"), None)
    assert calls == []
    for job, words in ((gone, "is no longer configured"), (now_async, "is no longer a real-time endpoint")):
        failed = env["store"].get(job.id)
        assert failed.status is JobStatus.FAILED
        assert failed.error.code == "endpoint_not_configured" and words in failed.error.message
