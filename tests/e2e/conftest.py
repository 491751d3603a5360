from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.local_processes import extension_python, make_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny-sd15.safetensors")


@pytest.fixture(scope="session")
def extension_env_available() -> bool:
    return os.access(extension_python(), os.X_OK)
