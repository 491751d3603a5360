"""Shared fixtures for the container's torch-side tests: one tiny model per session."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tiny model's layers are so small that a second thread only adds contention on 2 shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def engine_work_dir(tmp_path_factory) -> Path:
    """Where tokenizer and pipeline-config folders are built for this test session."""
    return tmp_path_factory.mktemp("engine-work")


@pytest.fixture(scope="session")
def clip_tokenizer(engine_work_dir):
    from inference_container.engine.tokenizer import load_clip_tokenizer

    return load_clip_tokenizer("clip", engine_work_dir / "clip-tokenizer")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny SD 1.x checkpoint (seed 0) in the real single-file layout."""
    from inference_container.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd15.safetensors", seed=0)


@pytest.fixture(scope="session")
def tiny_ref(tiny_checkpoint):
    from inference_container.engine.types import ModelRef

    digest = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    return ModelRef("tiny-sd15.safetensors", tiny_checkpoint.as_uri(), digest, tiny_checkpoint.stat().st_size)


@pytest.fixture(scope="session")
def loader(engine_work_dir):
    from inference_container.engine.checkpoint import PipelineLoader

    return PipelineLoader(device="cpu", max_cached=2, work_dir=engine_work_dir)


@pytest.fixture(scope="session")
def tiny_model(loader, tiny_checkpoint, tiny_ref):
    """The tiny checkpoint loaded through the same path as any real checkpoint."""
    return loader.load(tiny_checkpoint, tiny_ref)
