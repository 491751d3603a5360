"""Every deployable's copy of the generation contract is exactly what tools/contract writes
(the pattern of diffusers' check_copies): change a rule in the engine's tables, run
`make contract`, and commit the copies with it."""

from __future__ import annotations

import pytest

from tools.contract.build import MANIFEST, ROOT, drifted, expected_files


def test_every_copy_is_what_the_tool_writes():
    if not MANIFEST.exists():
        pytest.skip(f"WebUI manifest not found at {MANIFEST} (CI has ../shared beside the checkout)")
    stale = [str(path.relative_to(ROOT)) for path in drifted(expected_files())]
    assert stale == [], "run `make contract` and commit the result"
