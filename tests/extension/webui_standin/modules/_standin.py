"""Which WebUI this stand-in plays (not a module of the real WebUI)."""

from __future__ import annotations

import os
from importlib import metadata


def _default_flavour() -> str:
    try:
        major = int(metadata.version("gradio").split(".", 1)[0])
    except (metadata.PackageNotFoundError, ValueError):
        return "a1111"
    return "forge" if major >= 4 else "a1111"


FLAVOUR = os.environ.get("SDCLOUD_WEBUI_FLAVOUR") or _default_flavour()
if FLAVOUR not in ("a1111", "forge"):
    raise RuntimeError(f"SDCLOUD_WEBUI_FLAVOUR must be a1111 or forge (got {FLAVOUR!r})")
FORGE = FLAVOUR == "forge"
