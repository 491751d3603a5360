"""The command-line flags the stand-in understands (a small subset of the WebUI's)."""

from __future__ import annotations

import argparse

parser = argparse.ArgumentParser(allow_abbrev=False)
parser.add_argument("--data-dir", type=str, default="")
parser.add_argument("--skip-install", action="store_true")
parser.add_argument("--nowebui", action="store_true")
parser.add_argument("--api", action="store_true")
parser.add_argument("--listen", action="store_true")
parser.add_argument("--server-name", type=str, default=None)
parser.add_argument("--freeze-settings", action="store_true")
parser.add_argument("--ui-settings-file", type=str, default=None)
parser.add_argument("--no-prompt-history", action="store_true")
parser.add_argument("--embeddings-dir", type=str, default="embeddings")
