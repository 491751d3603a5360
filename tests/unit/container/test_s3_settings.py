"""The container's S3 settings: model buckets, the endpoint override, the progress interval."""

from __future__ import annotations

import pytest

from inference_container.settings import ContainerSettings, SettingsError

_S3 = ("SDCLOUD_MODEL_BUCKETS", "SDCLOUD_S3_ENDPOINT_URL", "SDCLOUD_PROGRESS_PUBLISH_S")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in _S3:
        monkeypatch.delenv(name, raising=False)


def test_defaults_allow_any_bucket_the_role_reads_and_publish_progress_every_second():
    settings = ContainerSettings.from_env()
    assert (settings.model_buckets, settings.s3_endpoint_url, settings.progress_publish_s) == ((), None, 1.0)


def test_the_environment_sets_them(monkeypatch):
    monkeypatch.setenv("SDCLOUD_MODEL_BUCKETS", "sdcloud-models, sdcloud-shared-models,")
    monkeypatch.setenv("SDCLOUD_S3_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("SDCLOUD_PROGRESS_PUBLISH_S", "0.25")
    settings = ContainerSettings.from_env()
    assert settings.model_buckets == ("sdcloud-models", "sdcloud-shared-models")
    assert settings.s3_endpoint_url == "http://127.0.0.1:5000"
    assert settings.progress_publish_s == 0.25


@pytest.mark.parametrize(("name", "value", "needle"), [
    ("SDCLOUD_MODEL_BUCKETS", "s3://sdcloud-models", "bucket names separated by ','"),
    ("SDCLOUD_MODEL_BUCKETS", "models/prefix", "bucket names separated by ','"),
    ("SDCLOUD_PROGRESS_PUBLISH_S", "soon", "must be a number"),
    ("SDCLOUD_PROGRESS_PUBLISH_S", "-1", "must not be negative"),
])
def test_bad_values_name_the_variable(monkeypatch, name, value, needle):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name) as caught:
        ContainerSettings.from_env()
    assert needle in str(caught.value)
