"""Request body guards, as plain ASGI: an explicit size limit (413 with the limit in the message)
and a bound on JSON nesting (400), both before any JSON parser runs.

Checks Content-Length up front and counts the streamed bytes too (chunked bodies have no
Content-Length), buffering at most the limit before the application sees the body. The nesting
is measured without recursion: a recursive parser is exactly what a 1,000-deep body crashes.
"""

from __future__ import annotations

from typing import Any

from middleware.api.problems import problem
from middleware.domain.contract import LIMITS, json_depth

_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def describe_bytes(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB ({n} bytes)"
    return f"{n} bytes"


class BodySizeLimit:
    def __init__(
        self,
        app: Any,
        max_bytes: int,
        max_json_depth: int = LIMITS["max_json_depth"],
        exempt_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_depth = max_json_depth
        # Routes that stream their body themselves and enforce their own limit (upload parts).
        self.exempt_prefixes = exempt_prefixes

    async def _too_large(self, scope: Any, receive: Any, send: Any) -> None:
        response = problem(
            413,
            f"request body is larger than the limit of {describe_bytes(self.max_bytes)}; "
            "send large images by upload reference instead",
            code="payload_too_large",
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS_WITH_BODY:
            await self.app(scope, receive, send)
            return
        if self.exempt_prefixes and scope.get("path", "").startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._too_large(scope, receive, send)
                    return
                break
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        buffered = b"".join(chunks)
        depth = json_depth(buffered)
        if depth > self.max_json_depth:
            response = problem(
                400,
                f"request body is JSON nested {depth} levels deep; the limit is {self.max_json_depth}",
                code="invalid_request",
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": buffered, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
