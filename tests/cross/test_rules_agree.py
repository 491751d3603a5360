"""A payload the engine refuses is refused by the middleware at submit, in the same words.

The rules are one generated file (test_contract_copies.py holds the copies equal), so what is
left to check here is the equality itself: for a corpus of bad payloads — every way the issue
tracker has seen, every field with a wrong kind, every WebUI sampler and schedule-type name —
the middleware's first error is the engine's error, field and message; and everything the
contract accepts, the engine's own sampler implementation accepts too.
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from inference_container.contract import fields as engine_fields
from inference_container.engine.request import parse_job
from inference_container.errors import EngineError
from middleware.domain.generation_rules import validate_generation

MANIFEST = Path(__file__).resolve().parents[2].parent / "shared" / "webui" / "a1111-v1.10.1.json"
CHECKPOINT = {"name": "m.safetensors", "uri": "file:///models/m.safetensors", "sha256": "ab" * 32, "size": 10}
_WRONG_KIND = {"int": "7", "float": "x", "bool": 1, "str": 5, "str_list": [1], "list": {}, "dict": [],
               "image": 3, "image_list": "x"}


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def engine_verdict(task: str, payload: object) -> tuple[str, str] | None:
    try:
        parse_job({"id": "j1", "task": task, "payload": payload, "models": {"checkpoint": CHECKPOINT}},
                  rng=random.Random(0))
    except EngineError as exc:
        return exc.field or "", exc.message
    return None


def middleware_verdict(task: str, payload: object) -> tuple[str, str] | None:
    errors = validate_generation(task, payload)
    return (errors[0].field, errors[0].message) if errors else None


CORPUS: list[tuple[str, dict]] = [
    ("txt2img", {"restore_faces": True}),
    ("txt2img", {"styles": ["cinematic"]}),
    ("txt2img", {"alwayson_scripts": {"controlnet": {"args": []}}}),
    # LoRA tags and sd_vae are resolved against the catalog after these rules (model_refs); the
    # rules themselves refuse what no catalog can make right.
    ("txt2img", {"prompt": "a cat <hypernet:film:0.8>"}),
    ("txt2img", {"prompt": "a cat <lora:film:0.8:dyn=4>"}),
    ("txt2img", {"prompt": "a cat <lora:film:strong>"}),
    ("txt2img", {"negative_prompt": "blurry <lora:film:0.8>"}),
    ("txt2img", {"override_settings": {"sd_hypernetwork": "film.pt"}}),
    ("txt2img", {"s_churn": 1.0, "sampler_name": "Euler a"}),
    ("txt2img", {"eta": 0.3, "sampler_name": "DPM++ 2M"}),
    ("txt2img", {"enable_hr": True, "hr_upscaler": "R-ESRGAN 4x+"}),
    ("txt2img", {"enable_hr": True, "width": 2048, "height": 1024, "hr_scale": 2}),
    ("txt2img", {"enable_hr": True, "hr_sampler_name": "DPM fast"}),
    ("txt2img", {"script_name": "x/y/z plot"}),
    ("txt2img", {"refiner_checkpoint": "refiner.safetensors"}),
    ("txt2img", {"seed": 2**32}),
    ("txt2img", {"subseed_strength": 2}),
    ("txt2img", {"override_settings": {"CLIP_stop_at_last_layers": 100}}),
    ("txt2img", {"prompt": "bad \ud800 text"}),
    ("txt2img", {"cfg_scale": float("nan")}),
    ("txt2img", {f"unknown{i}": i for i in range(500)}),
    ("txt2img", {"width": 500, "steps": 0}),
    ("txt2img", {"width": 2048, "height": 4096}),
    ("img2img", {"init_images": ["not base64!"]}),
    ("img2img", {"init_images": [base64.b64encode(b"plain text").decode()]}),
    ("img2img", {"init_images": [_png()] * 1000}),
    ("img2img", {}),
    ("img2img", {"init_images": [_png()], "denoising_strength": 1.5}),
    ("img2img", {"init_images": [_png()], "resize_mode": 7}),
]


def _wrong_kinds() -> list[tuple[str, dict]]:
    cases = []
    for task in ("txt2img", "img2img"):
        for spec in engine_fields(task):
            if spec["kind"] in _WRONG_KIND:
                cases.append((task, {spec["name"]: _WRONG_KIND[spec["kind"]]}))
    return cases


@pytest.mark.parametrize(("task", "payload"), CORPUS + _wrong_kinds(), ids=lambda v: str(v)[:60])
def test_the_middleware_refuses_what_the_engine_refuses_in_its_words(task, payload):
    engine = engine_verdict(task, payload)
    assert engine is not None, "the corpus holds payloads the engine refuses"
    assert middleware_verdict(task, payload) == engine


def _manifest_names() -> tuple[list[str], list[str | None]]:
    if not MANIFEST.exists():
        pytest.skip(f"WebUI manifest not found at {MANIFEST} (CI has ../shared beside the checkout)")
    manifest = json.loads(MANIFEST.read_text())
    samplers = []
    for entry in manifest["samplers"]["list"]:
        samplers.extend([entry["name"], *(entry["aliases"] or [])])
    schedulers: list[str | None] = [None]
    for entry in manifest["schedulers"]:
        schedulers.extend([entry["name"], entry["label"], *(entry["aliases"] or [])])
    return samplers, schedulers


def test_every_webui_sampler_and_schedule_name_is_judged_alike():
    samplers, schedulers = _manifest_names()
    disagreements = []
    for sampler in samplers:
        for scheduler in schedulers:
            payload = {"sampler_name": sampler, "scheduler": scheduler, "steps": 4}
            engine, middleware = engine_verdict("txt2img", payload), middleware_verdict("txt2img", payload)
            if engine != middleware:
                disagreements.append((sampler, scheduler, engine, middleware))
    assert disagreements == []


@pytest.mark.parametrize("combined", ["DPM++ 2M Karras", "DPM++ 2M SDE Exponential", "Euler a", "k_dpmpp_2m"])
def test_combined_and_alias_names_are_accepted_by_both(combined):
    assert engine_verdict("txt2img", {"sampler_name": combined}) is None
    assert middleware_verdict("txt2img", {"sampler_name": combined}) is None
