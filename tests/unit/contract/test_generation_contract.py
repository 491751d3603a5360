"""The generation contract's checker (the master in tools/contract; every deployable carries a
byte-identical copy, see test_contract_copies.py)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tools.contract import generation_contract as contract
from tools.contract.generation_contract import PayloadRejected, check_payload, json_depth

MANIFEST = Path(__file__).resolve().parents[3].parent / "shared" / "webui" / "a1111-v1.10.1.json"


def problems(task: str, payload: object) -> list[tuple[str, str, str]]:
    try:
        check_payload(task, payload)
    except PayloadRejected as rejected:
        return [(p.field, p.message, p.code) for p in rejected.problems]
    return []


def first(task: str, payload: object) -> tuple[str, str, str]:
    found = problems(task, payload)
    assert found, f"{payload!r} was accepted"
    return found[0]


def png_b64(width: int = 64, height: int = 64, mode: str = "RGB") -> str:
    buf = io.BytesIO()
    Image.new(mode, (width, height), (10, 20, 30) if mode == "RGB" else (10, 20, 30, 0)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def noisy_png_b64() -> str:
    buf = io.BytesIO()
    Image.effect_noise((128, 128), 64).convert("RGB").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


# --- the data --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest() -> dict:
    if not MANIFEST.is_file():
        pytest.skip(f"WebUI manifest not found at {MANIFEST} (CI provides ../shared/webui)")
    return json.loads(MANIFEST.read_text())


@pytest.mark.parametrize("task", ["txt2img", "img2img"])
def test_fields_are_the_webuis_in_order_with_its_defaults(manifest, task):
    webui = manifest[f"api_{task}_fields"]["fields"]
    ours = contract.fields(task)
    assert [f["field"] for f in webui] == [f["name"] for f in ours]
    assert [f["default_json"] for f in webui] == [f["default"] for f in ours]


def test_every_field_is_used_ignored_or_refused_with_a_reason():
    for task in contract.TASKS:
        for spec in contract.fields(task):
            assert spec["handling"] in ("used", "ignored", "refused_unless_default"), spec
            if spec["handling"] == "refused_unless_default":
                assert spec["refused"]["reason"] and spec["refused"]["instead"]


def test_samplers_and_schedules_are_the_webuis(manifest):
    assert [s["name"] for s in contract.CONTRACT["samplers"]] == [s["name"] for s in manifest["samplers"]["list"]]
    assert [s["name"] for s in contract.CONTRACT["schedulers"]] == [s["name"] for s in manifest["schedulers"]]
    for sampler in contract.CONTRACT["samplers"]:
        assert sampler["supported"] or sampler["unsupported_reason"], sampler["name"]
        if sampler["supported"]:
            assert sampler["schedulers"][0] == "automatic"


# --- what is accepted ----------------------------------------------------------------------------


def test_empty_txt2img_is_all_defaults():
    checked = check_payload("txt2img", {})
    assert checked.values["steps"] == 50 and checked.values["width"] == 512
    assert checked.sampler.sampler == "Euler" and checked.sampler.scheduler_asked is None
    assert checked.hires is None and checked.clip_skip == 1


def test_a_realistic_request_passes():
    payload = {
        "prompt": "a (cat:1.2) on a mat, BREAK, watercolor",
        "negative_prompt": "blurry",
        "seed": 1234,
        "sampler_name": "DPM++ 2M",
        "scheduler": "karras",
        "steps": 25,
        "cfg_scale": 6.5,
        "width": 768,
        "height": 512,
        "batch_size": 2,
        "n_iter": 2,
        "override_settings": {"CLIP_stop_at_last_layers": 2, "sd_model_checkpoint": "x"},
        "enable_hr": True,
        "hr_scale": 1.5,
        "hr_upscaler": "Latent",
        "denoising_strength": 0.5,
        "save_images": True,
        "send_images": True,
    }
    checked = check_payload("txt2img", payload)
    assert checked.clip_skip == 2
    assert checked.hires is not None and (checked.hires.target_width, checked.hires.target_height) == (1152, 768)
    assert checked.sampler.scheduler_asked == "Karras"


def test_null_means_the_default_and_integral_floats_are_integers():
    checked = check_payload("txt2img", {"width": None, "steps": 20.0, "styles": None, "alwayson_scripts": {}})
    assert checked.values["width"] == 512 and checked.values["steps"] == 20


def test_combined_sampler_names_split_like_the_webui():
    checked = check_payload("txt2img", {"sampler_name": "DPM++ 2M Karras"})
    assert (checked.sampler.sampler, checked.sampler.scheduler) == ("DPM++ 2M", "karras")
    assert checked.sampler.scheduler_asked is None  # the suffix names the sampler's own default
    checked = check_payload("txt2img", {"sampler_name": "k_euler_a"})
    assert checked.sampler.sampler == "Euler a"


def test_one_init_image_serves_the_batch_and_several_set_its_size():
    one = check_payload("img2img", {"init_images": [png_b64()], "batch_size": 3})
    assert one.batch_size == 3 and one.init_images[0].size == (64, 64)
    two = check_payload("img2img", {"init_images": [png_b64(), png_b64()], "batch_size": 4})
    assert two.batch_size == 2


def test_transparent_init_images_are_flattened_onto_white():
    checked = check_payload("img2img", {"init_images": [png_b64(mode="RGBA")]})
    assert checked.init_images[0].mode == "RGB" and checked.init_images[0].getpixel((0, 0)) == (255, 255, 255)


# --- what is refused, with the field and what to do -----------------------------------------------


@pytest.mark.parametrize(
    "payload, field, words, code",
    [
        ({"restore_faces": True}, "payload.restore_faces", "face restoration", "unsupported"),
        ({"styles": ["cinematic"]}, "payload.styles", "expand the styles into the prompt", "unsupported"),
        ({"alwayson_scripts": {"controlnet": {"args": []}}}, "payload.alwayson_scripts.controlnet", "remove", "unsupported"),
        ({"prompt": "a cat <hypernet:film:0.8>"}, "payload.prompt", "<hypernet:film:0.8>", "unsupported"),
        ({"prompt": "a cat <lora:film:1:1:dyn=8>"}, "payload.prompt", "dynamic LoRA dimension", "unsupported"),
        ({"prompt": "a cat <lora:film:x>"}, "payload.prompt", "'x' is not a number", "unsupported"),
        ({"negative_prompt": "<lora:film:0.8>"}, "payload.negative_prompt", "from the prompt only", "unsupported"),
        ({"override_settings": {"sd_hypernetwork": "x.pt"}}, "payload.override_settings.sd_hypernetwork",
         "sd_hypernetwork", "unsupported"),
        ({"enable_hr": True, "hr_upscaler": "R-ESRGAN 4x+"}, "payload.hr_upscaler", "choose one of: Latent", "unsupported"),
        ({"enable_hr": True, "width": 2048, "height": 1024, "hr_scale": 2}, "payload.hr_scale", "hires fix target", "invalid"),
        ({"script_name": "x/y/z plot"}, "payload.script_name", "scripts", "unsupported"),
        ({"refiner_checkpoint": "sdxl_refiner"}, "payload.refiner_checkpoint", "refiner", "unsupported"),
        ({"seed": 2**32}, "payload.seed", "-1 (random) or between 0 and 4294967295", "invalid"),
        ({"subseed_strength": 2}, "payload.subseed_strength", "between 0 and 1", "invalid"),
        ({"override_settings": {"CLIP_stop_at_last_layers": 100}}, "payload.override_settings.CLIP_stop_at_last_layers", "between 1 and 12", "invalid"),
        ({"override_settings": {"eta_noise_seed_delta": -1}}, "payload.override_settings.eta_noise_seed_delta", "between 0 and 4294967295", "invalid"),
        ({"width": 500}, "payload.width", "multiple of 8", "invalid"),
        ({"steps": 0}, "payload.steps", "between 1 and 150", "invalid"),
        ({"cfg_scale": float("nan")}, "payload.cfg_scale", "finite number (got nan)", "invalid"),
        ({"steps": float("nan")}, "payload.steps", "integer (got nan)", "invalid"),
        ({"steps": "20"}, "payload.steps", "integer (got the string '20')", "invalid"),
        ({"tiling": "yes"}, "payload.tiling", "true or false", "invalid"),
        ({"sampler_name": "Magic"}, "payload.sampler_name", "supported samplers: ", "invalid"),
        ({"sampler_name": "DPM fast"}, "payload.sampler_name", "is not supported", "unsupported"),
        ({"scheduler": "wobbly"}, "payload.scheduler", "schedule types for 'Euler'", "invalid"),
        ({"sampler_index": "Nope"}, "payload.sampler_index", "unknown sampler", "invalid"),
        ({"prompt": "bad \ud800 text"}, "payload.prompt", "lone surrogate (U+D800) at character 4", "invalid"),
        ({"prompt": "x" * 40_000}, "payload.prompt", "the limit is 32768", "too_large"),
        ({"widht": 512}, "payload.widht", "did you mean 'width'", "invalid"),
        ({"init_images": ["x"]}, "payload.init_images", "img2img field", "invalid"),
    ],
)
def test_refusals_name_the_field_and_say_what_to_do(payload, field, words, code):
    got_field, message, got_code = first("txt2img", payload)
    assert (got_field, got_code) == (field, code), message
    assert words in message


@pytest.mark.parametrize(
    "images, field, words, code",
    [
        ([], "payload.init_images", "at least one image", "invalid"),
        (["not base64!!"], "payload.init_images[0]", "not valid base64", "invalid"),
        ([base64.b64encode(b"hello world").decode()], "payload.init_images[0]", "not a readable image", "invalid"),
        (["https://example.com/cat.png"], "payload.init_images[0]", "not fetched", "unsupported"),
        ([png_b64()] * 1000, "payload.init_images", "got 1000 init images for batch_size 1", "invalid"),
        ([noisy_png_b64()[:2000]], "payload.init_images[0]", "truncated or corrupt", "invalid"),
    ],
)
def test_bad_init_images(images, field, words, code):
    got_field, message, got_code = first("img2img", {"init_images": images})
    assert (got_field, got_code) == (field, code), message
    assert words in message


def test_decompression_bomb_is_refused_from_its_header():
    # A 1-bit PNG of 20000x20000: small on the wire, 400 M pixels decoded.
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, "PNG")
    field, message, code = first("img2img", {"init_images": [base64.b64encode(buf.getvalue()).decode()]})
    assert (field, code) == ("payload.init_images[0]", "too_large") and "pixels" in message


def test_over_limit_image_bytes_are_refused_before_decoding(monkeypatch):
    monkeypatch.setitem(contract.LIMITS, "max_init_image_bytes", 1000)
    field, message, code = first("img2img", {"init_images": ["A" * 4000]})
    assert code == "too_large" and "1000 bytes" in message


def test_sampler_parameters_are_refused_by_name_where_the_sampler_ignores_them():
    users = [s["name"] for s in contract.CONTRACT["samplers"] if s["supported"] and "eta" in s["parameters"]]
    assert "Euler a" in users and "DDIM" in users
    field, message, code = first("txt2img", {"sampler_name": "Euler", "eta": 0.5})
    assert (field, code) == ("payload.eta", "unsupported") and "Euler a" in message
    assert check_payload("txt2img", {"sampler_name": "Euler a", "eta": 0.5}).sampler_params == {"eta": 0.5}
    # The WebUI's own defaults change nothing, so they pass for any sampler.
    assert check_payload("txt2img", {"sampler_name": "Euler a", "s_churn": 0.0, "s_noise": 1.0}).sampler_params == {}


def test_several_problems_are_reported_together():
    found = problems("txt2img", {"width": 500, "steps": 0, "sampler_name": "nope", "foo": 1})
    assert [f for f, _, _ in found] == ["payload.foo", "payload.steps", "payload.width", "payload.sampler_name"]


def test_unknown_keys_are_capped_and_counted():
    payload = {f"key{i}": 1 for i in range(100_000)}
    found = problems("txt2img", payload)
    assert len(found) <= contract.LIMITS["max_problems"] + 1
    assert "100000 in all" in found[-1][1]
    assert len(json.dumps(found)) < 10_000


def test_refused_defaults_pass():
    assert problems("txt2img", {"restore_faces": False, "styles": [], "script_name": "", "refiner_checkpoint": "None"}) == []


def test_hires_fields_are_only_checked_with_the_hires_fix_on():
    assert problems("txt2img", {"hr_scale": 100, "hr_upscaler": "R-ESRGAN 4x+"}) == []


def test_non_objects_and_unknown_tasks():
    assert first("paint", {})[0] == "task"
    assert first("txt2img", [1, 2])[0] == "payload"


# --- JSON nesting ----------------------------------------------------------------------------------


def test_json_depth_is_measured_without_recursion():
    assert json_depth(b"[]") == 1
    assert json_depth(json.dumps({"a": "[[[{{", "b": [1, {"c": []}]})) == 4
    assert json_depth("[" * 100_000 + "]" * 100_000) == 100_000
    assert json_depth(json.dumps({"s": 'quote \\" and [ inside'})) == 1
    assert contract.depth_problem("[" * 1000 + "]" * 1000) is not None
    assert contract.depth_problem(json.dumps({"payload": {"override_settings": {}}})) is None


def test_lora_tags_follow_a1111s_grammar():
    tags, problems = contract.network_tags("<lora:a> <lora:b:0.5> <lyco:c:0.8:0.2> <lora:d:te=0.3:unet=0.9> <lora:e:unet=0>")
    assert problems == []
    assert [(t.kind, t.name, t.te_multiplier, t.unet_multiplier) for t in tags] == [
        ("lora", "a", 1.0, 1.0), ("lora", "b", 0.5, 0.5), ("lyco", "c", 0.8, 0.2), ("lora", "d", 0.3, 0.9),
        ("lora", "e", 1.0, 0.0)]


def test_lora_tags_must_name_a_carried_lora_when_the_list_is_given():
    check_payload("txt2img", {"prompt": "<lora:film:0.8>"}, loras=["styles/film.safetensors"])
    with pytest.raises(PayloadRejected, match="no reference in the job's models.loras"):
        check_payload("txt2img", {"prompt": "<lora:film:0.8>"}, loras=["grain.safetensors"])
