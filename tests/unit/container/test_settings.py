"""The container's one settings object: explicit argument, then environment, then default."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference_container.settings import ContainerSettings, SettingsError

_ALL = ("SDCLOUD_HOST", "SAGEMAKER_BIND_TO_PORT", "SDCLOUD_MODEL_CACHE_DIR", "SDCLOUD_MODEL_CACHE_BYTES",
        "SDCLOUD_MODEL_ROOTS", "SDCLOUD_MAX_WAITING", "SDCLOUD_MAX_BODY_BYTES", "SDCLOUD_PRELOAD_CHECKPOINT",
        "SDCLOUD_OUTPUT_STORE", "SDCLOUD_MARKER_POLL_S", "SDCLOUD_ALLOW_PICKLE", "SDCLOUD_PIPELINES_IN_MEMORY",
        "SDCLOUD_TORCH_THREADS", "SDCLOUD_ENGINE_CACHE_DIR", "SDCLOUD_TOKENIZER_DIR", "SDCLOUD_CLIP_BPE_PATH")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in _ALL:
        monkeypatch.delenv(name, raising=False)


def test_defaults():
    settings = ContainerSettings.from_env()
    assert (settings.port, settings.max_waiting, settings.marker_poll_s, settings.allow_pickle) == (8080, 4, 0.5, False)
    assert settings.clip_tokenizer_dir == settings.engine_cache_dir / "clip-tokenizer"
    assert settings.file_model_roots == ()


def test_explicit_beats_environment_beats_default(monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9000")
    monkeypatch.setenv("SDCLOUD_HOST", "127.0.0.1")
    settings = ContainerSettings.from_env(port=9100, host=None)  # None: not given
    assert (settings.port, settings.host) == (9100, "127.0.0.1")


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("TRUE", True), ("yes", True), ("on", True),
                                                  ("0", False), ("false", False), ("No", False), ("off", False)])
def test_one_truthy_vocabulary(monkeypatch, value, expected):
    monkeypatch.setenv("SDCLOUD_ALLOW_PICKLE", value)
    assert ContainerSettings.from_env().allow_pickle is expected


@pytest.mark.parametrize(("name", "value"), [("SDCLOUD_ALLOW_PICKLE", "maybe"), ("SDCLOUD_MAX_WAITING", "four"),
                                             ("SDCLOUD_MARKER_POLL_S", "-1"), ("SDCLOUD_MODEL_ROOTS", "models")])
def test_bad_values_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        ContainerSettings.from_env()


def test_model_roots_are_the_configured_folders_plus_the_preload_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SDCLOUD_MODEL_ROOTS", "/srv/models::/mnt/efs/models")
    preload = tmp_path / "base" / "m.safetensors"
    settings = ContainerSettings.from_env(preload_checkpoint=preload)
    assert settings.model_roots == (Path("/srv/models"), Path("/mnt/efs/models"))
    assert settings.file_model_roots == (Path("/srv/models"), Path("/mnt/efs/models"), preload.resolve().parent)


def test_engine_paths_come_from_the_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("SDCLOUD_ENGINE_CACHE_DIR", str(tmp_path / "engine"))
    assert ContainerSettings.from_env().clip_tokenizer_dir == tmp_path / "engine" / "clip-tokenizer"
    monkeypatch.setenv("SDCLOUD_TOKENIZER_DIR", str(tmp_path / "tok"))
    monkeypatch.setenv("SDCLOUD_CLIP_BPE_PATH", str(tmp_path / "bpe.txt.gz"))
    settings = ContainerSettings.from_env()
    assert (settings.clip_tokenizer_dir, settings.clip_bpe_path) == (tmp_path / "tok", tmp_path / "bpe.txt.gz")
