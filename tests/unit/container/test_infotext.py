"""Infotexts pinned to the WebUI's exact strings, key order from the manifest, and round trips."""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from inference_container.engine.infotext import (
    build_info,
    build_infotext,
    generation_params,
    model_name_for_infotext,
    parse_infotext,
    quote,
)
from inference_container.engine.request import parse_job
from inference_container.engine.seeds import batch_seeds
from inference_container.engine.types import GeneratedImage

MANIFEST = Path(__file__).resolve().parents[3] / ".." / "shared" / "webui" / "a1111-v1.10.1.json"
SHA = "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa"  # v1-5-pruned-emaonly
VAE_SHA = "735e4c3a447a3255760d7f86845f09f937809baa529c17370d83e4c3758f3c75"


def request(task="txt2img", *, checkpoint="v1-5-pruned-emaonly.safetensors", vae=None, **payload):
    models = {"checkpoint": {"name": checkpoint, "uri": "file:///m/x", "sha256": SHA, "size": 1}}
    if vae:
        models["vae"] = {"name": vae, "uri": "file:///m/v", "sha256": VAE_SHA, "size": 1}
    if task == "img2img":
        buf = io.BytesIO()
        Image.new("RGB", (64, 64)).save(buf, format="PNG")
        payload.setdefault("init_images", [base64.b64encode(buf.getvalue()).decode()])
    return parse_job({"id": "j", "task": task, "payload": payload, "models": models}, rng=random.Random(0))


def text(req, index=0, *, rng="GPU", version="v1.10.1"):
    seeds, subseeds = batch_seeds(req.seed, req.subseed, req.subseed_strength, req.image_count)
    return build_infotext(
        req,
        index=index,
        seed=seeds[index],
        subseed=subseeds[index],
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        rng=rng,
        version=version,
    )


# ---------------------------------------------------------------- exact strings


def test_api_txt2img_with_default_schedule() -> None:
    req = request(prompt="a cat", negative_prompt="blurry", steps=20, sampler_name="DPM++ 2M", seed=1234)
    assert text(req) == (
        "a cat\n"
        "Negative prompt: blurry\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 1234, Size: 512x512, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1"
    )


def test_no_negative_prompt_line_and_no_schedule_for_euler_a() -> None:
    req = request(
        prompt="a dog", steps=25, sampler_name="Euler a", seed=7, cfg_scale=5.5, width=768, height=512
    )
    assert text(req, version=None) == (
        "a dog\n"
        "Steps: 25, Sampler: Euler a, CFG scale: 5.5, Seed: 7, Size: 768x512, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"
    )


def test_explicit_automatic_schedule_on_a_sampler_without_default_is_written_as_sent() -> None:
    req = request(prompt="x", steps=20, sampler_name="Euler", scheduler="Automatic", seed=1)
    assert "Sampler: Euler, Schedule type: Automatic, CFG scale: 7.0" in text(req)


def test_combined_sampler_name() -> None:
    req = request(prompt="x", steps=30, sampler_name="DPM++ 2M SDE Karras", seed=3)
    assert "Steps: 30, Sampler: DPM++ 2M SDE, Schedule type: Karras, CFG scale" in text(req)


def test_batch_seeds_variation_seed_clip_skip_rng_vae() -> None:
    req = request(
        prompt="p",
        steps=20,
        seed=100,
        subseed=200,
        subseed_strength=0.3,
        batch_size=2,
        seed_resize_from_w=256,
        seed_resize_from_h=320,
        override_settings={"CLIP_stop_at_last_layers": 2},
        vae="vae-ft-mse-840000-ema-pruned.safetensors",
    )
    assert text(req, 1, rng="CPU") == (
        "p\n"
        "Steps: 20, Sampler: Euler, CFG scale: 7.0, Seed: 100, Size: 512x512, Model hash: 6ce0161689, "
        "Model: v1-5-pruned-emaonly, VAE hash: 735e4c3a44, VAE: vae-ft-mse-840000-ema-pruned.safetensors, "
        "Variation seed: 201, Variation seed strength: 0.3, Seed resize from: 256x320, Clip skip: 2, RNG: CPU, "
        "Version: v1.10.1"
    )


def test_img2img() -> None:
    req = request("img2img", prompt="castle", steps=20, seed=5, denoising_strength=0.6, sampler_name="DDIM")
    assert text(req, version=None) == (
        "castle\n"
        "Steps: 20, Sampler: DDIM, CFG scale: 7.0, Seed: 5, Size: 512x512, Model hash: 6ce0161689, "
        "Model: v1-5-pruned-emaonly, Denoising strength: 0.6"
    )


