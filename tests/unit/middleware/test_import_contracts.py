"""DESIGN §3's forbidden import directions, checked by import-linter (contracts in .importlinter)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.skip(f"import-linter is not installed next to {sys.executable}")
    proc = subprocess.run(
        [str(lint), "--config", str(REPO / ".importlinter"), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
    for contract in ("middleware.domain does no I/O", "middleware.services never import concrete adapters"):
        assert contract in proc.stdout
