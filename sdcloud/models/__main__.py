"""`python -m sdcloud.models upload|import|sync|list`: the model library from a shell.

The API URL and key come the way the standalone app reads them: --api-url / SDCLOUD_API_URL,
--api-key-file / SDCLOUD_API_KEY_FILE, then SDCLOUD_API_KEY, then the saved settings file
(--settings-file / SDCLOUD_UI_SETTINGS). Exit codes: 0 done, 1 the cloud refused or failed,
2 bad input (a one-line message says what to fix).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..client import SDCloudClient
from ..errors import SDCloudError
from ..records import ModelInfo
from ..settings import Settings, SettingsStore, default_settings_path
from .imports import POLL_S, follow_import, name_from_url
from .local_folders import SYNC_TYPES, webui_folders
from .uploader import DEFAULT_CONCURRENCY, MODEL_TYPES, Uploader, validate_name

PROG = "python -m sdcloud.models"
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: exit 2 with the message."""


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="SD Cloud model library")
    parser.add_argument("--api-url", default=env.get("SDCLOUD_API_URL", ""))
    parser.add_argument("--api-key-file", default=env.get("SDCLOUD_API_KEY_FILE", ""))
    parser.add_argument("--settings-file", default=env.get("SDCLOUD_UI_SETTINGS", str(default_settings_path())))
    # the same options after the command too (`upload X --api-url ...`); SUPPRESS: only when given
    common = argparse.ArgumentParser(add_help=False)
    for option in ("--api-url", "--api-key-file", "--settings-file"):
        common.add_argument(option, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("upload", parents=[common], help="upload one model file (resumes an interrupted upload)")
    up.add_argument("path")
    up.add_argument("--type", required=True, choices=MODEL_TYPES)
    up.add_argument("--name", default=None, help="the name in the cloud (default: the file's name)")
    up.add_argument("--public", action="store_true", help="visible to every user (default: private)")
    up.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="parts in flight")
    up.add_argument("--no-progress", action="store_true", help="no progress bar")

    im = sub.add_parser("import", parents=[common], help="have the cloud fetch a model from a URL (https://, s3://)")
    im.add_argument("url")
    im.add_argument("--type", required=True, choices=MODEL_TYPES)
    im.add_argument("--name", default=None, help="the name in the cloud (default: the URL's file name)")
    im.add_argument("--sha256", default=None, help="the file's expected sha256 (the import fails on another)")
    im.add_argument("--public", action="store_true", help="visible to every user (default: private)")
    im.add_argument("--no-wait", action="store_true", help="print the import id and return at once")
    im.add_argument("--no-progress", action="store_true", help="no progress bar")

    sy = sub.add_parser("sync", parents=[common], help="upload the WebUI's local models the cloud does not hold yet")
    sy.add_argument("--webui-dir", default=env.get("SDCLOUD_WEBUI_DIR", "."),
                    help="the WebUI's folder (default: the current one)")
    sy.add_argument("--types", nargs="+", default=list(SYNC_TYPES), choices=SYNC_TYPES, metavar="TYPE",
                    help=f"the types to sync ({', '.join(SYNC_TYPES)}; default: all)")
    sy.add_argument("--dry-run", action="store_true", help="show what would be uploaded, send nothing")
    sy.add_argument("--public", action="store_true")
    sy.add_argument("--no-progress", action="store_true")

    ls = sub.add_parser("list", parents=[common], help="the models the cloud holds for you")
    ls.add_argument("--type", default=None, choices=MODEL_TYPES)
    return parser


