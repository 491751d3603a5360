"""``python -m middleware.entrypoints.local``: the middleware on one machine."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pydantic import ValidationError

from middleware.bootstrap import serve_local
from middleware.settings import Settings, describe_settings_error


def parse_args(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description="SD Cloud middleware (local mode)")
    parser.add_argument("--host", help="interface to listen on (env SDCLOUD_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on, 0 for any free one (env SDCLOUD_PORT)")
    parser.add_argument("--data-dir", help="jobs database, blobs, keys (env SDCLOUD_DATA_DIR)")
    parser.add_argument("--models-dir", help="checkpoints folder (env SDCLOUD_MODELS_DIR)")
    parser.add_argument(
        "--container-url",
        help="inference container base URL, or name=url,name=url,... for several containers; the first "
        "is the default endpoint (env SDCLOUD_CONTAINER_URL)",
    )
    parser.add_argument("--public-base-url", help="base of signed image URLs (env SDCLOUD_PUBLIC_BASE_URL)")
    # Only flags given on the command line override the environment and the defaults.
    return {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    """Settings from flags, environment and defaults; a bad value ends the process with one line
    that says what to fix (no traceback)."""
    try:
        return Settings(**parse_args(argv))
    except ValidationError as exc:
        raise SystemExit(f"SD Cloud middleware cannot start: {describe_settings_error(exc)}") from None


def main(argv: Sequence[str] | None = None) -> None:
    serve_local(load_settings(argv))


if __name__ == "__main__":
    main()
