"""Where model imports read from: https:// (requests, streamed) and s3:// (the S3 client).

Hosts are resolved before connecting and refused when any address is private, loopback,
link-local, multicast or reserved (the middleware must not become a way into its own network);
redirects are followed by hand so that each hop is checked the same way. The address a socket
actually connected to is checked again before a byte is sent: a name that resolved to a public
address for the first check and to a private one for the connection (DNS rebinding) is refused
there. Tests allow local hosts and http:// through explicit arguments only.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

MAX_REDIRECTS = 5
_CONNECT_TIMEOUT_S = 10
_READ_TIMEOUT_S = 60


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:10.0.0.1 is 10.0.0.1
        ip = ip.ipv4_mapped
    return (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
        or ip.is_unspecified
    )


def check_host(host: str, port: int, *, allow_private: bool = False) -> None:
    """Raise ValueError when ``host`` resolves to an address imports may not reach."""
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ValueError(f"the host {host!r} cannot be resolved") from None
    if any(_refused_address(info[4][0]) for info in infos):
        raise ValueError(f"the host {host!r} is a private, loopback or link-local address; imports cannot reach it")


class RefusedAddress(Exception):
    """The connection reached an address imports may not use (not an OSError, so that urllib3
    neither retries it nor wraps it: it reaches UrlModelSource as it is)."""


def _vet_peer(sock: socket.socket, host: str) -> None:
    peer = sock.getpeername()[0]
    if _refused_address(peer):
        sock.close()
        raise RefusedAddress(f"the host {host!r} led to a private, loopback or link-local address; imports cannot reach it")


class _Vetted:
    """Mixed into urllib3's connection classes: the socket just connected is checked first."""

    host: str

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        _vet_peer(sock, self.host)
        return sock


class _VettedHTTPConnection(_Vetted, HTTPConnection):
    pass


class _VettedHTTPSConnection(_Vetted, HTTPSConnection):
    pass


class _VettedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _VettedHTTPConnection


class _VettedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _VettedHTTPSConnection


class _VettedAdapter(HTTPAdapter):
    """requests' adapter whose connections check the address they reached."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _VettedHTTPPool, "https": _VettedHTTPSPool}


class _ResponseStream:
    """A file-like view of a streamed requests response (read(n) in chunks, closes it)."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self._raw = response.raw

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(None if size is None or size < 0 else size, decode_content=True)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> _ResponseStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UrlModelSource:
    def __init__(
        self,
        *,
        s3_client: Any | None = None,
        s3_buckets: frozenset[str] = frozenset(),
        allow_private_hosts: bool = False,
        allow_http: bool = False,
        session: requests.Session | None = None,
    ) -> None:
        self._s3 = s3_client
        # s3:// imports read with the import function's own role, which can read the stack's
        # bucket (every user's jobs and models): only buckets the operator named are allowed.
        self._s3_buckets = frozenset(s3_buckets)
        self._allow_private = allow_private_hosts
        self._allow_http = allow_http
        self._session = session or requests.Session()
        self._session.trust_env = False  # no proxy or .netrc credentials from the environment
        if not allow_private_hosts:
            for prefix in ("https://", "http://"):
                self._session.mount(prefix, _VettedAdapter())

    def open(self, url: str) -> tuple[BinaryIO, int | None]:
        scheme = urlsplit(url).scheme.lower()
        if scheme == "s3":
            return self._open_s3(url)
        if scheme == "https" or (scheme == "http" and self._allow_http):
            return self._open_http(url)
        raise ValueError("only https:// and s3:// URLs can be imported")

    def _open_http(self, url: str) -> tuple[BinaryIO, int | None]:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in (("https", "http") if self._allow_http else ("https",)):
                raise ValueError("the URL redirected to a scheme imports cannot use")
            check_host(parts.hostname or "", parts.port or 443, allow_private=self._allow_private)
            try:
                response = self._session.get(
                    url, stream=True, allow_redirects=False, timeout=(_CONNECT_TIMEOUT_S, _READ_TIMEOUT_S)
                )
            except RefusedAddress as exc:
                raise ValueError(str(exc)) from None
            if response.is_redirect:
                url = urljoin(url, response.headers.get("location", ""))
                response.close()
                continue
            if response.status_code != 200:
                response.close()
                raise ValueError(f"the server answered HTTP {response.status_code}")
            length = response.headers.get("content-length")
            declared = int(length) if length and length.isdigit() else None
            return _ResponseStream(response), declared  # type: ignore[return-value]
        raise ValueError(f"the URL redirected more than {MAX_REDIRECTS} times")

    def _open_s3(self, url: str) -> tuple[BinaryIO, int | None]:
        if self._s3 is None:
            raise ValueError("s3:// imports need AWS mode (or an S3 client)")
        parts = urlsplit(url)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if not bucket or not key:
            raise ValueError("an s3:// URL reads s3://bucket/key")
        if bucket not in self._s3_buckets:
            raise ValueError(
                f"this deployment does not import from bucket {bucket!r} (the operator lists the buckets it "
                "may read in SDCLOUD_IMPORT_S3_BUCKETS); a presigned https:// URL of the object works instead"
            )
        try:
            answer = self._s3.get_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - botocore's errors, reported by code
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise ValueError(f"s3://{bucket}/{key} cannot be read ({code})") from None
        return answer["Body"], answer.get("ContentLength")
