"""A stand-in of API Gateway (REST API, Lambda proxy integration) in front of the real API handler.

Each plain HTTP request becomes the proxy event API Gateway sends a Lambda (version 1.0:
``httpMethod``, ``path``, ``headers`` and ``multiValueHeaders``, query parameters both ways,
``requestContext``, the body as text or base64) and goes to the real
``middleware.entrypoints.lambda_api.handler``; its answer (``statusCode``, headers, body) becomes
the HTTP response. So the Python client talks to the Mangum handler over a real socket.

One process is one warm Lambda instance; requests run on threads (as concurrent instances would),
each with its own event loop, since Mangum runs the app on the thread's loop.

Run: python -m tests.support.apigw_front --port P   (the middleware's SDCLOUD_* settings in the
environment, as the function's configuration would be)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("apigw-front")

STAGE = "prod"
_TEXT_TYPES = ("application/json", "application/problem+json", "text/", "application/x-www-form-urlencoded")
# Hop-by-hop headers API Gateway does not pass on.
_DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers (and Mangum) read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_s: float = 29.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


def proxy_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """The REST API (v1) proxy event for one request (``target`` is the path plus query)."""
    parts = urlsplit(target)
    path = parts.path or "/"
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        if name.lower() in _DROPPED:
            continue
        single[name] = value
        multi.setdefault(name, []).append(value)
    query = parse_qsl(parts.query, keep_blank_values=True)
    q_single: dict[str, str] = {}
    q_multi: dict[str, list[str]] = {}
    for name, value in query:
        q_single[name] = value
        q_multi.setdefault(name, []).append(value)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    text = bool(body) and content_type.startswith(_TEXT_TYPES)
    if text:
        try:
            encoded: str | None = body.decode("utf-8")
            is_b64 = False
        except UnicodeDecodeError:
            text = False
    if not text:
        encoded = base64.b64encode(body).decode() if body else None
        is_b64 = bool(body)
    now = time.time()
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": q_single or None,
        "multiValueQueryStringParameters": q_multi or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{STAGE}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": "local",
            "requestTimeEpoch": int(now * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": source_ip, "userAgent": single.get("User-Agent")},
            "domainName": single.get("Host", "localhost"),
            "apiId": "local",
        },
        "body": encoded,
        "isBase64Encoded": is_b64,
    }


def response_parts(answer: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy answer → (status, headers, body bytes)."""
    headers: list[tuple[str, str]] = []
    multi = answer.get("multiValueHeaders") or {}
    for name, values in multi.items():
        headers += [(name, str(v)) for v in values]
    for name, value in (answer.get("headers") or {}).items():
        if name not in multi:
            headers.append((name, str(value)))
    body = answer.get("body") or ""
    data = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode("utf-8")
    return int(answer["statusCode"]), headers, data


_local = threading.local()


def call_in_thread_loop(handler: Callable[[dict, Any], dict], event: dict, context: Any) -> dict:
    """Call a Mangum handler on this thread's own event loop (Mangum uses the current one)."""
    loop = getattr(_local, "loop", None)
    if loop is None:
        loop = _local.loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return handler(event, context)


class _Handler(BaseHTTPRequestHandler):
    server: ApiGatewayFront
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug(format, *args)

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        event = proxy_event(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        try:
            answer = call_in_thread_loop(self.server.lambda_handler, event, LambdaContext("sdcloud-api"))
            status, headers, data = response_parts(answer)
        except Exception:  # noqa: BLE001 - API Gateway's own answer when the function fails
            log.exception("the API function failed")
            status, headers, data = 502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}'
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _DROPPED:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _proxy


class ApiGatewayFront(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], lambda_handler: Callable[[dict, Any], dict]) -> None:
        super().__init__(address, _Handler)
        self.lambda_handler = lambda_handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="API Gateway stand-in in front of lambda_api.handler")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    from middleware.entrypoints.lambda_api import handler  # the cold start: builds the runtime

    server = ApiGatewayFront((args.host, args.port), handler)
    print(f"api gateway front listening on http://{args.host}:{args.port} "
          f"(cold start {1000 * (time.perf_counter() - started):.0f} ms)", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