def test_hires_fix() -> None:
    req = request(
        prompt="tree",
        steps=20,
        seed=9,
        sampler_name="DPM++ 2M",
        enable_hr=True,
        hr_scale=2,
        hr_second_pass_steps=10,
        hr_upscaler="Latent",
        denoising_strength=0.5,
    )
    assert text(req) == (
        "tree\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 9, Size: 512x512, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.5, Hires upscale: 2.0, "
        "Hires steps: 10, Hires upscaler: Latent, Version: v1.10.1"
    )


def test_hires_resize_sampler_prompt_and_default_strength() -> None:
    req = request(
        prompt="tree",
        steps=20,
        seed=9,
        enable_hr=True,
        hr_resize_x=1024,
        hr_resize_y=768,
        hr_sampler_name="DPM++ 2M",
        hr_prompt="tree, detailed",
    )
    assert text(req, version=None) == (
        "tree\n"
        "Steps: 20, Sampler: Euler, CFG scale: 7.0, Seed: 9, Size: 512x512, Model hash: 6ce0161689, "
        'Model: v1-5-pruned-emaonly, Denoising strength: 0.7, Hires sampler: DPM++ 2M, Hires prompt: "tree, detailed", '
        "Hires schedule type: Karras, Hires resize: 1024x768"
    )


def test_quoting_rule() -> None:
    assert quote("Karras") == "Karras"
    assert quote("a, b") == '"a, b"'
    assert quote("a: b") == '"a: b"'
    assert quote("line\nbreak") == '"line\\nbreak"'
    assert quote('say "hi", ok') == '"say \\"hi\\", ok"'
    assert quote("ünïcode, x") == '"ünïcode, x"'  # ensure_ascii=False, like the WebUI
    req = request(prompt="x", seed=1, steps=20, checkpoint="models/odd,name.safetensors")
    assert 'Model: "odd,name"' in text(req)


def test_model_name_drops_folder_and_extension() -> None:
    assert model_name_for_infotext("v1-5-pruned-emaonly.safetensors") == "v1-5-pruned-emaonly"
    assert model_name_for_infotext("SD15/dreamshaper_8.safetensors") == "dreamshaper_8"
    assert model_name_for_infotext("noext") == "noext"


def test_prompt_lines_are_kept_and_whole_text_is_stripped() -> None:
    req = request(prompt="  line one\nline two ", negative_prompt="bad", seed=1, steps=20)
    out = text(req)
    assert out.startswith("line one\nline two \nNegative prompt: bad\nSteps: 20,")


# ---------------------------------------------------------------- key order


def _manifest_key_order() -> list[str]:
    if not MANIFEST.exists():
        pytest.skip(f"WebUI manifest not found at {MANIFEST} (it lives in ../shared/webui/)")
    return json.loads(MANIFEST.read_text())["infotext_key_order"]["key_order"]


def test_key_order_follows_the_manifest() -> None:
    order = _manifest_key_order()
    splice = order.index("**p.extra_generation_params")
    req = request(
        prompt="p",
        seed=1,
        subseed=2,
        subseed_strength=0.5,
        seed_resize_from_w=64,
        seed_resize_from_h=64,
        override_settings={"CLIP_stop_at_last_layers": 3},
        vae="v.pt",
        enable_hr=True,
        hr_upscaler="Lanczos",
        hr_second_pass_steps=5,
        sampler_name="DPM++ 2M",
    )
    keys = list(parse_infotext(text(req, rng="NV")).keys())[2:]
    fixed = [k for k in keys if k in order]
    assert fixed == sorted(fixed, key=order.index)
    extras = [k for k in keys if k not in order]
    assert extras == ["Hires upscale", "Hires steps", "Hires upscaler"]
    assert keys.index("Hires upscale") > keys.index("RNG")
    assert keys[-1] == "Version" and order.index("Version") > splice


def test_every_key_we_write_is_a_webui_key() -> None:
    if not MANIFEST.exists():
        pytest.skip(f"WebUI manifest not found at {MANIFEST}")
    manifest = json.loads(MANIFEST.read_text())
    known = set(manifest["infotext_key_order"]["key_order"]) | {
        k["key"] for k in manifest["extra_generation_params_keys"]
    }
    req = request(
        prompt="p",
        negative_prompt="n",
        seed=1,
        subseed_strength=0.5,
        seed_resize_from_w=64,
        seed_resize_from_h=64,
        vae="v.pt",
        enable_hr=True,
        hr_resize_x=1024,
        hr_upscaler="Lanczos",
        hr_second_pass_steps=5,
        hr_sampler_name="DPM++ 2M",
        hr_prompt="q",
        hr_negative_prompt="m",
        override_settings={"CLIP_stop_at_last_layers": 3},
    )
    params = generation_params(
        req, seed=1, subseed=2, prompt="p", negative_prompt="n", rng="CPU", version="v"
    )
    assert set(params) <= known


