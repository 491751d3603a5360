"""An SNS HTTP subscriber that hands each delivery to the real SNS Lambda handler.

moto delivers a topic's messages to an ``http://`` subscriber for real: one POST per message,
``Content-Type: text/plain``, no ``x-amz-sns-*`` headers, auto-confirmed, one try (FACTS.md). This
server turns that HTTP envelope into the event SNS gives a Lambda (``Records[0].Sns``, with the
Lambda spellings ``SigningCertUrl`` / ``UnsubscribeUrl``) and calls
``middleware.entrypoints.lambda_sns.handler``. A handler that raises answers 500 (SNS would retry
it; moto does not), and the failure is counted at ``GET /_bridge/deliveries``.

Run: python -m tests.support.sns_http_bridge --port P   (the middleware's SDCLOUD_* settings in
the environment, as the function's configuration would be)
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.apigw_front import LambdaContext

log = logging.getLogger("sns-http-bridge")

# The HTTP envelope's fields that keep their name in a Lambda record, and the two that change.
_SAME = ("Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp", "SignatureVersion", "Signature")
_RENAMED = {"SigningCertURL": "SigningCertUrl", "UnsubscribeURL": "UnsubscribeUrl"}


def lambda_event(http_body: dict[str, Any], subscription_arn: str | None = None) -> dict[str, Any]:
    """The SNS → Lambda event for one SNS → HTTP delivery."""
    sns: dict[str, Any] = {name: http_body.get(name) for name in _SAME}
    for http_name, lambda_name in _RENAMED.items():
        sns[lambda_name] = http_body.get(http_name)
    # Lambda shows message attributes as {name: {Type, Value}}, HTTP the same: pass them on.
    sns["MessageAttributes"] = http_body.get("MessageAttributes") or {}
    topic = str(http_body.get("TopicArn") or "")
    return {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSource": "aws:sns",
                "EventSubscriptionArn": subscription_arn or f"{topic}:00000000-0000-0000-0000-000000000000",
                "Sns": sns,
            }
        ]
    }


class _Handler(BaseHTTPRequestHandler):
    server: SnsHttpBridge
    # Headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug(format, *args)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/_bridge/deliveries"):
            self._answer(200, self.server.stats())
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw)
        except ValueError:
            self.server.record("unreadable")
            self._answer(400, {"error": "the body is not an SNS JSON envelope"})
            return
        if not isinstance(body, dict) or body.get("Type") != "Notification":
            # SubscriptionConfirmation / UnsubscribeConfirmation: moto confirms on its own.
            self.server.record("ignored")
            self._answer(200, {"ignored": body.get("Type") if isinstance(body, dict) else None})
            return
        try:
            summary = self.server.lambda_handler(lambda_event(body), LambdaContext("sdcloud-notifications"))
        except Exception as exc:  # noqa: BLE001 - reported as SNS sees a failed Lambda
            log.exception("the notification function failed")
            self.server.record("failed", f"{type(exc).__name__}: {exc}")
            self._answer(500, {"error": type(exc).__name__})
            return
        self.server.record("handled")
        self._answer(200, summary if isinstance(summary, dict) else {"result": str(summary)})


class SnsHttpBridge(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], lambda_handler: Callable[[dict, Any], Any]) -> None:
        super().__init__(address, _Handler)
        self.lambda_handler = lambda_handler
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._errors: list[str] = []
        self._last_at: float | None = None

    def record(self, outcome: str, error: str | None = None) -> None:
        with self._lock:
            self._counts[outcome] = self._counts.get(outcome, 0) + 1
            self._last_at = time.time()
            if error:
                self._errors = (self._errors + [error])[-20:]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"counts": dict(self._counts), "errors": list(self._errors), "last_at": self._last_at}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SNS HTTP subscriber calling lambda_sns.handler")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from middleware.entrypoints.lambda_sns import handler  # the cold start: builds the runtime

    server = SnsHttpBridge((args.host, args.port), handler)
    print(f"sns http bridge listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
