"""``python -m middleware.entrypoints.local``: the middleware on one machine."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from middleware.bootstrap import serve_local
from middleware.settings import Settings


def parse_args(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description="SD Cloud middleware (local mode)")
    parser.add_argument("--host", help="interface to listen on (env SDCLOUD_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on, 0 for any free one (env SDCLOUD_PORT)")
    parser.add_argument("--data-dir", help="jobs database, blobs, keys (env SDCLOUD_DATA_DIR)")
    parser.add_argument("--models-dir", help="checkpoints folder (env SDCLOUD_MODELS_DIR)")
    parser.add_argument("--container-url", help="inference container base URL (env SDCLOUD_CONTAINER_URL)")
    parser.add_argument("--public-base-url", help="base of signed image URLs (env SDCLOUD_PUBLIC_BASE_URL)")
    # Only flags given on the command line override the environment and the defaults.
    return {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}


def main(argv: Sequence[str] | None = None) -> None:
    serve_local(Settings(**parse_args(argv)))


if __name__ == "__main__":
    main()
