"""`train`: SageMaker's training contract (/opt/ml/input, /opt/ml/model, /opt/ml/output/failure).

LoRA training itself arrives with the training issue. Until then this entry point honours the
contract's failure protocol, so a training job started against this image ends at once with a
reason SageMaker shows to the operator, instead of hanging or exiting without a word.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PREFIX = Path(os.environ.get("SM_PREFIX", "/opt/ml"))


def fail(message: str) -> int:
    failure = PREFIX / "output" / "failure"
    try:
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(message + "\n")
    except OSError:
        pass  # the message still reaches stderr, which SageMaker keeps in CloudWatch
    print(message, file=sys.stderr)
    return 2


def main() -> int:
    config = PREFIX / "input" / "config" / "hyperparameters.json"
    try:
        hyperparameters = json.loads(config.read_text()) if config.exists() else {}
    except ValueError as exc:
        return fail(f"hyperparameters.json is not valid JSON: {exc}")
    kind = hyperparameters.get("kind", "lora")
    return fail(f"training kind {kind!r} is not available in this image version yet")


if __name__ == "__main__":
    raise SystemExit(main())
