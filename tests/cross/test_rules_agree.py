"""The middleware and the engine each keep their own generation rules (DESIGN §2: the deployables
never import each other). These tests hold the two copies equal, over the WebUI manifest's full
sampler and scheduler lists, so a job the middleware accepts is one the engine can run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference_container.engine import samplers as engine_samplers
from inference_container.engine.fields import fields_for
from inference_container.engine.request import DEFAULT_LIMITS
from inference_container.errors import InvalidRequest
from middleware.domain import generation_rules as middleware_rules

MANIFEST = Path(__file__).resolve().parents[2].parent / "shared" / "webui" / "a1111-v1.10.1.json"


@pytest.fixture(scope="module")
def manifest() -> dict:
    if not MANIFEST.exists():
        pytest.skip(f"WebUI manifest not found at {MANIFEST} (CI has ../shared beside the checkout)")
    return json.loads(MANIFEST.read_text())


def _engine_accepts(sampler: str, scheduler: str | None) -> tuple[str, str] | None:
    try:
        spec = engine_samplers.resolve_sampler(sampler, scheduler)
    except InvalidRequest:
        return None
    return spec.name, engine_samplers.requested_scheduler(sampler, scheduler) or "automatic"


def _middleware_accepts(sampler: str, scheduler: str | None) -> tuple[str, str] | None:
    canonical, resolved, problem = middleware_rules.resolve_sampler(sampler, scheduler)
    return None if problem else (canonical, resolved)


def test_same_sampler_table_on_both_sides():
    engine_table = {name: set(schedulers) for name, schedulers in engine_samplers.supported_samplers().items()}
    middleware_table = {name: set(schedulers) for name, schedulers in middleware_rules.SAMPLER_SCHEDULERS.items()}
    assert engine_table == middleware_table


def test_every_manifest_sampler_and_schedule_is_judged_alike(manifest):
    names = []
    for entry in manifest["samplers"]["list"]:
        names.append(entry["name"])
        names.extend(entry["aliases"] or [])
    schedulers: list[str | None] = [None]
    for entry in manifest["schedulers"]:
        schedulers.extend([entry["name"], entry["label"], *(entry["aliases"] or [])])
    disagreements = []
    for name in names:
        for scheduler in schedulers:
            engine = _engine_accepts(name, scheduler)
            middleware = _middleware_accepts(name, scheduler)
            if (engine is None) != (middleware is None) or (engine and engine[0] != middleware[0]):
                disagreements.append((name, scheduler, engine, middleware))
    assert disagreements == []


@pytest.mark.parametrize("combined", ["DPM++ 2M Karras", "DPM++ 2M SDE Exponential", "Euler a", "DDIM"])
def test_old_combined_names_resolve_alike(combined):
    assert _engine_accepts(combined, None) is not None
    assert _engine_accepts(combined, None)[0] == _middleware_accepts(combined, None)[0]


def test_same_limits_on_both_sides():
    limits = DEFAULT_LIMITS
    assert middleware_rules.MIN_SIDE == limits.min_side
    assert middleware_rules.MAX_SIDE == limits.max_side
    assert middleware_rules.SIZE_MULTIPLE == limits.size_multiple
    assert middleware_rules.MAX_PIXELS == limits.max_pixels
    assert middleware_rules.MAX_INIT_IMAGE_PIXELS == limits.max_init_image_pixels
    assert middleware_rules.RANGES["steps"] == (limits.min_steps, limits.max_steps)
    assert middleware_rules.RANGES["batch_size"] == (1, limits.max_batch_size)
    assert middleware_rules.RANGES["n_iter"] == (1, limits.max_n_iter)
    assert middleware_rules.RANGES["cfg_scale"] == (limits.min_cfg_scale, limits.max_cfg_scale)
    assert middleware_rules.RANGES["denoising_strength"] == (
        limits.min_denoising_strength, limits.max_denoising_strength)


@pytest.mark.parametrize("task", ["txt2img", "img2img"])
def test_same_fields_and_defaults_on_both_sides(task):
    engine_fields = {name: spec.default for name, spec in fields_for(task).items()}
    middleware_fields = middleware_rules.defaults(task)
    assert engine_fields == middleware_fields


def test_the_ui_offers_what_the_engine_runs():
    from inference_container.engine.request import SUPPORTED_HR_UPSCALERS
    from sdcloud import limits as ui_limits
    from sdcloud import samplers as ui_samplers

    assert list(ui_samplers.SAMPLERS) == list(engine_samplers.supported_samplers())
    assert {name: set(allowed) for name, allowed in ui_samplers.SAMPLER_SCHEDULES.items()} == {
        name: set(allowed) for name, allowed in engine_samplers.supported_samplers().items()
    }
    assert set(ui_samplers.HIRES_UPSCALERS) == set(SUPPORTED_HR_UPSCALERS)
    assert {name for _label, name in ui_samplers.SCHEDULERS} == {
        name for name, _label, _aliases in middleware_rules.SCHEDULERS
    }
    assert (ui_limits.MIN_SIDE, ui_limits.MAX_SIDE, ui_limits.MAX_PIXELS) == (
        DEFAULT_LIMITS.min_side, DEFAULT_LIMITS.max_side, DEFAULT_LIMITS.max_pixels)
    assert ui_limits.STEPS == (DEFAULT_LIMITS.min_steps, DEFAULT_LIMITS.max_steps)
    assert ui_limits.BATCH_SIZE == (1, DEFAULT_LIMITS.max_batch_size)
    assert ui_limits.N_ITER == (1, DEFAULT_LIMITS.max_n_iter)