# ---------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    "payload",
    [
        {
            "prompt": "a (red:1.2) fox, forest",
            "negative_prompt": "lowres, bad anatomy",
            "seed": 11,
            "steps": 20,
        },
        {
            "prompt": "x",
            "seed": 1,
            "steps": 5,
            "sampler_name": "UniPC",
            "scheduler": "karras",
            "cfg_scale": 3.5,
        },
        {"prompt": "multi\nline", "seed": 2, "enable_hr": True, "hr_prompt": "a: b", "hr_scale": 1.5},
    ],
)
def test_round_trip(payload) -> None:
    req = request(**payload)
    parsed = parse_infotext(text(req))
    assert parsed["Prompt"] == req.prompt.strip()
    assert parsed["Negative prompt"] == req.negative_prompt
    assert parsed["Steps"] == str(req.steps)
    assert parsed["Sampler"] == req.sampler.name
    assert parsed["Seed"] == str(req.seed)
    assert parsed["CFG scale"] == str(req.cfg_scale)
    assert parsed["Size"] == f"{req.width}x{req.height}"
    assert parsed["Model hash"] == SHA[:10]
    if req.hires and req.hires.prompt:
        assert parsed["Hires prompt"] == req.hires.prompt


def test_parse_text_without_parameters() -> None:
    assert parse_infotext("just a prompt") == {"Prompt": "just a prompt", "Negative prompt": ""}


# ---------------------------------------------------------------- info object


INFO_KEYS = [
    "prompt", "all_prompts", "negative_prompt", "all_negative_prompts", "seed", "all_seeds", "subseed",
    "all_subseeds", "subseed_strength", "width", "height", "sampler_name", "cfg_scale", "steps", "batch_size",
    "restore_faces", "face_restoration_model", "sd_model_name", "sd_model_hash", "sd_vae_name", "sd_vae_hash",
    "seed_resize_from_w", "seed_resize_from_h", "denoising_strength", "extra_generation_params",
    "index_of_first_image", "infotexts", "styles", "job_timestamp", "clip_skip",
    "is_using_inpainting_conditioning", "version",
]  # fmt: skip


def test_build_info_has_the_webui_shape() -> None:
    req = request(
        prompt="p", negative_prompt="n", seed=10, subseed=20, batch_size=2, n_iter=2, sampler_name="DPM++ 2M"
    )
    seeds, subseeds = batch_seeds(req.seed, req.subseed, req.subseed_strength, req.image_count)
    images = [
        GeneratedImage(image=Image.new("RGB", (8, 8)), seed=s, subseed=ss, prompt="p", negative_prompt="n")
        for s, ss in zip(seeds, subseeds, strict=True)
    ]
    infotexts = [
        build_infotext(req, index=i, seed=im.seed, subseed=im.subseed, prompt="p", negative_prompt="n")
        for i, im in enumerate(images)
    ]
    info = build_info(req, images, infotexts, version="sdcloud-0.1.0", job_timestamp="20240101120000")
    assert list(info) == INFO_KEYS
    assert info["all_seeds"] == [10, 11, 12, 13] and info["seed"] == 10
    assert info["all_subseeds"] == [20, 21, 22, 23] and info["subseed"] == 20
    assert info["all_prompts"] == ["p"] * 4 and info["negative_prompt"] == "n"
    assert (info["sampler_name"], info["steps"], info["cfg_scale"], info["batch_size"]) == (
        "DPM++ 2M",
        50,
        7.0,
        2,
    )
    assert (info["sd_model_name"], info["sd_model_hash"]) == ("v1-5-pruned-emaonly", SHA[:10])
    assert info["sd_vae_name"] is None and info["styles"] == [] and info["index_of_first_image"] == 0
    assert info["extra_generation_params"] == {"Schedule type": "Karras"}
    assert info["infotexts"] == infotexts and "Seed: 13," in infotexts[3]
    assert info["job_timestamp"] == "20240101120000" and info["version"] == "sdcloud-0.1.0"
    json.dumps(info)  # serialisable as the response's "info" string


def test_build_info_hires_extra_params() -> None:
    req = request(prompt="p", seed=1, enable_hr=True, hr_upscaler="Latent")
    info = build_info(
        req, [GeneratedImage(Image.new("RGB", (8, 8)), 1, 2, "p", "")], ["t"], job_timestamp="x"
    )
    assert info["denoising_strength"] == 0.7
    assert info["extra_generation_params"] == {
        "Denoising strength": 0.7,
        "Hires prompt": None,
        "Hires negative prompt": None,
        "Hires schedule type": None,
        "Hires upscale": 2.0,
        "Hires upscaler": "Latent",
    }
