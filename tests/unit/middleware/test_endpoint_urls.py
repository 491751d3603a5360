"""The container_url setting: one URL (endpoint "local", as before) or several name=url entries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from middleware.endpoint_urls import ContainerEndpoint, parse_container_endpoints
from middleware.entrypoints.local import load_settings
from middleware.settings import Settings, describe_settings_error

REPO = Path(__file__).resolve().parents[3]


def test_one_url_is_the_local_endpoint_as_before():
    assert parse_container_endpoints("http://127.0.0.1:8080") == (
        ContainerEndpoint("local", "http://127.0.0.1:8080"),
    )
    assert parse_container_endpoints("  https://gpu.example:8443/  ", "box") == (
        ContainerEndpoint("box", "https://gpu.example:8443/"),
    )
    # An "=" in a bare URL's query does not make it a named entry.
    assert parse_container_endpoints("http://h:1/?a=b")[0] == ContainerEndpoint("local", "http://h:1/?a=b")


def test_named_list_keeps_the_order_and_the_names():
    parsed = parse_container_endpoints("gpu0=http://10.0.0.5:8080, gpu1 = http://10.0.0.6:8080")
    assert parsed == (
        ContainerEndpoint("gpu0", "http://10.0.0.5:8080"),
        ContainerEndpoint("gpu1", "http://10.0.0.6:8080"),
    )
    assert parse_container_endpoints("Big_Box-2=http://[::1]:9000") == (
        ContainerEndpoint("Big_Box-2", "http://[::1]:9000"),
    )
    name = "n" * 63
    assert parse_container_endpoints(f"{name}=http://h:1")[0].name == name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("gpu0=http://a:1,gpu0=http://b:1", "'gpu0' is used twice"),
        ("gpu0=http://a:1,GPU0=http://b:1", "'GPU0' is used twice"),
        ("gpu 0=http://a:1", "endpoint name 'gpu 0' in the value is not allowed"),
        ("gpu.0=http://a:1", "letters, digits, '_' and '-', 1 to 63 characters"),
        ("=http://a:1", "an empty name"),
        ("n" * 64 + "=http://a:1", "is not allowed"),
        ("gpu0=ftp://a:1", "endpoint 'gpu0' (the value) must start with http:// or https://"),
        ("ftp://a:1", "endpoint 'local' (the value) must start with http://"),
        ("gpu0=http://", "has no host"),
        ("gpu0=http://a:99999", "has an invalid port"),
        ("gpu0=http://a:port", "has an invalid port"),
        ("gpu0=a:1", "must start with http://"),
        ("gpu0=http://a:1,http://b:1", "entry 2 of 2 has no name; with several containers write each"),
        ("gpu0=http://a:1,,gpu1=http://b:1", "entry 2 of 3 is empty; remove the extra comma"),
        ("gpu0=http://a:1,", "entry 2 of 2 is empty"),
        ("gpu1=http://b:1,gpu2=https:///x", "endpoint 'gpu2' (entry 2 of 2) has no host"),
    ],
)
def test_bad_values_say_what_to_fix_in_one_line(value, expected):
    with pytest.raises(ValueError) as info:
        parse_container_endpoints(value)
    message = str(info.value)
    assert message.startswith("--container-url / SDCLOUD_CONTAINER_URL")
    assert expected in message and "\n" not in message


def test_credentials_in_a_url_are_refused_without_being_echoed():
    with pytest.raises(ValueError) as info:
        parse_container_endpoints("gpu0=http://admin:hunter2@10.0.0.5:8080")
    assert "user name or password" in str(info.value) and "hunter2" not in str(info.value)


def test_settings_accept_both_forms_and_expose_the_endpoints(monkeypatch):
    assert Settings().container_endpoints == (ContainerEndpoint("local", "http://127.0.0.1:8080"),)
    assert Settings(container_url="http://c:1", endpoint_name="box").container_endpoints == (
        ContainerEndpoint("box", "http://c:1"),
    )
    monkeypatch.setenv("SDCLOUD_CONTAINER_URL", "gpu0=http://10.0.0.5:8080,gpu1=http://10.0.0.6:8080")
    settings = Settings()
    assert settings.container_url == "gpu0=http://10.0.0.5:8080,gpu1=http://10.0.0.6:8080"
    assert [e.name for e in settings.container_endpoints] == ["gpu0", "gpu1"]


def test_settings_refuse_a_bad_container_value_at_construction():
    with pytest.raises(ValidationError) as info:
        Settings(container_url="gpu0=http://a:1,gpu0=http://b:1")
    line = describe_settings_error(info.value)
    assert line == (
        "--container-url / SDCLOUD_CONTAINER_URL: endpoint name 'gpu0' is used twice (also as 'gpu0'); "
        "give each container its own name"
    )
    with pytest.raises(ValidationError) as info:
        Settings(endpoint_name="no spaces please")
    assert "SDCLOUD_ENDPOINT_NAME" in describe_settings_error(info.value)


def test_other_bad_settings_are_described_by_flag_and_variable():
    with pytest.raises(ValidationError) as info:
        Settings(port="abc", worker_silence_s=0)
    line = describe_settings_error(info.value)
    assert "--port / SDCLOUD_PORT: Input should be a valid integer" in line and "(got 'abc')" in line
    assert "SDCLOUD_WORKER_SILENCE_S: Input should be greater than 0 (got 0)" in line
    assert "\n" not in line


def test_entrypoint_turns_a_bad_value_into_one_line(monkeypatch):
    monkeypatch.delenv("SDCLOUD_CONTAINER_URL", raising=False)
    with pytest.raises(SystemExit) as info:
        load_settings(["--container-url", "gpu0=http://a:1,oops"])
    assert str(info.value) == (
        "SD Cloud middleware cannot start: --container-url / SDCLOUD_CONTAINER_URL: entry 2 of 2 has no "
        "name; with several containers write each as name=url, like "
        "gpu0=http://10.0.0.5:8080,gpu1=http://10.0.0.6:8080"
    )
    good = load_settings(["--container-url", "a=http://h:1,b=http://h:2"])
    assert [e.url for e in good.container_endpoints] == ["http://h:1", "http://h:2"]


def test_the_real_process_prints_the_line_without_a_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "middleware.entrypoints.local",
            "--data-dir",
            str(tmp_path / "data"),
            "--container-url",
            "gpu0=http://10.0.0.5:8080,gpu 1=http://10.0.0.6:8080",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "SD Cloud middleware cannot start: --container-url / SDCLOUD_CONTAINER_URL: endpoint name 'gpu 1' "
        "in entry 2 of 2 is not allowed; use letters, digits, '_' and '-', 1 to 63 characters"
    ]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()  # refused before anything was created
