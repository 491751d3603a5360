import json
from pathlib import Path

import pytest

from middleware.domain import generation_rules as rules
from middleware.domain.generation_rules import (
    FIELDS_BY_TASK,
    SAMPLER_SCHEDULERS,
    UNSUPPORTED_SAMPLERS,
    defaults,
    resolve_sampler,
    validate_generation,
)

MANIFEST = Path(__file__).parents[3] / ".." / "shared" / "webui" / "a1111-v1.10.1.json"


@pytest.fixture(scope="module")
def manifest() -> dict:
    if not MANIFEST.is_file():
        pytest.skip(f"WebUI manifest not found at {MANIFEST} (CI provides ../shared/webui)")
    return json.loads(MANIFEST.read_text())


def fields(errors) -> list[str]:
    return [e.field for e in errors]


# --- the data against the WebUI manifest ------------------------------------------------------


@pytest.mark.parametrize("task", ["txt2img", "img2img"])
def test_fields_and_defaults_match_the_webui(manifest, task):
    expected = manifest[f"api_{task}_fields"]["fields"]
    ours = FIELDS_BY_TASK[task]
    assert [f["field"] for f in expected] == [name for name, _kind, _default in ours]
    for spec, (name, kind, default) in zip(expected, ours, strict=True):
        assert spec["default_json"] == default, name
        webui_type = spec["type"].removeprefix("Optional[").removesuffix("]")
        base = {"dict[str, Any]": "dict"}.get(webui_type, webui_type)
        # The WebUI types init_images as a bare list; we require strings (base64 or references).
        assert base == kind or (name == "init_images" and kind == "list[str]"), name


def test_sampler_names_and_aliases_match_the_webui(manifest):
    webui = {s["name"]: s["aliases"] for s in manifest["samplers"]["list"]}
    assert set(SAMPLER_SCHEDULERS) | set(UNSUPPORTED_SAMPLERS) == set(webui)
    assert not set(SAMPLER_SCHEDULERS) & set(UNSUPPORTED_SAMPLERS)
    for alias, name in rules.SAMPLER_ALIASES.items():
        assert alias in webui[name], alias
    for name in SAMPLER_SCHEDULERS:
        for alias in webui[name]:
            assert rules.SAMPLER_ALIASES[alias] == name


def test_scheduler_names_match_the_webui(manifest):
    webui = [(s["name"], s["label"], tuple(s["aliases"] or ())) for s in manifest["schedulers"]]
    assert list(rules.SCHEDULERS) == webui
    names = {name for name, _l, _a in rules.SCHEDULERS}
    for allowed in SAMPLER_SCHEDULERS.values():
        assert "automatic" in allowed and set(allowed) <= names


def test_limits_are_the_contract_values():
    assert rules.LIMITS["width"] == (64, 2048) and rules.LIMITS["height"] == (64, 2048)
    assert rules.LIMITS["size_multiple"] == 8
    assert rules.LIMITS["max_pixels"] == 2048 * 2048
    assert rules.LIMITS["steps"] == (1, 150)
    assert rules.LIMITS["batch_size"] == (1, 8)
    assert rules.LIMITS["n_iter"] == (1, 32)
    assert rules.LIMITS["cfg_scale"] == (0, 30)
    assert rules.LIMITS["denoising_strength"] == (0, 1)
    assert rules.LIMITS["max_body_bytes"] == 8 * 1024 * 1024
    assert rules.LIMITS["max_init_image_pixels"] == 2048 * 2048 * 4


def test_defaults_are_fresh_copies():
    first = defaults("txt2img")
    first["alwayson_scripts"]["x"] = 1
    assert defaults("txt2img")["alwayson_scripts"] == {}
    assert defaults("img2img")["denoising_strength"] == 0.75
    assert defaults("txt2img")["denoising_strength"] is None


# --- validation -------------------------------------------------------------------------------


def test_empty_txt2img_is_valid():
    assert validate_generation("txt2img", {}) == []


