"""Builds the middleware's Lambda code folder (python3.12, x86_64) without a python3.12 interpreter.

``sam build``'s own Python workflow needs the runtime's interpreter on PATH and resolves
dependencies for the machine it runs on. This machine and CI have Python 3.11 only, so we ask pip
for exactly what Lambda runs instead: cp312 wheels for manylinux x86_64 (``--platform``,
``--python-version``, ``--only-binary=:all:``; nothing is compiled here), unpacked into a folder,
plus the ``middleware`` package. The template's functions use ``BuildMethod: makefile`` with
tools/lambda_build/Makefile, which calls this module, so ``sam build`` still produces and checks
the artifact it deploys.

The dependency install is cached under build/lambda-deps/<hash of the inputs>/ and reused while
requirements/middleware.txt is unchanged. A folder is only ever published complete: it is built
beside its final place and renamed into it.

    python tools/lambda_artifact.py --out DIR      # write the code folder, print its sizes
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements" / "middleware.txt"
PACKAGE = ROOT / "middleware"
CACHE = ROOT / "build" / "lambda-deps"
# Lambda's python3.12 runs on Amazon Linux 2023 (glibc 2.34): both manylinux tags fit.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
PYTHON_VERSION = "3.12"
# Lambda's limits for a zip-packaged function (code and layers, unzipped).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# Not needed at run time inside Lambda: the template itself, caches, docs.
_SKIP_NAMES = {"__pycache__", "template.yaml", "README.md", ".pytest_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


class ArtifactError(RuntimeError):
    """The artifact could not be built; the message says what to fix."""


@dataclass(frozen=True)
class ArtifactSize:
    files: int
    unzipped_bytes: int
    zipped_bytes: int

    def describe(self) -> str:
        return (f"{self.files} files, {self.unzipped_bytes / 1e6:.1f} MB unzipped, "
                f"{self.zipped_bytes / 1e6:.1f} MB zipped")  # fmt: skip


def pip_command(target: Path, requirements: Path = REQUIREMENTS) -> list[str]:
    """The pip call that fetches Lambda's wheels (cp312, manylinux x86_64) into ``target``."""
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
               "--no-compile", "--target", str(target), "--implementation", "cp",
               "--python-version", PYTHON_VERSION, "--only-binary=:all:", "--upgrade"]  # fmt: skip
    for platform in PLATFORMS:
        command += ["--platform", platform]
    return command + ["-r", str(requirements)]


def deps_key(requirements: Path = REQUIREMENTS) -> str:
    """What the cached dependency folder depends on: the pins and the target platform."""
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(f"{PYTHON_VERSION}|{'|'.join(PLATFORMS)}".encode())
    return digest.hexdigest()[:16]


def ensure_deps(cache: Path = CACHE, requirements: Path = REQUIREMENTS) -> Path:
    """The folder holding the installed dependencies, installing them first when not cached."""
    final = cache / deps_key(requirements)
    if final.is_dir():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".deps-", dir=cache))
    try:
        result = subprocess.run(pip_command(staging, requirements), capture_output=True, text=True)
        if result.returncode != 0:
            raise ArtifactError(
                f"pip could not fetch python{PYTHON_VERSION} manylinux wheels for {requirements.name} "
                f"(every pin needs a binary wheel for Lambda):\n{result.stderr.strip()[-2000:]}"
            )
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _ignore(_folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _SKIP_NAMES or n.endswith(_SKIP_SUFFIXES)}


def assemble(out: Path, deps: Path, package: Path = PACKAGE) -> None:
    """Writes ``out`` as dependencies + the middleware package, replacing what was there."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        shutil.copytree(deps, staging, dirs_exist_ok=True, ignore=_ignore)
        shutil.copytree(package, staging / package.name, ignore=_ignore)
        if out.exists():
            # sam build hands us an empty ARTIFACTS_DIR; a rebuild into an old folder replaces it.
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def find_python312() -> str | None:
    """A working python3.12 to compile the artifact's bytecode with: $SDCLOUD_LAMBDA_PYTHON,
    python3.12 on PATH, or a pyenv 3.12; None when there is none. A candidate must say it is 3.12
    (a pyenv shim of a version that is not active is on PATH but fails)."""
    named = os.environ.get("SDCLOUD_LAMBDA_PYTHON")
    if named:
        return named
    candidates = [shutil.which(f"python{PYTHON_VERSION}")]
    candidates += sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}"))
    for candidate in filter(None, candidates):
        try:
            answer = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                    capture_output=True, text=True, timeout=20)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        if answer.returncode == 0 and answer.stdout.strip() == PYTHON_VERSION:
            return candidate
    return None


def precompile(folder: Path, python: str | None) -> bool:
    """Writes cp312 bytecode beside the sources. Lambda's code folder is read-only, so without it
    every cold start compiles fastapi, pydantic and botocore again (measured here: ~1.1 s more per
    import of the API). ``unchecked-hash``: the files' timestamps change on upload; the hash
    check would only cost time."""
    if python is None:
        return False
    result = subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                             "unchecked-hash", str(folder)], capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        raise ArtifactError(f"{python} could not compile the Lambda code:\n{result.stdout[-1500:]}{result.stderr[-500:]}")
    return True


def measure(folder: Path) -> ArtifactSize:
    """Files, bytes, and the size of the zip Lambda would be given (deflated, as sam packs it)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    unzipped = sum(p.stat().st_size for p in files)
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(folder).as_posix())
        zipped = handle.tell()
    return ArtifactSize(files=len(files), unzipped_bytes=unzipped, zipped_bytes=zipped)


def build(out: Path, *, python312: str | None = None) -> ArtifactSize:
    assemble(out, ensure_deps())
    if not precompile(out, python312 or find_python312()):
        print(f"warning: no python{PYTHON_VERSION} found (set SDCLOUD_LAMBDA_PYTHON): the Lambda code ships "
              "without bytecode, and each cold start compiles it (about a second more)", file=sys.stderr)
    size = measure(out)
    if size.unzipped_bytes > MAX_UNZIPPED_BYTES:
        raise ArtifactError(f"the Lambda code is {size.describe()}: over Lambda's 250 MB unzipped limit; "
                            "trim requirements/middleware.txt")  # fmt: skip
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write (replaced whole)")
    args = parser.parse_args(argv)
    try:
        size = build(args.out)
    except ArtifactError as exc:
        print(f"lambda artifact: {exc}", file=sys.stderr)
        return 1
    print(f"lambda artifact: {args.out}: {size.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
