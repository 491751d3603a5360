"""A fake inference container: a real HTTP server speaking the container contract.

``/ping``, ``/invocations`` (tiny valid PNGs carrying a ``parameters`` text chunk, and an
A1111-shaped ``info``), ``/progress`` (with the batch iteration), ``POST /jobs/<id>/interrupt``
and ``/skip``, with knobs: delay, fail with a status and detail, answer busy (429) a few times,
go silent, ignore cancels, go down and come back.

With an output folder (``output_dir``, ``--output-store file:///abs`` or
``SDCLOUD_OUTPUT_STORE``) it behaves like the real container: a job naming ``output.prefix`` gets
its PNGs and ``result.json`` written there, and the job-scoped markers ``<prefix>cancel`` and
``<prefix>skip`` are obeyed between steps. Without one it answers the A1111 way, images inline
as base64 (what an older or other container does). An interrupt (endpoint or marker) ends
sampling and answers 200 with ``"interrupted": true`` and the images sampled so far: every
finished iteration plus the current one, as A1111 decodes the current latents.

Tests drive it in-process; benchmarks run ``python -m tests.fakes.fake_container --port N``.
Other processes can turn the knobs through ``POST /_fake/config`` and read what it received at
``GET /_fake/invocations``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse, urlsplit

from PIL import Image


def png_bytes(
    width: int = 8, height: int = 8, parameters: str | None = None, rgb: tuple[int, int, int] = (90, 140, 200)
) -> bytes:
    """A valid RGB PNG; ``parameters`` goes into a text chunk as A1111 writes its infotext."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(rgb) * width
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    if parameters is not None:
        try:
            out += chunk(b"tEXt", b"parameters\x00" + parameters.encode("latin-1"))
        except UnicodeEncodeError:
            out += chunk(b"iTXt", b"parameters\x00\x00\x00\x00\x00" + parameters.encode("utf-8"))
    out += chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b"")
    return out


def infotext(payload: dict[str, Any], seed: int, model: dict[str, Any]) -> str:
    sampler = payload.get("sampler_name") or payload.get("sampler_index") or "Euler"
    lines = [str(payload.get("prompt", ""))]
    if payload.get("negative_prompt"):
        lines.append(f"Negative prompt: {payload['negative_prompt']}")
    name = str(model.get("name", "model")).rsplit(".", 1)[0]
    lines.append(
        f"Steps: {payload.get('steps', 50)}, Sampler: {sampler}, Schedule type: Automatic, "
        f"CFG scale: {payload.get('cfg_scale', 7.0)}, Seed: {seed}, "
        f"Size: {payload.get('width', 512)}x{payload.get('height', 512)}, "
        f"Model hash: {str(model.get('sha256', ''))[:10]}, Model: {name}, Version: fake-container"
    )
    return "\n".join(lines)


