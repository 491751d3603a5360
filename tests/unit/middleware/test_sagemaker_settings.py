"""The AWS-mode compute settings: SDCLOUD_SAGEMAKER_ENDPOINTS and SageMaker's limits, refused with
one line that names the setting and says what to fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from middleware.adapters.sagemaker_compute import (
    SageMakerTarget,
    StaticEndpointDirectory,
    parse_sagemaker_endpoints,
)
from middleware.settings import Settings, describe_settings_error


def refusal(**settings) -> str:
    with pytest.raises(ValidationError) as info:
        Settings(**settings)
    return describe_settings_error(info.value)


def test_endpoints_parse_in_order_with_kinds():
    settings = Settings(sagemaker_endpoints=" default=async:sdc-sd15 , fast=realtime:sdc-turbo,plain=sdc-plain ")
    assert settings.sagemaker_targets == (
        ("default", SageMakerTarget("sdc-sd15", "async")),
        ("fast", SageMakerTarget("sdc-turbo", "realtime")),
        ("plain", SageMakerTarget("sdc-plain", "async")),  # no kind: async
    )
    directory = StaticEndpointDirectory(settings.sagemaker_targets)
    assert directory.names() == ["default", "fast", "plain"]
    assert directory.resolve("fast") == SageMakerTarget("sdc-turbo", "realtime")
    assert directory.resolve("nope") is None


def test_local_mode_needs_no_sagemaker_endpoints():
    assert Settings().sagemaker_endpoints == ""
    with pytest.raises(ValueError, match="SDCLOUD_SAGEMAKER_ENDPOINTS is empty"):
        Settings().sagemaker_targets  # noqa: B018 - asking for them is what fails
    with pytest.raises(ValueError, match="names no endpoint"):
        StaticEndpointDirectory([])


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("default=async:sdc-a,", "SDCLOUD_SAGEMAKER_ENDPOINTS: entry 2 of 2 is empty; remove the extra comma"),
        ("sdc-a", "must look like name=async:endpoint-name"),
        ("bad name=async:sdc-a", "endpoint name 'bad name' in the value is not allowed"),
        ("a=batch:sdc-a", "endpoint 'a' has kind 'batch'; use async or realtime"),
        ("a=async:sdc_a", "('sdc_a') is not a valid endpoint name"),
        ("a=async:" + "x" * 64, "is not a valid endpoint name"),
        ("a=async:sdc-a,A=realtime:sdc-b", "endpoint name 'A' is used twice (also as 'a')"),
    ],
)
def test_bad_endpoint_settings_say_what_to_fix(value, says):
    line = refusal(sagemaker_endpoints=value)
    assert says in line
    assert "\n" not in line


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("invocation_timeout_s", 0, "SDCLOUD_INVOCATION_TIMEOUT_S: Input should be greater than or equal to 1"),
        ("invocation_timeout_s", 3601, "SDCLOUD_INVOCATION_TIMEOUT_S: Input should be less than or equal to 3600"),
        ("request_ttl_s", 59, "SDCLOUD_REQUEST_TTL_S: Input should be greater than or equal to 60"),
        ("request_ttl_s", 21601, "SDCLOUD_REQUEST_TTL_S: Input should be less than or equal to 21600"),
    ],
)
def test_limits_follow_sagemakers_ranges(field, value, says):
    assert says in refusal(**{field: value})


def test_defaults_are_sagemakers_longest():
    settings = Settings()
    assert settings.invocation_timeout_s == 3600
    assert settings.request_ttl_s == 21600
    assert settings.admin_key_secret_arn is None


def test_the_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("SDCLOUD_SAGEMAKER_ENDPOINTS", "main=realtime:sdc-rt")
    monkeypatch.setenv("SDCLOUD_ADMIN_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:admin")
    settings = Settings()
    assert parse_sagemaker_endpoints(settings.sagemaker_endpoints) == (("main", SageMakerTarget("sdc-rt", "realtime")),)
    assert settings.admin_key_secret_arn.endswith(":secret:admin")


def test_s3_imports_may_not_read_the_stacks_own_bucket():
    from middleware.settings import Settings

    assert Settings(blob_bucket="stack-blobs", import_s3_buckets=" team-a, team-b ,").import_buckets == {"team-a", "team-b"}
    with pytest.raises(ValueError, match="must not name the stack's own bucket"):
        Settings(blob_bucket="stack-blobs", import_s3_buckets="team-a,stack-blobs")
