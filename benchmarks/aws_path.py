"""AWS mode's path on loopback (tests/support/aws_stack.py): moto_server for DynamoDB/S3/SNS, the
SageMaker async stand-in, the real container with the tiny model, the real Lambda handlers.

1. Lambda API cold start, in a fresh process each run: ``import middleware.entrypoints.lambda_api``
   (the modules, then building the runtime: settings, boto3 clients, the app, the admin check) and
   the first ``handler(event)`` for an API Gateway ``GET /v1/ping``, each split out. Target:
   import + first response <= 400 ms (median).
2. API latency on moto: ``GET /v1/inferences/{id}`` through the handler in this process (one
   DynamoDB read per request, plus the auth lookup), and the same through the API Gateway
   stand-in over HTTP, medians and p99.
3. Job completion -> client knows, through the SNS path: the stand-in publishes the SageMaker
   notification -> moto SNS -> HTTP subscriber -> ``lambda_sns.handler`` writes the record ->
   the client's long-poll (polling notifier in the API process) returns. Split at the record's
   terminal timestamp. No target in the design; reported as measured.

Run: .venv/bin/python benchmarks/aws_path.py [--cold-runs 5] [--requests 200] [--jobs 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import emit, median, note, percentile  # noqa: E402
from sdcloud.client import SDCloudClient  # noqa: E402
from tests.support import moto_server as moto  # noqa: E402
from tests.support.apigw_front import LambdaContext, proxy_event  # noqa: E402
from tests.support.aws_stack import CHECKPOINT_NAME, AwsStack  # noqa: E402
from tools.local_processes import backend_python, make_tiny_checkpoint  # noqa: E402

PAYLOAD = {"prompt": "a lighthouse", "steps": 2, "width": 64, "height": 64, "seed": 1}

# Runs in a fresh interpreter: what a Lambda cold start does after the runtime starts Python.
_COLD = """
import json, sys, time
t0 = time.perf_counter()
import mangum, middleware.bootstrap
tm = time.perf_counter()
from middleware.entrypoints.lambda_api import handler
t1 = time.perf_counter()
from tests.support.apigw_front import LambdaContext, proxy_event
event = proxy_event("GET", "/v1/ping", [("Host", "bench")], b"")
answer = handler(event, LambdaContext("sdcloud-api"))
t2 = time.perf_counter()
assert answer["statusCode"] == 200, answer
print(json.dumps({"import_ms": (t1 - t0) * 1000, "modules_ms": (tm - t0) * 1000, "build_ms": (t1 - tm) * 1000,
                  "first_call_ms": (t2 - t1) * 1000}))
"""


def cold_start(stack: AwsStack, runs: int) -> None:
    imports, modules, builds, firsts, totals = [], [], [], [], []
    env = {**os.environ, **stack.middleware_env()}
    for _ in range(runs):
        out = subprocess.run(  # noqa: S603 - our own interpreter and script
            [backend_python(), "-c", _COLD], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
            check=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        imports.append(figures["import_ms"])
        modules.append(figures["modules_ms"])
        builds.append(figures["build_ms"])
        firsts.append(figures["first_call_ms"])
        totals.append(figures["import_ms"] + figures["first_call_ms"])
    total = median(totals)
    emit("lambda_api_cold_start", unit="ms", runs=runs, import_p50=round(median(imports), 1),
         of_which_modules_p50=round(median(modules), 1), of_which_runtime_build_p50=round(median(builds), 1),
         first_call_p50=round(median(firsts), 1), total_p50=round(total, 1), total_max=round(max(totals), 1),
         target_total=400, met=total <= 400,
         what="fresh process: import lambda_api (modules, then the runtime: settings, boto3 clients, app, "
              "admin check) + first handler call for GET /v1/ping")


def api_latency(stack: AwsStack, client: SDCloudClient, api_key: str, requests_n: int) -> None:
    job = client.submit_inference("txt2img", PAYLOAD, CHECKPOINT_NAME)
    client.wait_for(job.id, timeout=300)
    os.environ.update(stack.middleware_env())
    from middleware.entrypoints.lambda_api import handler  # this process's own warm "instance"

    headers = [("Host", "bench"), ("Authorization", f"Bearer {api_key}")]
    in_process = []
    for n in range(requests_n + 5):
        started = time.perf_counter()
        answer = handler(proxy_event("GET", f"/v1/inferences/{job.id}", headers, b""), LambdaContext("bench"))
        elapsed = (time.perf_counter() - started) * 1000
        if answer["statusCode"] != 200:
            raise RuntimeError(f"GET through the handler answered {answer['statusCode']}: {answer['body'][:200]}")
        if n >= 5:  # the first requests warm connections
            in_process.append(elapsed)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    over_http = []
    for n in range(requests_n + 5):
        started = time.perf_counter()
        session.get(f"{stack.api_url}/v1/inferences/{job.id}", timeout=30).raise_for_status()
        if n >= 5:
            over_http.append((time.perf_counter() - started) * 1000)
    emit("api_get_inference", unit="ms", requests=requests_n, handler_p50=round(median(in_process), 2),
         handler_p99=round(percentile(in_process, 0.99), 2), http_front_p50=round(median(over_http), 2),
         http_front_p99=round(percentile(over_http, 0.99), 2),
         what="GET /v1/inferences/{id}: Mangum handler in-process, and via the API Gateway stand-in, on moto")


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def completion_to_client(stack: AwsStack, client: SDCloudClient, jobs: int) -> None:
    to_record, to_client, total = [], [], []
    for _ in range(jobs):
        job = client.submit_inference("txt2img", PAYLOAD, CHECKPOINT_NAME)
        done = client.wait_for(job.id, timeout=300)
        known = time.time()
        published = requests.get(f"{stack.url('standin')}/_standin/invocations", timeout=10).json()[job.id]
        published_at = published["published_at"]
        recorded = _timestamp(done.updated_at)
        to_record.append((recorded - published_at) * 1000)
        to_client.append((known - recorded) * 1000)
        total.append((known - published_at) * 1000)
    emit("completion_to_client_sns", unit="ms", jobs=jobs, publish_to_record_p50=round(median(to_record), 1),
         record_to_client_p50=round(median(to_client), 1), total_p50=round(median(total), 1),
         total_max=round(max(total), 1),
         what="stand-in publishes -> moto SNS -> lambda_sns.handler -> record -> client's long-poll returns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    reason = moto.unavailable_reason()
    if reason is not None:
        note(f"aws_path: skipped, {reason}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = make_tiny_checkpoint(folder / "models" / "tiny-sd15.safetensors")
        with moto.moto_server() as moto_url, AwsStack(moto_url, folder / "stack", checkpoint) as stack:
            api_key = stack.api_key
            client = SDCloudClient(stack.api_url, api_key, timeout=(5, 40))
            note("measuring the API function's cold start ...")
            cold_start(stack, args.cold_runs)
            note("measuring API latency on moto ...")
            api_latency(stack, client, api_key, args.requests)
            note("measuring completion -> client through SNS ...")
            completion_to_client(stack, client, args.jobs)


if __name__ == "__main__":
    main()