def client_from(args: argparse.Namespace, env: Mapping[str, str]) -> SDCloudClient:
    key = ""
    if args.api_key_file:
        try:
            key = Path(args.api_key_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--api-key-file {args.api_key_file}: cannot read it ({exc.strerror})") from None
    key = key or env.get("SDCLOUD_API_KEY", "").strip()
    store = SettingsStore(args.settings_file, overrides=Settings(api_url=args.api_url.strip(), api_key=key))
    current = store.current()
    if not current.api_url:
        raise UsageError("no API URL: pass --api-url or set SDCLOUD_API_URL (or save it in the SD Cloud UI)")
    try:
        return SDCloudClient(current.api_url, current.api_key)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


class _Bar:
    """A tqdm bar fed with (phase, done, total); a new bar when the phase changes."""

    def __init__(self, enabled: bool, stream: TextIO) -> None:
        self.enabled = enabled
        self.stream = stream
        self.bar: Any = None
        self.phase = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        try:
            from tqdm import tqdm  # both WebUIs ship it; imported only when a bar is shown
        except ImportError:  # a bare environment: the final line still says what happened
            self.enabled = False
            return

        label = phase.split(" ", 1)[0]
        if self.bar is None or label != self.phase:
            self.close()
            self.phase = label
            self.bar = tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                            file=self.stream, leave=False, mininterval=0.5)
        if phase != label:
            self.bar.set_postfix_str(phase.split(" ", 1)[1][:40], refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_upload(client: SDCloudClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = Path(args.path).expanduser()
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    bar = _Bar(not args.no_progress and err.isatty(), err)
    try:
        result = Uploader(client, concurrency=args.concurrency).upload(
            path, args.type, name=args.name, visibility="public" if args.public else "private", progress=bar)
    finally:
        bar.close()
    m = result.model
    how = "already stored, 0 bytes sent" if result.deduplicated else f"{result.bytes_sent} bytes sent"
    if result.resumed_parts:
        how += f", resumed after {result.resumed_parts} part(s)"
    if result.retried_parts:
        how += f", {result.retried_parts} part attempt(s) retried"
    print(f"{m.type} {m.name} sha256 {m.sha256} ({how})", file=out)
    return 0


def cmd_import(client: SDCloudClient, args: argparse.Namespace, out: TextIO, err: TextIO,
               poll_s: float = POLL_S) -> int:
    name = validate_name(args.name or name_from_url(args.url))
    started = client.start_import(args.url, name, args.type, args.sha256, "public" if args.public else "private")
    import_id = str(started.get("import_id") or "")
    if args.no_wait and started.get("status") == "importing":
        print(f"import {import_id} started; `GET /v1/models/imports/{import_id}` shows it", file=out)
        return 0
    bar = _Bar(not args.no_progress and err.isatty(), err)
    state = started
    try:
        for state in follow_import(client, started, poll_s):
            bar("downloading", int(state.get("bytes") or 0), 0)
    finally:
        bar.close()
    if state.get("status") != "complete":
        print(f"{PROG}: failed: import {import_id}: {state.get('error') or state.get('status')}", file=err)
        return EXIT_FAILED
    m = ModelInfo.from_json(state.get("model"))
    print(f"{m.type} {m.name} sha256 {m.sha256} ({m.size} bytes, imported)", file=out)
    return 0


def cmd_sync(client: SDCloudClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .sync import run_sync

    folders = webui_folders(args.webui_dir).only(args.types)
    bar = _Bar(not args.no_progress and err.isatty(), err)
    try:
        report = run_sync(client, folders, dry_run=args.dry_run,
                          visibility="public" if args.public else "private", progress=bar)
    finally:
        bar.close()
    if args.dry_run:
        for item in report.plan.uploads:
            print(f"would upload {item.model.type:<10} {item.model.name} ({item.model.size} bytes)", file=out)
    for line in report.lines():
        print(line, file=out)
    print(f"{len(report.uploaded)} uploaded, {len(report.plan.skipped)} skipped, {len(report.failed)} failed"
          + (" (dry run)" if args.dry_run else ""), file=out)
    return EXIT_FAILED if report.failed else 0


def cmd_list(client: SDCloudClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    models = sorted(client.iter_models(args.type), key=lambda m: (m.type, m.name.lower()))
    for m in models:
        print(f"{m.type:<10} {m.sha256[:10]:<10} {m.size:>12} {m.visibility or '-':<8} {m.name}", file=out)
    if not models:
        print("no models" + (f" of type {args.type}" if args.type else ""), file=err)
    return 0


COMMANDS = {"upload": cmd_upload, "import": cmd_import, "sync": cmd_sync, "list": cmd_list}


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ,
         out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = build_parser(env).parse_args(argv)  # argparse itself exits 2 on bad options
    try:
        client = client_from(args, env)
        with client:
            return COMMANDS[args.command](client, args, out, err)
    except (UsageError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except SDCloudError as exc:
        print(f"{PROG}: failed: {exc}", file=err)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume", file=err)
        return 130


if __name__ == "__main__":
    sys.exit(main())
