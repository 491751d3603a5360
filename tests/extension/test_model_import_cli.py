"""`python -m sdcloud.models import URL`: the real local middleware fetches a model from a URL
(a loopback file server, allowed by the test-only setting) while the CLI waits and reports."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdcloud.models.__main__ import main as cli_main
from sdcloud.models.imports import name_from_url
from tests.support.file_server import serving
from tools.local_processes import LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def lora_bytes() -> bytes:
    data = bytes(range(256)) * 64
    header = json.dumps({"lora_up.weight": {"dtype": "U8", "shape": [len(data)], "data_offsets": [0, len(data)]}})
    head = header.encode().ljust(-(-len(header) // 8) * 8, b" ")
    return struct.pack("<Q", len(head)) + head + data


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    folder = tmp_path_factory.mktemp("import-cli")
    (folder / "models").mkdir()
    (folder / "models" / "tiny.safetensors").write_bytes(b"listed, never read by the fake container")
    with pytest.MonkeyPatch.context() as patch:
        # the file server is on loopback, which imports refuse outside tests
        patch.setenv("SDCLOUD_IMPORT_ALLOW_PRIVATE_HOSTS", "true")
        local = LocalStack(data_dir=folder / "data", checkpoint=folder / "models" / "tiny.safetensors",
                           fake_container=True, with_ui=False).start(timeout=60)
    try:
        yield local
    finally:
        local.stop()


def run(args: list[str], stack: LocalStack, tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"SDCLOUD_API_URL": stack.api_url, "SDCLOUD_API_KEY": stack.api_key,
           "SDCLOUD_UI_SETTINGS": str(tmp_path / "ui-settings.json")}  # fmt: skip
    return cli_main(args, env=env, out=out, err=err), out.getvalue(), err.getvalue()


def test_import_waits_for_the_model_and_lists_it(stack: LocalStack, tmp_path: Path) -> None:
    data = lora_bytes()
    with serving({"/loras/ink%20wash.safetensors": data}) as base:
        url = f"{base}/loras/ink%20wash.safetensors?token=hf_abc"
        code, out, err = run(["import", url, "--type", "lora", "--sha256", hashlib.sha256(data).hexdigest()],
                             stack, tmp_path)  # fmt: skip
    assert code == 0, err
    assert out.strip() == f"lora ink wash.safetensors sha256 {hashlib.sha256(data).hexdigest()} ({len(data)} bytes, imported)"
    code, out, _ = run(["list", "--type", "lora"], stack, tmp_path)
    assert code == 0 and "ink wash.safetensors" in out


def test_a_failed_import_is_exit_1_with_the_servers_reason(stack: LocalStack, tmp_path: Path) -> None:
    with serving({"/x.safetensors": lora_bytes()}) as base:
        code, _, err = run(["import", f"{base}/x.safetensors", "--type", "lora", "--sha256", "0" * 64], stack, tmp_path)
    assert code == 1 and "sha256" in err and err.count("\n") == 1


def test_no_wait_returns_the_import_id(stack: LocalStack, tmp_path: Path) -> None:
    with serving({"/later.safetensors": lora_bytes()}) as base:
        code, out, _ = run(["import", f"{base}/later.safetensors", "--type", "lora", "--name", "later.safetensors",
                            "--no-wait"], stack, tmp_path)  # fmt: skip
    assert code == 0 and out.startswith("import imp_")


def test_a_url_without_a_file_name_needs_name() -> None:
    assert name_from_url("https://civitai.com/api/download/models/12345?type=Model") == "12345"
    with pytest.raises(ValueError, match="give the model a name"):
        name_from_url("https://example.com/")


def test_the_models_page_import_reports_progress_then_the_model(stack: LocalStack) -> None:
    from sdcloud.client import SDCloudClient
    from sdcloud.ui.models_page import import_model

    client = SDCloudClient(stack.api_url, stack.api_key)
    with serving({"/page.safetensors": lora_bytes()}) as base:
        lines = list(import_model(lambda: client, f"{base}/page.safetensors", "lora", False, every_s=0.05))
    assert "Imported page.safetensors (lora," in lines[-1] and "done" in lines[-1]
    with serving({"/bad.safetensors": b"\x00" * 40}) as base:
        lines = list(import_model(lambda: client, f"{base}/bad.safetensors", "lora", False, every_s=0.05))
    assert "Import of bad.safetensors failed" in lines[-1] and "safetensors" in lines[-1]
    (empty,) = list(import_model(lambda: client, "  ", "lora", False))
    assert "Paste the https://" in empty
    (bad,) = list(import_model(lambda: client, "https://example.com/", "lora", False))
    assert "give the model a name" in bad
