"""`make demo`: the local stack on loopback — inference container, middleware and UI.

Uses the tiny bundled model unless --checkpoint names a real .safetensors file. Data (SQLite,
blobs, keys, model cache, logs) lives in one folder and survives restarts. Ctrl-C stops all three.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.local_processes import LocalStack, make_tiny_checkpoint  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".data"))
    parser.add_argument("--checkpoint", type=Path, default=None, help="a real SD 1.x/2.x/XL .safetensors file")
    parser.add_argument("--ui-port", type=int, default=7861)
    parser.add_argument("--api-port", type=int, default=8780)
    parser.add_argument("--container-port", type=int, default=8781)
    args = parser.parse_args()

    data_dir = args.data_dir.resolve()
    models_dir = data_dir / "models"
    if args.checkpoint:
        source = args.checkpoint.resolve()
        if not source.is_file():
            print(f"CHECKPOINT={args.checkpoint}: no such file", file=sys.stderr)
            return 2
        checkpoint = models_dir / source.name
        if not checkpoint.exists():
            models_dir.mkdir(parents=True, exist_ok=True)
            try:
                checkpoint.symlink_to(source)
            except OSError:
                shutil.copy2(source, checkpoint)
    else:
        checkpoint = models_dir / "tiny-sd15.safetensors"
        print("No CHECKPOINT given: using the tiny bundled model (random weights: images are noise-like).")
        make_tiny_checkpoint(checkpoint)

    stack = LocalStack(data_dir=data_dir, checkpoint=checkpoint, container_port=args.container_port,
                       middleware_port=args.api_port, ui_port=args.ui_port)
    print("Starting the inference container, the middleware and the UI ...", flush=True)
    started = time.monotonic()
    stack.start()
    print(f"\n  SD Cloud UI:      {stack.ui_url}")
    print(f"  Middleware API:   {stack.api_url}/v1  (docs at {stack.api_url}/v1/docs)")
    print(f"  Admin API key in: {stack.api_key_file}  (mode 0600; paste it in Settings if asked)")
    print(f"  Data folder:      {data_dir}   logs in {data_dir / 'logs'}")
    print(f"  Job files:        {stack.blob_dir / 'jobs'}  (request.json, images/, result.json per job)")
    print(f"  Ready in {time.monotonic() - started:.1f} s. Press Ctrl-C to stop.\n", flush=True)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, service in stack.services.items():
                if service.process is not None and service.process.poll() is not None:
                    print(f"{name} exited unexpectedly; last log lines:\n{service.log_tail()}", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        print("Stopping ...", flush=True)
        stack.stop()
        print("Stopped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
