"""A loopback TCP proxy that counts the bytes a client sends upstream: what the server really
received, measured outside both (the model upload tests and benchmarks/model_upload.py)."""

from __future__ import annotations

import socket
import threading
import time


class CountingProxy:
    """A loopback TCP proxy counting the bytes the client sends upstream (requests and bodies)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.upstream_bytes = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while True:
                data = src.recv(1024 * 1024)
                if not data:
                    break
                if count:
                    with self._lock:
                        self.upstream_bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def settled(self, quiet_s: float = 0.5) -> int:
        """The count once no byte has arrived for `quiet_s` (a killed client's buffers drained)."""
        last = -1
        while last != self.upstream_bytes:
            last = self.upstream_bytes
            time.sleep(quiet_s)
        return last

    def close(self) -> None:
        self._listener.close()
