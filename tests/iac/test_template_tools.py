"""The IaC tools on middleware/template.yaml: cfn-lint, checkov, `sam validate --lint`, `sam build`.

They run from their own environments (.venv-iac: SAM CLI + cfn-lint; .venv-checkov: checkov),
which `make test` builds first; without them each test skips and says how to get them. All of
them work offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cfn_template import TEMPLATE, load_template
from tools import lambda_artifact

ROOT = Path(__file__).resolve().parents[2]
IAC_BIN = ROOT / ".venv-iac" / "bin"
CHECKOV_BIN = ROOT / ".venv-checkov" / "bin"
pytestmark = pytest.mark.slow

# No telemetry, no update check, no AWS account: these must never reach a network.
_ENV = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", "BC_SKIP_MAPPING": "TRUE"}


def tool(folder: Path, name: str) -> str:
    exe = folder / name
    if not exe.exists():
        pytest.skip(f"{exe.relative_to(ROOT)} is missing: run `make iac-envs` (built by `make test`)")
    return str(exe)


def run(command: list[str], cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=_ENV, capture_output=True, text=True, timeout=timeout)


def test_cfn_lint_finds_nothing():
    result = run([tool(IAC_BIN, "cfn-lint"), str(TEMPLATE)])
    assert result.returncode == 0, result.stdout + result.stderr


def _checkov_report() -> dict:
    result = run([tool(CHECKOV_BIN, "checkov"), "-f", str(TEMPLATE), "--framework", "cloudformation",
                  "--skip-download", "--output", "json"])  # fmt: skip
    # checkov exits 1 when a check fails; the report says which.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return json.loads(result.stdout)


def _declared_skips() -> dict[tuple[str, str], str]:
    skips = {}
    for name, resource in load_template()["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips[(name, skip["id"])] = skip.get("comment", "")
    return skips


def test_checkov_passes_with_every_skip_justified_and_used():
    report = _checkov_report()["results"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["failed_checks"]]
    assert failed == []
    declared = _declared_skips()
    assert declared, "the template declares its checkov skips in Metadata"
    # Each skip says why in a sentence, and names a check checkov really applies to that resource
    # (a stale skip would hide nothing today and anything tomorrow).
    assert all(len(comment.split()) >= 6 for comment in declared.values()), declared
    applied = {(c["resource"].split(".", 1)[1], c["check_id"]) for c in report["skipped_checks"]}
    assert applied == set(declared)
    assert report["passed_checks"], "checkov read the template's resources"


def test_sam_validate_lint_accepts_the_template():
    result = run([tool(IAC_BIN, "sam"), "validate", "--lint", "--template-file", str(TEMPLATE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_build_produces_a_python312_lambda_artifact_with_every_handler(tmp_path):
    build_dir = tmp_path / "sam"
    result = run([tool(IAC_BIN, "sam"), "build", "--template-file", str(TEMPLATE), "--build-dir", str(build_dir)],
                 timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    built = (build_dir / "template.yaml").read_text()
    functions = {name: r for name, r in load_template()["Resources"].items()
                 if r["Type"] == "AWS::Serverless::Function"}  # fmt: skip
    assert set(functions) == {"ApiFunction", "NotificationFunction", "EndpointStateFunction", "SweeperFunction",
                              "RealtimeFunction", "LibraryFunction"}
    for name, function in functions.items():
        code = build_dir / name
        assert f"CodeUri: {name}" in built
        # Lambda's python3.12: compiled wheels are cp312 manylinux builds, not this machine's 3.11.
        (core,) = (code / "pydantic_core").glob("_pydantic_core.*.so")
        assert "cpython-312-x86_64-linux-gnu" in core.name
        assert not list((code / "pydantic_core").glob("*cpython-311*"))
        module = function["Properties"]["Handler"].rsplit(".", 1)[0]
        assert (code / (module.replace(".", "/") + ".py")).is_file() or not _in_repo(module), module
        size = lambda_artifact.measure(code)
        assert size.unzipped_bytes < lambda_artifact.MAX_UNZIPPED_BYTES
        print(f"{name}: {size.describe()}", file=sys.stderr)


def _in_repo(module: str) -> bool:
    # The handlers are written beside this template (another part of issue 8): the artifact must
    # carry each one the repository has; test_aws_template checks that all of them exist.
    return (ROOT / (module.replace(".", "/") + ".py")).is_file()