def test_a_full_realistic_request_is_valid():
    payload = {
        "prompt": "a cat",
        "negative_prompt": "blurry",
        "seed": 42,
        "sampler_name": "DPM++ 2M",
        "scheduler": "Karras",
        "steps": 30,
        "cfg_scale": 6.5,
        "width": 768,
        "height": 512,
        "batch_size": 2,
        "n_iter": 3,
        "enable_hr": True,
        "hr_scale": 2,
        "hr_upscaler": "Latent",
        "denoising_strength": 0.5,
        "alwayson_scripts": {"x": {"args": []}},
        "override_settings": {"CLIP_stop_at_last_layers": 2},
    }
    assert validate_generation("txt2img", payload) == []


def test_unknown_task_and_non_object_payload():
    assert fields(validate_generation("paint", {})) == ["task"]
    errors = validate_generation("txt2img", [1, 2])
    assert fields(errors) == ["payload"] and "JSON object" in errors[0].message


def test_unknown_field_is_named_with_a_suggestion():
    errors = validate_generation("txt2img", {"widht": 512})
    assert fields(errors) == ["payload.widht"]
    assert "unknown field" in errors[0].message and "'width'" in errors[0].message


def test_img2img_only_field_is_unknown_for_txt2img():
    assert fields(validate_generation("txt2img", {"init_images": ["x"]})) == ["payload.init_images"]


@pytest.mark.parametrize(
    ("field", "value", "word"),
    [
        ("width", "512", "integer"),
        ("width", True, "integer"),
        ("steps", 2.5, "integer"),
        ("cfg_scale", "7", "number"),
        ("cfg_scale", float("nan"), "number"),
        ("prompt", 5, "string"),
        ("restore_faces", 1, "true or false"),
        ("styles", ["a", 1], "list of strings"),
        ("override_settings", [], "JSON object"),
        ("script_args", {}, "list"),
    ],
)
def test_types(field, value, word):
    errors = validate_generation("txt2img", {field: value})
    assert fields(errors) == [f"payload.{field}"]
    assert word in errors[0].message


def test_integral_floats_count_as_integers():
    assert validate_generation("txt2img", {"width": 512.0, "steps": 20.0}) == []


def test_null_only_where_the_default_is_null():
    assert validate_generation("txt2img", {"eta": None, "styles": None, "sampler_name": None}) == []
    errors = validate_generation("txt2img", {"width": None})
    assert fields(errors) == ["payload.width"] and "null" in errors[0].message


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"width": 500}, "payload.width", "multiple of 8 (got 500)"),
        ({"height": 4100}, "payload.height", "multiple of 8"),
        ({"width": 56}, "payload.width", "between 64 and 2048"),
        ({"height": 2056}, "payload.height", "between 64 and 2048"),
        ({"steps": 0}, "payload.steps", "between 1 and 150"),
        ({"steps": 151}, "payload.steps", "between 1 and 150"),
        ({"batch_size": 9}, "payload.batch_size", "between 1 and 8"),
        ({"n_iter": 33}, "payload.n_iter", "between 1 and 32"),
        ({"cfg_scale": 30.5}, "payload.cfg_scale", "between 0 and 30"),
        ({"cfg_scale": -1}, "payload.cfg_scale", "between 0 and 30"),
        ({"denoising_strength": 1.5}, "payload.denoising_strength", "between 0 and 1"),
    ],
)
def test_ranges(payload, field, text):
    errors = validate_generation("txt2img", payload)
    assert fields(errors) == [field]
    assert text in errors[0].message


def test_range_edges_are_inclusive():
    payload = {"width": 2048, "height": 2048, "steps": 150, "batch_size": 8, "n_iter": 32, "cfg_scale": 30}
    assert validate_generation("txt2img", payload) == []
    assert validate_generation("txt2img", {"width": 64, "height": 64, "steps": 1, "cfg_scale": 0}) == []


def test_several_problems_are_all_reported():
    errors = validate_generation("txt2img", {"width": 500, "steps": 0, "sampler_name": "nope", "foo": 1})
    assert sorted(fields(errors)) == sorted(
        ["payload.foo", "payload.width", "payload.steps", "payload.sampler_name"]
    )


