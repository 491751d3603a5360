"""Sync of the WebUI's model folders: the pure plan, the folder scan, the hash cache, and a run
against a real HTTP server with the library's API shape."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdcloud.client import SDCloudClient
from sdcloud.models.__main__ import main as cli_main
from sdcloud.models.local_folders import LocalModel, scan, webui_folders
from sdcloud.models.sync import HashCache, plan_sync, run_sync
from sdcloud.models.uploader import Uploader
from sdcloud.records import ModelInfo
from tests.extension.support.model_api_server import ModelApiServer

KEY = "sdk_TEST-sync-key-0123456789abcdef"


def local(name: str, type_: str = "lora", size: int = 10) -> LocalModel:
    return LocalModel(Path("/webui/models") / name, type_, size, 1)


def test_plan_skips_what_the_cloud_holds_and_local_duplicates() -> None:
    a, b, c, d = local("a.safetensors"), local("b.safetensors"), local("c.safetensors"), local("d.pt", "vae")
    cloud = [ModelInfo("cloud-a.safetensors", "lora", 10, "A" * 64), ModelInfo("x.safetensors", "checkpoint", 10, "d" * 64)]
    plan = plan_sync([(a, "a" * 64), (b, "b" * 64), (c, "b" * 64), (d, "d" * 64)], cloud)
    assert [p.model.name for p in plan.uploads] == ["b.safetensors", "d.pt"]  # d: same bytes, other type
    assert [(p.model.name, p.reason) for p in plan.skipped] == [
        ("a.safetensors", "in the cloud as cloud-a.safetensors"),
        ("c.safetensors", "same file as b.safetensors"),
    ]
    assert plan.upload_bytes == 20


def test_plan_of_nothing_is_empty() -> None:
    plan = plan_sync([], [ModelInfo("x", "lora", 1, "a" * 64)])
    assert plan.uploads == [] and plan.skipped == []


def make_webui(root: Path) -> dict[str, Path]:
    files = {
        "checkpoint": root / "models/Stable-diffusion/sub/base.safetensors",
        "lora": root / "models/Lora/ink.safetensors",
        "lyco": root / "models/LyCORIS/loha.safetensors",
        "embedding": root / "embeddings/bad-hands.pt",
        "vae": root / "models/VAE/clear.vae.pt",
        "controlnet": root / "models/ControlNet/canny.pth",
    }
    for i, path in enumerate(files.values()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hashlib.sha256(str(i).encode()).digest() * (50 + i))
    (root / "models/Lora/notes.txt").write_text("not a model")
    (root / "models/Lora/.hidden.safetensors").write_bytes(b"x" * 10)
    (root / "models/Lora/empty.safetensors").write_bytes(b"")
    return files


def test_scan_finds_each_model_with_its_type(tmp_path: Path) -> None:
    files = make_webui(tmp_path)
    found = {(m.type, m.path) for m in scan(webui_folders(tmp_path))}
    assert found == {("checkpoint", files["checkpoint"]), ("lora", files["lora"]), ("lora", files["lyco"]),
                     ("embedding", files["embedding"]), ("vae", files["vae"]), ("controlnet", files["controlnet"])}
    only = {m.type for m in scan(webui_folders(tmp_path).only(["vae", "embedding"]))}
    assert only == {"vae", "embedding"}
    with pytest.raises(ValueError, match="unknown model type"):
        webui_folders(tmp_path).only(["hypernetwork"])


def test_not_a_webui_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no models/ or embeddings/"):
        webui_folders(tmp_path)


def test_hash_cache_answers_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"abc" * 1000)
    st = path.stat()
    model = LocalModel(path, "lora", st.st_size, st.st_mtime_ns)
    cache = HashCache(tmp_path / "hashes.json")
    assert cache.sha256(model) == (hashlib.sha256(path.read_bytes()).hexdigest(), False)
    assert HashCache(tmp_path / "hashes.json").sha256(model)[1] is True  # persisted
    changed = LocalModel(path, "lora", st.st_size, st.st_mtime_ns + 1)
    assert HashCache(tmp_path / "hashes.json").get(changed) is None


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ModelApiServer]:
    srv = ModelApiServer(tmp_path / "server", part_size=4096, api_key=KEY).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_sync_uploads_then_a_second_sync_skips_all_and_hashes_nothing(api: ModelApiServer, tmp_path: Path) -> None:
    files = make_webui(tmp_path / "webui")
    client = SDCloudClient(api.url, KEY)
    cache = HashCache(tmp_path / "hashes.json")
    up = Uploader(client, state_dir=tmp_path / "state")
    folders = webui_folders(tmp_path / "webui")

    dry = run_sync(client, folders, dry_run=True, cache=cache, uploader=up)
    assert len(dry.plan.uploads) == 6 and dry.uploaded == [] and api.bytes_received == 0

    seen: list[int] = []
    report = run_sync(client, folders, cache=cache, uploader=up, progress=lambda _w, d, _t: seen.append(d))
    assert len(report.uploaded) == 6 and report.failed == [] and report.hashed_now == 0  # dry run hashed them
    assert api.bytes_received == sum(p.stat().st_size for p in files.values())
    assert seen[-1] == report.plan.upload_bytes

    again = run_sync(client, folders, cache=cache, uploader=up)
    assert again.uploaded == [] and len(again.plan.skipped) == 6 and again.hashed_now == 0
    assert all(p.reason.startswith("in the cloud as") for p in again.plan.skipped)


def test_cli_sync_dry_run_lists_and_sends_nothing(api: ModelApiServer, tmp_path: Path) -> None:
    make_webui(tmp_path / "webui")
    out, err = io.StringIO(), io.StringIO()
    settings = str(tmp_path / "cfg" / "ui-settings.json")
    saved = os.environ.get("SDCLOUD_UI_SETTINGS")  # the session's value (tests/extension/conftest.py)
    os.environ["SDCLOUD_UI_SETTINGS"] = settings  # the hash cache's folder
    try:
        code = cli_main(["sync", "--webui-dir", str(tmp_path / "webui"), "--types", "lora", "--dry-run"],
                        env={"SDCLOUD_API_URL": api.url, "SDCLOUD_API_KEY": KEY, "SDCLOUD_UI_SETTINGS": settings},
                        out=out, err=err)
    finally:
        if saved is None:
            os.environ.pop("SDCLOUD_UI_SETTINGS", None)
        else:
            os.environ["SDCLOUD_UI_SETTINGS"] = saved
    assert code == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert sorted(line.split()[3] for line in lines if line.startswith("would upload")) == [
        "ink.safetensors", "loha.safetensors"]
    assert lines[-1] == "0 uploaded, 0 skipped, 0 failed (dry run)" and api.bytes_received == 0
