"""Our copy of the WebUI API fields equals the manifest's, name for name and default for default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference_container.engine.fields import IMG2IMG_FIELDS, TXT2IMG_FIELDS, fields_for

MANIFEST = Path(__file__).resolve().parents[3] / ".." / "shared" / "webui" / "a1111-v1.10.1.json"

# How the manifest's type strings map to our kinds.
KIND_OF_TYPE = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "list": "list",
    "list[str]": "str_list",
    "dict": "dict",
    "dict[str, Any]": "dict",
    "Any": "any",
}


def _manifest_fields(key: str) -> list[dict]:
    if not MANIFEST.exists():
        pytest.skip(f"WebUI manifest not found at {MANIFEST} (it lives in ../shared/webui/)")
    return json.loads(MANIFEST.read_text())[key]["fields"]


def _kind(field: dict) -> str:
    declared = field.get("overridden_type") or field["type"]
    if declared.startswith("Optional[") and declared.endswith("]"):
        declared = declared[len("Optional[") : -1]
    if field.get("annotation") == "Image":
        return "image"
    return KIND_OF_TYPE[declared]


@pytest.mark.parametrize(
    ("key", "ours"),
    [("api_txt2img_fields", TXT2IMG_FIELDS), ("api_img2img_fields", IMG2IMG_FIELDS)],
)
def test_fields_equal_the_manifest(key: str, ours) -> None:
    theirs = _manifest_fields(key)
    assert [f.name for f in ours] == [f["field"] for f in theirs]
    for mine, field in zip(ours, theirs, strict=True):
        assert mine.default == field["default_json"], mine.name
        assert type(mine.default) is type(field["default_json"]), mine.name
        assert mine.kind == _kind(field), mine.name


def test_lookup_by_task() -> None:
    assert fields_for("txt2img")["steps"].default == 50
    assert fields_for("img2img")["denoising_strength"].default == 0.75
    assert fields_for("txt2img")["denoising_strength"].default is None
    assert "init_images" not in fields_for("txt2img")
    assert "enable_hr" not in fields_for("img2img")
    with pytest.raises(KeyError):
        fields_for("extras")
