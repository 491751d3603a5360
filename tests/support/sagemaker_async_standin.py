"""A stand-in of SageMaker's asynchronous inference runtime, for tests (moto's InvokeEndpointAsync
publishes nothing and ignores the endpoint's S3 paths, FACTS.md).

It serves boto3's ``POST /endpoints/{EndpointName}/async-invocations`` (point a client at it with
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` or the middleware's SDCLOUD_SAGEMAKER_RUNTIME_ENDPOINT_URL)
and answers as SageMaker does: 202, ``InferenceId`` in the body, ``X-Amzn-SageMaker-OutputLocation``
and ``-FailureLocation`` headers. Then, on one worker per endpoint (an instance runs one
invocation at a time), it does what SageMaker's sidecar does: reads the input from S3, POSTs it to
the real container's ``/invocations``, writes the answer to the output location (or, for an error
status, the failure location) and publishes the documented ``InferenceResult`` message to the
success or error SNS topic. S3 and SNS are moto's (``--aws-endpoint-url``).

``GET /_standin/invocations`` lists what it did (per inference id: status, the container's HTTP
status, when the notification was published), for tests and the benchmark to wait on.
``POST /_standin/hold`` keeps finished invocations from notifying (status "held") until
``POST /_standin/release``: a test can then look at a job whose container is done but whose
notification has not come, without racing it.

Run: python -m tests.support.sagemaker_async_standin --port P --endpoint NAME=http://container
     --output-path s3://bucket/async-outputs --failure-path s3://bucket/async-failures
     --success-topic ARN --error-topic ARN --aws-endpoint-url http://moto
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger("sagemaker-async-standin")

_PATH_PREFIX = "/endpoints/"
_PATH_SUFFIX = "/async-invocations"
# Any 12 digits: a real notification's reason names the account; ours must be stripped like it.
_ACCOUNT = "123456789012"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def split_s3(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3:// location: {uri!r}")
    return parts.netloc, unquote(parts.path.lstrip("/"))


def failure_reason(status: int, endpoint: str, region: str) -> str:
    """SageMaker's wording for a model error, boilerplate and account included."""
    kind = "server" if status >= 500 else "client"
    return (
        f"ClientError: Received {kind} error ({status}) from model. See "
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:group="
        f"/aws/sagemaker/Endpoints/{endpoint} in account {_ACCOUNT} for more information."
    )