def test_hires_target_pixel_budget():
    ok = {"width": 1024, "height": 1024, "enable_hr": True, "hr_scale": 2}
    assert validate_generation("txt2img", ok) == []
    errors = validate_generation("txt2img", {**ok, "hr_scale": 2.5})
    assert fields(errors) == ["payload.hr_scale"] and "2560x2560" in errors[0].message
    errors = validate_generation("txt2img", {"enable_hr": True, "hr_resize_x": 4096, "hr_resize_y": 2048})
    assert fields(errors) == ["payload.hr_resize_x"]
    # Only the x size given: y follows the aspect ratio (512x512 -> 3000x3000).
    assert fields(validate_generation("txt2img", {"enable_hr": True, "hr_resize_x": 3000})) == [
        "payload.hr_resize_x"
    ]
    # Hires disabled: its fields are not checked against the budget.
    assert validate_generation("txt2img", {"hr_scale": 10}) == []


def test_hires_sampler_is_checked():
    errors = validate_generation("txt2img", {"enable_hr": True, "hr_sampler_name": "DPM fast"})
    assert fields(errors) == ["payload.hr_sampler_name"]
    errors = validate_generation(
        "txt2img", {"enable_hr": True, "sampler_name": "DDIM", "hr_scheduler": "karras"}
    )
    assert fields(errors) == ["payload.hr_scheduler"]


def test_img2img_needs_init_images():
    assert fields(validate_generation("img2img", {})) == ["payload.init_images"]
    assert fields(validate_generation("img2img", {"init_images": [""]})) == ["payload.init_images[0]"]
    assert validate_generation("img2img", {"init_images": ["aGVsbG8="], "denoising_strength": 0.3}) == []


# --- samplers and schedulers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "scheduler", "expected"),
    [
        ("DPM++ 2M", None, ("DPM++ 2M", "automatic")),
        ("dpm++ 2m", "Karras", ("DPM++ 2M", "karras")),
        ("k_euler_a", None, ("Euler a", "automatic")),
        ("k_euler_ancestral", "normal", ("Euler a", "normal")),
        ("DPM++ 2M Karras", None, ("DPM++ 2M", "karras")),
        ("DPM++ 2M SDE Karras", None, ("DPM++ 2M SDE", "karras")),
        ("DPM++ 2M SDE Exponential", "karras", ("DPM++ 2M SDE", "exponential")),  # the name wins
        ("Euler SGM Uniform", None, ("Euler", "sgm_uniform")),
        ("Euler", "SGMUniform", ("Euler", "sgm_uniform")),
        ("Euler", "Beta", ("Euler", "beta")),
        ("UniPC", "automatic", ("UniPC", "automatic")),
        ("LCM", "", ("LCM", "automatic")),
    ],
)
def test_resolve_sampler(given, scheduler, expected):
    sampler, resolved, problem = resolve_sampler(given, scheduler)
    assert problem is None
    assert (sampler, resolved) == expected


@pytest.mark.parametrize("name", UNSUPPORTED_SAMPLERS)
def test_unsupported_webui_samplers_are_refused_with_the_list(name):
    errors = validate_generation("txt2img", {"sampler_name": name})
    assert fields(errors) == ["payload.sampler_name"]
    assert "not supported" in errors[0].message and "DPM++ 2M" in errors[0].message


def test_unknown_sampler_lists_every_supported_one():
    errors = validate_generation("txt2img", {"sampler_name": "Magic"})
    assert fields(errors) == ["payload.sampler_name"]
    for name in SAMPLER_SCHEDULERS:
        assert name in errors[0].message


def test_unknown_and_unsupported_schedulers():
    errors = validate_generation("txt2img", {"sampler_name": "Euler", "scheduler": "wobbly"})
    assert fields(errors) == ["payload.scheduler"] and "known:" in errors[0].message
    errors = validate_generation("txt2img", {"sampler_name": "DDIM", "scheduler": "karras"})
    assert fields(errors) == ["payload.scheduler"] and "supported: automatic" in errors[0].message
    errors = validate_generation("txt2img", {"sampler_name": "Euler", "scheduler": "align_your_steps"})
    assert fields(errors) == ["payload.scheduler"]


def test_sampler_index_is_checked_when_sampler_name_is_absent():
    assert fields(validate_generation("txt2img", {"sampler_index": "Nope"})) == ["payload.sampler_index"]
    assert validate_generation("txt2img", {"sampler_index": "Nope", "sampler_name": "Euler"}) == []


def test_scheduler_without_sampler_uses_the_default_sampler():
    assert validate_generation("txt2img", {"scheduler": "karras"}) == []
