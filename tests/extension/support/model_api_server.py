"""A real HTTP server (stdlib, threads) with the model library's upload API shape
(/tmp/briefs/model_api.md, issue 9): declare, part PUTs, upload state, complete, abort, list,
delete, visibility. Parts land in files under a folder; the server counts every part byte it
receives, so tests measure what the client really sent. Part size is small here (a test knob).

Used until, and beside, the real middleware: it lets the client be tested with parts of a few
KiB and a kill at a chosen byte.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class ModelApiServer:
    def __init__(self, folder: Path, part_size: int = 64 * 1024, api_key: str = "") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.part_size = part_size
        self.api_key = api_key
        self.lock = threading.Lock()
        self.bytes_received = 0
        self.part_puts = 0
        self.models: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.chunk_delay_s = 0.0  # a slow link: sleep after each 64 KiB read of a part (kill tests)
        self.fail_next_puts = 0  # answer this many part PUTs with 500 (retry tests)
        self.auth_on_parts: list[str] = []  # Authorization headers seen on part PUTs (must stay empty)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> ModelApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ---- the API ------------------------------------------------------------------------------

    def _plan_parts(self, upload: dict[str, Any]) -> list[dict[str, Any]]:
        size, part = upload["size"], upload["part_size"]
        count = max(1, -(-size // part))
        out = []
        for n in range(1, count + 1):
            if n in upload["received"]:
                continue
            length = min(part, size - (n - 1) * part)
            out.append({"number": n, "size": length, "url": f"/v1/uploads/{upload['id']}/parts/{n}?signature=x"})
        return out

    def _view(self, upload: dict[str, Any]) -> dict[str, Any]:
        return {"status": upload["status"], "upload_id": upload["id"], "part_size": upload["part_size"],
                "parts": self._plan_parts(upload),
                "received": [{"number": n, "size": s, "etag": f'"{n}"'} for n, s in sorted(upload["received"].items())],
                "expires_at": int(time.time()) + 3600}

    def declare(self, owner: str, body: dict[str, Any]) -> tuple[int, Any]:
        for field in ("name", "type", "size", "sha256"):
            if field not in body:
                return 400, {"title": "Bad Request", "detail": f"{field} is required"}
        stored = next((m for m in self.models.values() if m["sha256"] == body["sha256"]), None)
        if stored is not None:
            record = self._record(owner, body)
            return 200, {"status": "complete", "upload_id": None, "model": record, "parts": []}
        upload_id = uuid.uuid4().hex
        upload = {"id": upload_id, "owner": owner, "body": body, "size": int(body["size"]),
                  "part_size": min(self.part_size, int(body["size"])), "received": {}, "status": "uploading"}
        self.uploads[upload_id] = upload
        view = self._view(upload)
        view.pop("received")
        return 201, view

    def _record(self, owner: str, body: dict[str, Any]) -> dict[str, Any]:
        model_id = f"{body['sha256'][:16]}:{owner}:{body['type']}:{body['name']}"
        record = {"id": model_id, "name": body["name"], "type": body["type"], "size": int(body["size"]),
                  "sha256": body["sha256"], "owner": owner, "visibility": body.get("visibility") or "private",
                  "created_at": int(time.time()), "format": "safetensors", "uri": f"models/{body['sha256']}"}
        self.models[model_id] = record
        return record

    def put_part(self, upload_id: str, number: int, data: bytes) -> tuple[int, Any, dict[str, str]]:
        upload = self.uploads.get(upload_id)
        if upload is None or upload["status"] != "uploading":
            return 404, {"title": "Not Found", "detail": "no such upload"}, {}
        expected = min(upload["part_size"], upload["size"] - (number - 1) * upload["part_size"])
        if len(data) != expected:
            return 400, {"title": "Bad Request", "detail": f"part {number} must be {expected} bytes"}, {}
        (self.folder / f"{upload_id}.{number}").write_bytes(data)
        upload["received"][number] = len(data)
        return 200, {}, {"ETag": f'"{number}"'}

    def complete(self, upload_id: str) -> tuple[int, Any]:
        upload = self.uploads.get(upload_id)
        if upload is None:
            return 404, {"title": "Not Found", "detail": "no such upload"}
        digest, size = hashlib.sha256(), 0
        count = max(1, -(-upload["size"] // upload["part_size"]))
        for n in range(1, count + 1):
            part = self.folder / f"{upload_id}.{n}"
            if not part.exists():
                return 409, {"title": "Conflict", "detail": f"part {n} was not received"}
            data = part.read_bytes()
            digest.update(data)
            size += len(data)
        for n in range(1, count + 1):
            (self.folder / f"{upload_id}.{n}").unlink()
        if digest.hexdigest() != upload["body"]["sha256"]:
            upload["status"] = "failed"
            return 422, {"title": "Unprocessable Entity",
                         "detail": f"sha256 mismatch: the uploaded bytes hash to {digest.hexdigest()}, "
                                   f"not {upload['body']['sha256']}; the upload was removed"}
        upload["status"] = "complete"
        return 200, {"status": "complete", "model": self._record(upload["owner"], upload["body"])}

    # ---- HTTP ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = b"" if status == 204 else json.dumps(body or {}).encode()
                self.send_response(status)
                kind = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _owner(self) -> str | None:
                auth = self.headers.get("Authorization", "")
                if server.api_key and auth != f"Bearer {server.api_key}":
                    self._reply(401, {"title": "Unauthorized", "detail": "API key missing or wrong"})
                    return None
                return "artist"

            def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path).path.strip("/").split("/")
                if len(parts) == 5 and parts[:2] == ["v1", "uploads"] and parts[3] == "parts":
                    if self.headers.get("Authorization"):
                        server.auth_on_parts.append(self.headers["Authorization"])
                    length = int(self.headers.get("Content-Length") or 0)
                    received = bytearray()
                    while len(received) < length:  # count bytes as they arrive: a killed client counts too
                        chunk = self.rfile.read(min(65536, length - len(received)))
                        if not chunk:
                            break
                        received += chunk
                        with server.lock:
                            server.bytes_received += len(chunk)
                        if server.chunk_delay_s:
                            time.sleep(server.chunk_delay_s)
                    if len(received) < length:
                        self.close_connection = True
                        return
                    with server.lock:
                        server.part_puts += 1
                        if server.fail_next_puts > 0:
                            server.fail_next_puts -= 1
                            self._reply(500, {"title": "Internal Server Error", "detail": "scripted failure"})
                            return
                        status, body, headers = server.put_part(parts[2], int(parts[4]), bytes(received))
                    self._reply(status, body, headers)
                    return
                self._reply(404, {"title": "Not Found"})

            def do_POST(self) -> None:  # noqa: N802
                owner = self._owner()
                if owner is None:
                    return
                path = urlsplit(self.path).path
                body = json.loads(self._body() or b"{}")
                with server.lock:
                    if path == "/v1/models/uploads":
                        self._reply(*server.declare(owner, body))
                    elif path.startswith("/v1/models/uploads/") and path.endswith("/complete"):
                        self._reply(*server.complete(path.split("/")[4]))
                    else:
                        self._reply(404, {"title": "Not Found"})

            def do_GET(self) -> None:  # noqa: N802
                owner = self._owner()
                if owner is None:
                    return
                split = urlsplit(self.path)
                query = parse_qs(split.query)
                with server.lock:
                    if split.path.startswith("/v1/models/uploads/"):
                        upload = server.uploads.get(split.path.split("/")[4])
                        if upload is None:
                            self._reply(404, {"title": "Not Found", "detail": "no such upload"})
                        else:
                            self._reply(200, server._view(upload))
                    elif split.path == "/v1/me":
                        self._reply(200, {"user": owner, "role": "user"})
                    elif split.path == "/v1/models":
                        wanted = (query.get("type") or [None])[0]
                        items = [m for m in server.models.values() if wanted in (None, m["type"])]
                        self._reply(200, {"items": items, "next_cursor": None})
                    else:
                        self._reply(404, {"title": "Not Found"})

            def do_DELETE(self) -> None:  # noqa: N802
                owner = self._owner()
                if owner is None:
                    return
                path = urlsplit(self.path).path
                with server.lock:
                    if path.startswith("/v1/models/uploads/"):
                        server.uploads.pop(path.split("/")[4], None)
                        self._reply(204)
                    elif path.startswith("/v1/models/"):
                        found = server.models.pop(unquote(path.split("/")[3]), None)
                        self._reply(204) if found else self._reply(404, {"title": "Not Found"})
                    else:
                        self._reply(404, {"title": "Not Found"})

            def do_PATCH(self) -> None:  # noqa: N802
                owner = self._owner()
                if owner is None:
                    return
                path = urlsplit(self.path).path
                body = json.loads(self._body() or b"{}")
                with server.lock:
                    model = server.models.get(unquote(path.split("/")[3]))
                    if model is None:
                        self._reply(404, {"title": "Not Found"})
                        return
                    model["visibility"] = body.get("visibility", model["visibility"])
                    self._reply(200, model)

        return Handler
