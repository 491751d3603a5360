"""The ``container_url`` setting: one inference container URL, or several named ones.

``http://127.0.0.1:8080`` is one endpoint named after the ``endpoint_name`` setting ("local"),
exactly as before several were supported. ``gpu0=http://10.0.0.5:8080,gpu1=http://10.0.0.6:8080``
names each endpoint; the first one is where jobs go when a request names none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

SETTING = "--container-url / SDCLOUD_CONTAINER_URL"
NAME_RULE = "letters, digits, '_' and '-', 1 to 63 characters"
EXAMPLE = "http://127.0.0.1:8080 or gpu0=http://10.0.0.5:8080,gpu1=http://10.0.0.6:8080"

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
# An entry is "name=url" when what precedes the first "=" cannot be part of a URL's scheme and
# authority; "http://h:1/?a=b" stays a bare URL.
_NAMED = re.compile(r"^(?P<name>[^=:/]*)=(?P<url>.*)$", re.DOTALL)


@dataclass(frozen=True)
class ContainerEndpoint:
    name: str
    url: str


def parse_container_endpoints(value: str, default_name: str = "local") -> tuple[ContainerEndpoint, ...]:
    """The endpoints ``value`` configures, in order. Raises ValueError with a one-line message
    that names the setting and says what to fix."""
    text = (value or "").strip()
    if not text:
        raise ValueError(f"{SETTING} is empty; give a container URL like {EXAMPLE}")
    entries = [entry.strip() for entry in text.split(",")]
    parsed: list[ContainerEndpoint] = []
    for position, entry in enumerate(entries, start=1):
        where = f"entry {position} of {len(entries)}" if len(entries) > 1 else "the value"
        if not entry:
            raise ValueError(f"{SETTING}: {where} is empty; remove the extra comma")
        named = _NAMED.match(entry)
        if named is not None:
            name, url = named.group("name").strip(), named.group("url").strip()
            _check_name(name, where)
        elif len(entries) == 1:
            name, url = default_name, entry
            _check_name(name, "SDCLOUD_ENDPOINT_NAME")
        else:
            raise ValueError(
                f"{SETTING}: {where} has no name; with several containers write each as name=url, "
                f"like {EXAMPLE.split(' or ')[1]}"
            )
        _check_url(url, name, where)
        parsed.append(ContainerEndpoint(name, url))
    _check_unique(parsed)
    return tuple(parsed)


def _check_name(name: str, where: str) -> None:
    if not _NAME.match(name):
        shown = repr(name) if name else "an empty name"
        raise ValueError(f"{SETTING}: endpoint name {shown} in {where} is not allowed; use {NAME_RULE}")


def _check_url(url: str, name: str, where: str) -> None:
    def refuse(problem: str) -> ValueError:
        return ValueError(
            f"{SETTING}: the URL of endpoint {name!r} ({where}) {problem}; write it like http://10.0.0.5:8080"
        )

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise refuse("has an invalid port") from None
    if parts.scheme not in ("http", "https"):
        raise refuse("must start with http:// or https://")
    if not parts.hostname:
        raise refuse("has no host")
    if parts.username is not None or parts.password is not None:
        # Never echoed: it would put a password into logs and into GET /v1/endpoints.
        raise refuse("must not carry a user name or password")


def _check_unique(endpoints: list[ContainerEndpoint]) -> None:
    seen: dict[str, str] = {}
    for endpoint in endpoints:
        # Case-insensitively: "gpu0" and "GPU0" would only confuse whoever picks one.
        folded = endpoint.name.lower()
        if folded in seen:
            raise ValueError(
                f"{SETTING}: endpoint name {endpoint.name!r} is used twice "
                f"(also as {seen[folded]!r}); give each container its own name"
            )
        seen[folded] = endpoint.name
