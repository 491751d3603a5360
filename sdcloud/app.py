"""Standalone SD Cloud UI: the extension's tabs without a WebUI.

    python -m sdcloud.app --host 127.0.0.1 --port 7861 --api-url http://127.0.0.1:8000 \
        --api-key-file data/admin-api-key

Each option also reads an environment variable (SDCLOUD_UI_HOST, SDCLOUD_UI_PORT, SDCLOUD_API_URL,
SDCLOUD_API_KEY / SDCLOUD_API_KEY_FILE, SDCLOUD_UI_SETTINGS, SDCLOUD_UI_OUTPUTS); then the saved
settings file. Images go to ``outputs/`` beside the settings file (--outputs-dir to change), in
A1111's layout: ``txt2img-images/<YYYY-MM-DD>/<nnnnn>-<seed>.png``. There is no --api-key option on purpose: command lines are visible to every user.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .settings import Settings, default_settings_path

CLOSE_GRACE_S = 5.0

# gradio's page template asks other hosts for things the UI does not need: a CDN's iframe-resizer
# script (for embedding in other sites) and preconnects to Google's font servers. The page must reach
# nothing but its own server, so those tags are taken out of the HTML as it is served.
_EXTERNAL_TAG = re.compile(
    r"<script\b[^>]*\bsrc=[\"']https?://[^>]*>\s*</script\s*>"
    r"|<link\b[^>]*\bhref=[\"']https?://[^>]*>",
    re.IGNORECASE | re.DOTALL,
)


def strip_external_resources(page: str) -> str:
    """The HTML without <script src> / <link href> tags that point at another host (absolute URLs)."""
    return _EXTERNAL_TAG.sub("", page)


class LocalOnlyPages:
    """ASGI middleware: HTML responses pass through ``strip_external_resources``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        passthrough = False

        async def rewrite(message: dict[str, Any]) -> None:
            nonlocal start, passthrough
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                html_page = headers.get(b"content-type", b"").startswith(b"text/html")
                passthrough = not html_page or b"content-encoding" in headers
                if passthrough:
                    await send(message)
                else:
                    start = message
                return
            if passthrough or start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = strip_external_resources(b"".join(chunks).decode("utf-8", "replace")).encode("utf-8")
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode("ascii")))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)


def parse_args(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sdcloud.app", description="SD Cloud standalone UI")
    parser.add_argument("--host", default=env.get("SDCLOUD_UI_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("SDCLOUD_UI_PORT", "7861")))
    parser.add_argument("--api-url", default=env.get("SDCLOUD_API_URL", ""))
    parser.add_argument("--api-key-file", default=env.get("SDCLOUD_API_KEY_FILE", ""))
    parser.add_argument(
        "--settings-file", default=env.get("SDCLOUD_UI_SETTINGS", str(default_settings_path()))
    )
    parser.add_argument("--outputs-dir", default=env.get("SDCLOUD_UI_OUTPUTS", ""))
    return parser.parse_args(argv)


def startup_settings(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Settings:
    """URL and key given at start-up: --api-key-file, then SDCLOUD_API_KEY; empty means "use the file"."""
    key = ""
    if args.api_key_file:
        try:
            key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SystemExit(f"--api-key-file {args.api_key_file}: cannot read it ({exc.strerror})") from None
    if not key:
        key = env.get("SDCLOUD_API_KEY", "").strip()
    return Settings(api_url=args.api_url.strip(), api_key=key)


def outputs_dir_for(args: argparse.Namespace) -> Path:
    """--outputs-dir, else ``outputs`` in the data folder: the folder of the settings file."""
    if args.outputs_dir:
        return Path(args.outputs_dir).expanduser().resolve()
    return Path(args.settings_file).expanduser().resolve().parent / "outputs"


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home, and no internet here
    from .settings import SettingsStore
    from .ui import compat
    from .ui.standalone import build_standalone

    args = parse_args(argv)
    store = SettingsStore(args.settings_file, overrides=startup_settings(args))
    outputs_dir = outputs_dir_for(args)
    demo = build_standalone(store, outputs_dir=outputs_dir)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        prevent_thread_lock=True,
        quiet=True,
        show_api=False,
        # the gallery serves the saved files from there (gradio 4 refuses paths it was not given)
        **compat.launch_kwargs([str(outputs_dir)], middleware=[LocalOnlyPages]),
    )
    print(f"SD Cloud UI on http://{args.host}:{args.port}", flush=True)
    stop.wait()
    # gradio 3's close() can wait forever on a browser that left mid-generation: give it a few
    # seconds in a daemon thread, then exit regardless (its server threads are daemons too).
    closer = threading.Thread(target=demo.close, name="close-ui", daemon=True)
    closer.start()
    closer.join(CLOSE_GRACE_S)
    print(
        "SD Cloud UI stopped" if not closer.is_alive() else "SD Cloud UI stopped (connections dropped)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
