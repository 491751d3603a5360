"""A plain HTTP file server on loopback for import-by-URL tests: serves `files` (path -> bytes),
404 for anything else, with a Content-Length the importer's size cap can read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Files(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - the stdlib's name
        data = self.files.get(self.path.split("?", 1)[0])
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextmanager
def serving(files: dict[str, bytes]) -> Iterator[str]:
    """Serve ``files``; yields the base URL (http://127.0.0.1:<port>)."""
    handler = type("Files", (_Files,), {"files": files})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