def _preview_jpeg_b64() -> str:
    """A real 8x8 JPEG, standing in for the engine's latent-resolution live previews."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 120, 200)).save(out, format="JPEG")
    return base64.b64encode(out.getvalue()).decode("ascii")


PREVIEW_JPEG_B64 = _preview_jpeg_b64()


@dataclass
class FakeContainerState:
    delay_s: float = 0.0
    fail_status: int | None = None
    fail_detail: str = "fake failure"
    fail_field: str | None = None
    fail_code: str = "invalid_request"
    busy_responses: int = 0  # answer 429 this many times before accepting
    ready: bool = True
    silent: bool = False  # /progress answers 503 and /invocations waits for release()
    ignore_cancel: bool = False  # interrupts and cancel markers are heard but not obeyed
    output_dir: str | None = None  # the output store folder (SDCLOUD_OUTPUT_STORE of a real one)
    invocations: list[dict[str, Any]] = field(default_factory=list)
    interrupts: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)
    progress: dict[str, Any] = field(
        default_factory=lambda: {
            "job_id": None,
            "phase": "idle",
            "step": 0,
            "steps": 0,
            "fraction": 0.0,
            "iteration": 0,
            "n_iter": 0,
            "queue_depth": 0,
        }
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read assertions, not logs
        pass

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # Headers and body in one write: two small writes would meet Nagle + delayed ACK (40 ms).
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(data)
        self.flush_headers()

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._untrack(self.connection)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        fake = self.server.fake
        if self.path == "/ping":
            if fake.state.ready:
                self._send(200, {"status": "ok"})
            else:
                self._send(503, {"status": "starting"})
        elif self.path.split("?", 1)[0] == "/progress":
            wanted = parse_qs(urlsplit(self.path).query).get("job_id", [None])[0]
            if fake.state.silent:
                self._send(503, {"status": "silent"})
                return
            with fake.lock:
                progress = dict(fake.state.progress)
            if wanted is not None and progress.get("job_id") != wanted:
                self._send(404, {"status": 404, "code": "unknown_job", "detail": f"no job {wanted!r}"})
            else:
                self._send(200, progress)
        elif self.path == "/_fake/invocations":
            with fake.lock:
                self._send(200, {"invocations": list(fake.state.invocations)})
        else:
            self._send(404, {"status": 404, "code": "not_found", "detail": f"no route {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        fake = self.server.fake
        if self.path == "/_fake/config":
            fake.configure(**self._body())
            self._send(200, {"ok": True})
            return
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "jobs" and parts[2] in ("interrupt", "skip"):
            try:
                self._body()
            except ValueError:
                pass
            job_id, action = unquote(parts[1]), parts[2]
            state = fake.request_stop(job_id, action)
            self._send(202, {"job_id": job_id, "action": action, "state": state})
            return
        if self.path != "/invocations":
            self._send(404, {"status": 404, "code": "not_found", "detail": f"no route {self.path}"})
            return
        try:
            document = self._body()
        except ValueError:
            self._send(400, {"status": 400, "code": "invalid_request", "detail": "body is not JSON"})
            return
        status, body, headers = fake.invoke(document)
        self._send(status, body, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeContainer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a cancelled job, a test tearing down) is not an error here.
        pass


class FakeContainer:
    """Start with ``start()`` (or as a context manager); ``url`` is its base URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **knobs: Any) -> None:
        self.host = host
        self.port = port
        self.state = FakeContainerState()
        self.lock = threading.Lock()
        self._work = threading.Lock()  # one generation at a time, like the real container
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._stops: dict[str, set[str]] = {}  # job id -> {"interrupt", "skip"} asked by endpoint
        knobs.setdefault("output_dir", _folder(os.environ.get("SDCLOUD_OUTPUT_STORE")))
        self.configure(**knobs)

    # -- knobs -------------------------------------------------------------------------------------

    def configure(self, **knobs: Any) -> None:
        with self.lock:
            for name, value in knobs.items():
                if not hasattr(self.state, name) or name in ("invocations", "progress", "interrupts", "skips"):
                    raise ValueError(f"unknown fake container knob {name!r}")
                setattr(self.state, name, value)
        if not self.state.silent:
            self._release.set()
        else:
            self._release.clear()

    def fail_with(
        self, status: int, detail: str, field: str | None = None, code: str = "invalid_request"
    ) -> None:
        self.configure(fail_status=status, fail_detail=detail, fail_field=field, fail_code=code)

    def release(self) -> None:
        """Let a silent container answer the requests it holds."""
        self._release.set()

    def request_stop(self, job_id: str, action: str) -> str:
        """What ``POST /jobs/<id>/interrupt|skip`` does: flag the job; answers its state."""
        with self.lock:
            (self.state.interrupts if action == "interrupt" else self.state.skips).append(job_id)
            running = self.state.progress.get("job_id") == job_id and self.state.progress.get("phase") == "sampling"
            self._stops.setdefault(job_id, set()).add(action)
        return "running" if running else "unknown"

    @property
    def invocations(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.state.invocations)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> FakeContainer:
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening and drop every open connection (a crashed container)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self.lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._release.set()

    def up(self) -> FakeContainer:
        """Listen again on the same port."""
        return self.start()

    stop = down

    def __enter__(self) -> FakeContainer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def _track(self, conn: socket.socket) -> None:
        with self.lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self.lock:
            self._connections.discard(conn)

    # -- the work -------------------------------------------------------------------------------------

    def invoke(self, document: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str] | None]:
        state = self.state
        with self.lock:
            state.invocations.append(document)
            if state.busy_responses > 0:
                state.busy_responses -= 1
                return 429, {"status": 429, "code": "busy", "detail": "queue is full"}, {"Retry-After": "0"}
            if not state.ready:
                return (
                    503,
                    {"status": 503, "code": "not_ready", "detail": "the engine is still starting"},
                    None,
                )
            state.progress["queue_depth"] += 1
        with self._work:
            return self._generate(document)

    def _set_progress(self, **values: Any) -> None:
        with self.lock:
            self.state.progress.update(values)

    def _marker(self, prefix: str | None, name: str) -> dict[str, Any] | None:
        folder = self.state.output_dir
        if not folder or not prefix:
            return None
        path = Path(folder) / prefix / name
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else {}

    def _stop_asked(self, job_id: Any, prefix: str | None, iteration: int) -> str | None:
        """"interrupt", "skip" or None: what the endpoints or the markers ask of this job now."""
        with self.lock:
            asked = self._stops.get(job_id, set())
            if "skip" in asked:
                asked.discard("skip")
                return "skip"
            interrupt = "interrupt" in asked
        if interrupt or self._marker(prefix, "cancel") is not None:
            return None if self.state.ignore_cancel else "interrupt"
        skip = self._marker(prefix, "skip")
        if skip is not None and skip.get("iteration") == iteration:
            return "skip"
        return None

    def _generate(self, document: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str] | None]:
        job_id = document.get("id")
        payload = document.get("payload") or {}
        output = document.get("output") if isinstance(document.get("output"), dict) else {}
        prefix = output.get("prefix") if self.state.output_dir else None
        steps = int(payload.get("steps", 20) or 20)
        batch = int(payload.get("batch_size", 1) or 1)
        n_iter = int(payload.get("n_iter", 1) or 1)
        with self.lock:
            self.state.progress["queue_depth"] -= 1
        self._set_progress(
            job_id=job_id, phase="sampling", step=0, steps=steps, fraction=0.0, iteration=0, n_iter=n_iter,
            preview_step=0, preview=None,
        )
        interrupted = False
        done_iterations = 0
        skipped_to = -1
        for iteration in range(n_iter):
            self._set_progress(iteration=iteration, step=0, fraction=0.0)
            started = time.monotonic()
            # The delay is read on every tick so that a test can cut a long job short.
            while (elapsed := time.monotonic() - started) < (delay := self.state.delay_s / n_iter):
                asked = self._stop_asked(job_id, prefix, iteration)
                if asked == "interrupt":
                    interrupted = True
                    break
                if asked == "skip" and skipped_to < iteration:
                    skipped_to = iteration
                    break
                step = min(steps, int(steps * elapsed / delay))
                # A live preview with every step, as the real container sends one every N steps.
                self._set_progress(step=step, fraction=round(step / steps, 4), preview_step=step,
                                   preview=PREVIEW_JPEG_B64 if step else None)
                time.sleep(min(0.02, delay - elapsed))
            done_iterations = iteration + 1
            if interrupted:
                break
        if self.state.silent:
            self._release.wait()
        if self.state.fail_status is not None:
            self._set_progress(job_id=job_id, phase="failed")
            body: dict[str, Any] = {
                "status": self.state.fail_status,
                "code": self.state.fail_code,
                "detail": self.state.fail_detail,
            }
            if self.state.fail_field:
                body["field"] = self.state.fail_field
            return self.state.fail_status, body, None
        count = batch * done_iterations
        seed = int(payload.get("seed", -1))
        seed = 1234 if seed == -1 else seed
        model = (document.get("models") or {}).get("checkpoint") or {}
        texts = [infotext(payload, seed + i, model) for i in range(count)]
        pngs = [png_bytes(parameters=t) for t in texts]
        info = {
            "prompt": payload.get("prompt", ""),
            "all_prompts": [payload.get("prompt", "")] * count,
            "negative_prompt": payload.get("negative_prompt", ""),
            "all_negative_prompts": [payload.get("negative_prompt", "")] * count,
            "seed": seed,
            "all_seeds": [seed + i for i in range(count)],
            "subseed": 42,
            "all_subseeds": [42 + i for i in range(count)],
            "subseed_strength": payload.get("subseed_strength", 0),
            "width": payload.get("width", 512),
            "height": payload.get("height", 512),
            "sampler_name": payload.get("sampler_name") or payload.get("sampler_index") or "Euler",
            "cfg_scale": payload.get("cfg_scale", 7.0),
            "steps": steps,
            "batch_size": batch,
            "restore_faces": False,
            "sd_model_name": str(model.get("name", "model")).rsplit(".", 1)[0],
            "sd_model_hash": str(model.get("sha256", ""))[:10],
            "denoising_strength": payload.get("denoising_strength"),
            "extra_generation_params": {"Schedule type": "Automatic"},
            "index_of_first_image": 0,
            "infotexts": texts,
            "styles": payload.get("styles") or [],
            "clip_skip": 1,
            "version": "fake-container",
        }
        with self.lock:
            self._stops.pop(job_id, None)
        self._set_progress(job_id=job_id, phase="done", step=steps, fraction=1.0)
        if prefix:
            body = {
                "id": job_id,
                "output": {"images": [{"key": f"{prefix}images/{n}.png"} for n in range(count)]},
                "parameters": payload,
                "info": json.dumps(info),
                "interrupted": interrupted,
            }
            root = Path(self.state.output_dir or ".")
            for n, png in enumerate(pngs):
                _write(root / prefix / "images" / f"{n}.png", png)
            _write(root / prefix / "result.json", json.dumps(body).encode())
            return 200, body, None
        images = [base64.b64encode(png).decode() for png in pngs]
        body = {"images": images, "parameters": payload, "info": json.dumps(info)}
        if interrupted:
            body["interrupted"] = True
        return 200, body, None


def _folder(uri: str | None) -> str | None:
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"the fake container's output store must be file:///abs/folder (got {uri!r})")
    return unquote(parsed.path)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fake SD Cloud inference container")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each invocation takes")
    parser.add_argument(
        "--output-store", default=None, help="file:///abs/folder for outputs (env SDCLOUD_OUTPUT_STORE)"
    )
    args = parser.parse_args(argv)
    knobs: dict[str, Any] = {"delay_s": args.delay}
    if args.output_store:
        knobs["output_dir"] = _folder(args.output_store)
    fake = FakeContainer(args.host, args.port, **knobs).start()
    print(f"fake container listening on {fake.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.down()


if __name__ == "__main__":
    main()
