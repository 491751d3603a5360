"""python -m tools.contract [--check]: write (or check) the generation contract's copies."""

from __future__ import annotations

import sys

from tools.contract.build import ROOT, ContractError, drifted, expected_files, write


def main(argv: list[str]) -> int:
    try:
        files = expected_files()
    except ContractError as exc:
        print(f"contract: {exc}", file=sys.stderr)
        return 2
    if "--check" in argv:
        stale = drifted(files)
        for path in stale:
            print(f"contract: {path.relative_to(ROOT)} differs from what tools/contract writes", file=sys.stderr)
        if stale:
            print("contract: run `make contract` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for path in write(files):
        print(f"contract: wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