def notification(
    invocation: Invocation, *, completed: bool, region: str, reason: str = ""
) -> dict[str, Any]:
    """The documented InferenceResult message (FACTS.md, AWS section)."""
    message: dict[str, Any] = {
        "awsRegion": region,
        "eventTime": _iso(time.time()),
        "receivedTime": _iso(invocation.received_at),
        "invocationStatus": "Completed" if completed else "Failed",
        "requestParameters": {
            "contentType": invocation.content_type,
            "endpointName": invocation.endpoint,
            "inputLocation": invocation.input_location,
        },
        "inferenceId": invocation.inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    if completed:
        message["responseParameters"] = {"contentType": "application/json", "outputLocation": invocation.output_location}
    else:
        message["failureReason"] = reason
    return message


@dataclass
class Invocation:
    endpoint: str
    inference_id: str
    input_location: str
    output_location: str
    failure_location: str
    content_type: str
    timeout_s: float
    received_at: float = field(default_factory=time.time)
    status: str = "queued"  # queued, running, held, Completed, Failed
    container_status: int | None = None
    published_at: float | None = None
    delivered: bool = False  # the publish call returned: moto's HTTP deliveries are done


class AsyncRuntimeStandIn:
    """The stand-in's state: endpoints, their queues and workers, and the AWS clients."""

    def __init__(
        self,
        endpoints: dict[str, str],
        *,
        output_path: str,
        failure_path: str,
        success_topic: str,
        error_topic: str,
        aws_endpoint_url: str,
        region: str = "us-east-1",
    ) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
        self.s3 = session.client(
            "s3", endpoint_url=aws_endpoint_url, config=Config(signature_version="s3v4", s3={"addressing_style": "path"})
        )
        self.sns = session.client("sns", endpoint_url=aws_endpoint_url)
        self.endpoints = dict(endpoints)
        self.output_path = output_path.rstrip("/")
        self.failure_path = failure_path.rstrip("/")
        self.success_topic = success_topic
        self.error_topic = error_topic
        self.region = region
        self.invocations: dict[str, Invocation] = {}
        self.released = threading.Event()
        self.released.set()
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue[Invocation | None]] = {}
        self._workers: list[threading.Thread] = []
        for name in self.endpoints:
            self._queues[name] = queue.Queue()
            worker = threading.Thread(target=self._work, args=(name,), name=f"standin-{name}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        for q in self._queues.values():
            q.put(None)

    # -- the API ---------------------------------------------------------------------------------

    def accept(self, endpoint: str, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """InvokeEndpointAsync: (status, JSON body, headers), as SageMaker answers."""
        if endpoint not in self.endpoints:
            return 400, _error("ValidationError", f"Endpoint {endpoint} of account {_ACCOUNT} not found."), {}
        input_location = headers.get("x-amzn-sagemaker-inputlocation", "")
        try:
            split_s3(input_location)
        except ValueError:
            return 400, _error("ValidationError", "InputLocation must be an s3:// URI"), {}
        inference_id = headers.get("x-amzn-sagemaker-inference-id") or str(uuid.uuid4())
        invocation = Invocation(
            endpoint=endpoint,
            inference_id=inference_id,
            input_location=input_location,
            output_location=f"{self.output_path}/{inference_id}.out",
            failure_location=f"{self.failure_path}/{inference_id}-error.out",
            content_type=headers.get("x-amzn-sagemaker-content-type", "application/json"),
            timeout_s=float(headers.get("x-amzn-sagemaker-invocationtimeoutseconds") or 900),
        )
        with self._lock:
            self.invocations[inference_id] = invocation
        self._queues[endpoint].put(invocation)
        return (
            202,
            {"InferenceId": inference_id},
            {
                "X-Amzn-SageMaker-OutputLocation": invocation.output_location,
                "X-Amzn-SageMaker-FailureLocation": invocation.failure_location,
            },
        )

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                i.inference_id: {
                    "status": i.status,
                    "container_status": i.container_status,
                    "received_at": i.received_at,
                    "published_at": i.published_at,
                    "delivered": i.delivered,
                }
                for i in self.invocations.values()
            }

    # -- the worker ------------------------------------------------------------------------------

    def _work(self, endpoint: str) -> None:
        while True:
            invocation = self._queues[endpoint].get()
            if invocation is None:
                return
            try:
                self._run(invocation)
            except Exception:  # noqa: BLE001 - one broken invocation must not stop the endpoint
                log.exception("invocation %s failed in the stand-in", invocation.inference_id)

    def _run(self, invocation: Invocation) -> None:
        invocation.status = "running"
        bucket, key = split_s3(invocation.input_location)
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        request = urllib.request.Request(
            f"{self.endpoints[invocation.endpoint].rstrip('/')}/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": invocation.content_type, "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=invocation.timeout_s) as response:  # noqa: S310 - loopback
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read()
        except OSError as exc:
            status, answer = 500, json.dumps({"detail": f"the model container did not answer: {exc}"}).encode()
        invocation.container_status = status
        completed = status == 200
        location = invocation.output_location if completed else invocation.failure_location
        out_bucket, out_key = split_s3(location)
        self.s3.put_object(Bucket=out_bucket, Key=out_key, Body=answer, ContentType="application/json")
        message = notification(
            invocation,
            completed=completed,
            region=self.region,
            reason="" if completed else failure_reason(status, invocation.endpoint, self.region),
        )
        if not self.released.is_set():
            invocation.status = "held"
            self.released.wait()
        invocation.status = "Completed" if completed else "Failed"
        invocation.published_at = time.time()
        # moto delivers to HTTP subscribers inside this call (FACTS.md), so it returns once the
        # subscriber has answered.
        self.sns.publish(TopicArn=self.success_topic if completed else self.error_topic, Message=json.dumps(message))
        invocation.delivered = True


def _error(code: str, message: str) -> dict[str, str]:
    return {"__type": code, "message": message}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug(format, *args)

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # inline bodies are not used by the middleware
        path = urlsplit(self.path).path
        if path in ("/_standin/hold", "/_standin/release"):
            released = self.server.standin.released
            if path.endswith("hold"):
                released.clear()
            else:
                released.set()
            self._send(200, {"held": not released.is_set()})
            return
        if not (path.startswith(_PATH_PREFIX) and path.endswith(_PATH_SUFFIX)):
            self._send(404, _error("UnknownOperationException", f"no operation at {path}"))
            return
        endpoint = unquote(path[len(_PATH_PREFIX) : -len(_PATH_SUFFIX)])
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.server.standin.accept(endpoint, headers)
        self._send(status, body, extra)

    def do_GET(self) -> None:  # noqa: N802
        if urlsplit(self.path).path == "/_standin/invocations":
            self._send(200, self.server.standin.describe())
        else:
            self._send(404, _error("UnknownOperationException", "not found"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: AsyncRuntimeStandIn) -> None:
        super().__init__(address, _Handler)
        self.standin = standin


def serve(standin: AsyncRuntimeStandIn, port: int, host: str = "127.0.0.1") -> _Server:
    """Serve on a daemon thread; ``shutdown()`` the returned server to stop."""
    server = _Server((host, port), standin)
    threading.Thread(target=server.serve_forever, name="sagemaker-standin", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint", action="append", required=True, help="NAME=http://container (repeatable)")
    parser.add_argument("--output-path", required=True)
    parser.add_argument("--failure-path", required=True)
    parser.add_argument("--success-topic", required=True)
    parser.add_argument("--error-topic", required=True)
    parser.add_argument("--aws-endpoint-url", required=True)
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    endpoints = dict(item.split("=", 1) for item in args.endpoint)
    standin = AsyncRuntimeStandIn(
        endpoints,
        output_path=args.output_path,
        failure_path=args.failure_path,
        success_topic=args.success_topic,
        error_topic=args.error_topic,
        aws_endpoint_url=args.aws_endpoint_url,
        region=args.region,
    )
    server = _Server((args.host, args.port), standin)
    print(f"sagemaker async stand-in listening on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
