"""Standalone SD Cloud UI: the extension's tabs without a WebUI.

    python -m sdcloud.app --host 127.0.0.1 --port 7861 --api-url http://127.0.0.1:8000 \
        --api-key-file data/admin-api-key

Each option also reads an environment variable (SDCLOUD_UI_HOST, SDCLOUD_UI_PORT, SDCLOUD_API_URL,
SDCLOUD_API_KEY / SDCLOUD_API_KEY_FILE, SDCLOUD_UI_SETTINGS, SDCLOUD_UI_OUTPUTS); then the saved
settings file. There is no --api-key option on purpose: command lines are visible to every user.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from .settings import Settings, default_settings_path

CLOSE_GRACE_S = 5.0


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


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home, and no internet here
    from .settings import SettingsStore
    from .ui.generate_tab import default_outputs_dir
    from .ui.standalone import build_standalone

    args = parse_args(argv)
    store = SettingsStore(args.settings_file, overrides=startup_settings(args))
    outputs_dir = Path(args.outputs_dir) if args.outputs_dir else default_outputs_dir()
    demo = build_standalone(store, outputs_dir=outputs_dir)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    demo.launch(
        server_name=args.host, server_port=args.port, prevent_thread_lock=True, quiet=True, show_api=False
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
