"""Job document validation: every bad input named precisely, and the good paths resolved."""

from __future__ import annotations

import base64
import copy
import io
import random

import pytest
from PIL import Image

from inference_container.contract import LIMITS as CONTRACT_LIMITS
from inference_container.contract import fields
from inference_container.engine.request import hires_target, parse_job
from inference_container.engine.seeds import MAX_SEED
from inference_container.errors import InvalidRequest, PayloadTooLarge, UnsupportedFeature

SHA = "0123456789abcdef" * 4
CHECKPOINT = {
    "name": "tiny-sd15.safetensors",
    "uri": "file:///models/tiny-sd15.safetensors",
    "sha256": SHA,
    "size": 1234,
}


def png_b64(size=(64, 64), color=(10, 20, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def job(task: str = "txt2img", **payload) -> dict:
    doc = {"id": "job-1", "task": task, "payload": payload, "models": {"checkpoint": dict(CHECKPOINT)}}
    if task == "img2img" and "init_images" not in payload:
        payload["init_images"] = [png_b64()]
    return doc


def parse(doc: dict):
    return parse_job(doc, rng=random.Random(0))


def fails(doc, error=InvalidRequest, limits: dict | None = None):
    """The error parse_job raises, under the contract's limits changed by ``limits``."""
    saved = dict(CONTRACT_LIMITS)
    CONTRACT_LIMITS.update(limits or {})
    try:
        with pytest.raises(error) as info:
            parse(doc)
    finally:
        CONTRACT_LIMITS.clear()
        CONTRACT_LIMITS.update(saved)
    return info.value


# ---------------------------------------------------------------- good paths


def test_minimal_txt2img_gets_webui_defaults() -> None:
    req = parse(job(prompt="a cat"))
    assert (req.job_id, req.task, req.prompt, req.negative_prompt) == ("job-1", "txt2img", "a cat", "")
    assert (req.width, req.height, req.steps, req.cfg_scale) == (512, 512, 50, 7.0)
    assert (req.batch_size, req.n_iter, req.image_count) == (1, 1, 1)
    assert (req.sampler.name, req.sampler.scheduler) == ("Euler", "automatic")
    assert req.clip_skip == 1
    assert req.denoising_strength is None and req.hires is None and req.init_images == ()
    assert req.checkpoint.name == "tiny-sd15.safetensors" and req.checkpoint.short_hash == SHA[:10]
    assert req.vae is None and req.output_prefix is None


def test_random_seeds_are_drawn_like_the_webui_and_reproducibly() -> None:
    a, b = parse(job()), parse(job())
    assert (a.seed, a.subseed) == (b.seed, b.subseed)
    assert 0 <= a.seed < MAX_SEED and 0 <= a.subseed < MAX_SEED
    rng = random.Random(0)
    assert (a.seed, a.subseed) == (rng.randrange(MAX_SEED), rng.randrange(MAX_SEED))


def test_explicit_values_are_kept() -> None:
    req = parse(
        job(
            prompt="p",
            negative_prompt="n",
            seed=42,
            subseed=7,
            subseed_strength=0.25,
            width=768,
            height=256,
            steps=20,
            cfg_scale=5,
            batch_size=2,
            n_iter=3,
            sampler_name="DPM++ SDE",
            scheduler="Karras",
            eta=0.5,
            seed_resize_from_w=512,
            seed_resize_from_h=512,
        )
    )
    assert (req.seed, req.subseed, req.subseed_strength) == (42, 7, 0.25)
    assert (req.width, req.height, req.steps, req.cfg_scale, req.eta) == (768, 256, 20, 5.0, 0.5)
    assert isinstance(req.cfg_scale, float)
    assert (req.batch_size, req.n_iter, req.image_count) == (2, 3, 6)
    assert (req.sampler.name, req.sampler.scheduler_label, req.sampler.eta) == ("DPM++ SDE", "Karras", 0.5)
    assert (req.seed_resize_from_w, req.seed_resize_from_h) == (512, 512)


def test_null_means_the_default_and_integral_floats_are_integers() -> None:
    req = parse(job(steps=None, width=640.0, sampler_name=None))
    assert (req.steps, req.width, req.sampler.name) == (50, 640, "Euler")


def test_sampler_index_is_used_when_sampler_name_is_absent() -> None:
    assert parse(job(sampler_index="k_euler_a")).sampler.name == "Euler a"
    assert parse(job(sampler_index="Euler a", sampler_name="DDIM")).sampler.name == "DDIM"
    err = fails(job(sampler_index="nope"))
    assert err.field == "payload.sampler_index"


def test_combined_sampler_name_echoes_its_schedule_type() -> None:
    req = parse(job(sampler_name="DPM++ 2M SDE Karras"))
    assert (req.sampler.name, req.sampler.scheduler) == ("DPM++ 2M SDE", "karras")
    assert req.parameters["sampler_name"] == "DPM++ 2M SDE"
    assert req.parameters["scheduler"] == "Karras"


def test_parameters_echo_the_payload_with_defaults_filled() -> None:
    req = parse(job(prompt="x", steps=20))
    params = req.parameters
    assert list(params) == [f["name"] for f in fields("txt2img")]
    assert params["prompt"] == "x" and params["steps"] == 20 and params["cfg_scale"] == 7.0
    assert params["seed"] == -1  # the request as sent; resolved seeds go into info
    assert params["sampler_name"] == "Euler" and params["sampler_index"] is None


def test_ignored_saving_fields_are_accepted() -> None:
    req = parse(
        job(
            send_images=True,
            save_images=True,
            do_not_save_samples=True,
            do_not_save_grid=True,
            override_settings_restore_afterwards=False,
            comments={"note": "hi"},
            force_task_id="task(abc)",
            script_args=[1, 2],
        )
    )
    assert req.parameters["save_images"] is True


def test_override_settings_clip_skip_and_informational_keys() -> None:
    req = parse(
        job(
            override_settings={
                "CLIP_stop_at_last_layers": 2,
                "sd_model_checkpoint": "x [abc]",
                "eta_noise_seed_delta": 0,
            }
        )
    )
    assert req.clip_skip == 2


def test_vae_and_output_prefix() -> None:
    doc = job()
    doc["models"]["vae"] = {
        "name": "vae.safetensors",
        "uri": "s3://bucket/models/abc",
        "sha256": "f" * 64,
        "size": 9,
    }
    doc["models"]["loras"] = []
    doc["models"]["embeddings"] = []
    doc["output"] = {"prefix": "jobs/job-1/"}
    req = parse(doc)
    assert req.vae is not None and req.vae.uri == "s3://bucket/models/abc"
    assert req.output_prefix == "jobs/job-1/"


def test_img2img_with_one_image_reused_for_the_batch() -> None:
    req = parse(job("img2img", batch_size=3, resize_mode=2))
    assert req.task == "img2img"
    assert len(req.init_images) == 1 and req.init_images[0].mode == "RGB"
    assert req.batch_size == 3
    assert req.denoising_strength == 0.75  # img2img API default
    assert req.resize_mode == 2
    assert req.parameters["init_images"] is None  # never echoed back


def test_img2img_with_fewer_images_than_batch_shrinks_the_batch_like_the_webui() -> None:
    req = parse(job("img2img", batch_size=4, init_images=[png_b64(), png_b64()]))
    assert req.batch_size == 2 and len(req.init_images) == 2


def test_img2img_accepts_the_webui_ui_inpainting_defaults_without_a_mask() -> None:
    req = parse(
        job(
            "img2img",
            mask_blur=4,
            inpainting_fill=1,
            inpaint_full_res=False,
            inpaint_full_res_padding=32,
            image_cfg_scale=1.5,
        )
    )
    assert req.task == "img2img"


def test_hires_fix_by_scale() -> None:
    req = parse(
        job(
            enable_hr=True,
            hr_scale=1.5,
            hr_second_pass_steps=10,
            hr_upscaler="Lanczos",
            denoising_strength=0.55,
        )
    )
    hires = req.hires
    assert hires is not None
    assert (hires.target_width, hires.target_height, hires.scale) == (768, 768, 1.5)
    assert (hires.second_pass_steps, hires.upscaler, hires.denoising_strength) == (10, "Lanczos", 0.55)
    assert req.denoising_strength == 0.55
    assert hires.sampler is None


def test_hires_defaults() -> None:
    hires = parse(job(enable_hr=True)).hires
    assert (hires.target_width, hires.target_height) == (1024, 1024)  # hr_scale 2.0
    assert hires.upscaler == "Latent"
    assert hires.denoising_strength == 0.7


@pytest.mark.parametrize(
    ("size", "resize", "expected"),
    [
        ((512, 768), (1024, 0), (1024, 1536, 1024, 1536)),  # keep aspect from width
        ((512, 768), (0, 1024), (682, 1024, 682, 1024)),  # keep aspect from height
        ((512, 768), (1024, 1024), (1024, 1536, 1024, 1024)),  # cover, then crop to exact
        ((768, 512), (1024, 1024), (1536, 1024, 1024, 1024)),
    ],
)
def test_hires_target_like_the_webui(size, resize, expected) -> None:
    assert hires_target(*size, 2.0, *resize) == expected


def test_hires_exact_size_and_own_sampler() -> None:
    req = parse(
        job(
            enable_hr=True,
            width=512,
            height=768,
            hr_resize_x=1024,
            hr_resize_y=1024,
            hr_sampler_name="Euler a",
        )
    )
    assert (req.hires.target_width, req.hires.target_height) == (1024, 1024)
    assert req.hires.sampler.name == "Euler a"


def test_hires_inherits_the_requested_schedule_type() -> None:
    req = parse(job(enable_hr=True, sampler_name="Euler", scheduler="karras", hr_sampler_name="DPM++ 2M SDE"))
    assert req.hires.sampler.scheduler == "karras"
    req = parse(job(enable_hr=True, sampler_name="Euler", hr_sampler_name="DPM++ 2M SDE"))
    assert req.hires.sampler.scheduler == "exponential"  # automatic → the hires sampler's default
    req = parse(
        job(
            enable_hr=True,
            sampler_name="Euler",
            hr_sampler_name="Use same sampler",
            hr_scheduler="Use same scheduler",
        )
    )
    assert req.hires.sampler is None


def test_hires_fields_ignored_when_hires_is_off() -> None:
    assert parse(job(hr_scale=100.0, hr_upscaler="ESRGAN_4x")).hires is None


# ---------------------------------------------------------------- envelope errors


@pytest.mark.parametrize("doc", [None, [], "job", 3])
def test_job_must_be_an_object(doc) -> None:
    assert "JSON object" in fails(doc).message


def test_unknown_task() -> None:
    err = fails(job(task="extras"))
    assert err.field == "task" and "unknown task" in err.message and "txt2img" in err.message


@pytest.mark.parametrize("bad_id", [None, "", 5, "../etc", "a b", "x" * 200, "-lead"])
def test_bad_job_id(bad_id) -> None:
    doc = job()
    doc["id"] = bad_id
    assert fails(doc).field == "id"


def test_unknown_top_level_field() -> None:
    doc = job()
    doc["callback"] = "http://x"
    assert fails(doc).field == "callback"


def test_payload_required_and_object() -> None:
    doc = job()
    del doc["payload"]
    assert fails(doc).field == "payload"
    doc["payload"] = ["prompt"]
    assert fails(doc).field == "payload"


# ---------------------------------------------------------------- payload errors


def test_unknown_payload_field_is_named() -> None:
    err = fails(job(promt="typo"))
    assert err.field == "payload.promt" and "unknown field 'promt'" in err.message


def test_field_of_the_other_task_is_explained() -> None:
    err = fails(job(init_images=[png_b64()]))
    assert err.field == "payload.init_images" and "img2img" in err.message
    err = fails(job("img2img", enable_hr=True))
    assert err.field == "payload.enable_hr"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("steps", "20", "must be an integer"),
        ("steps", True, "must be an integer (got true)"),
        ("steps", 20.5, "must be an integer"),
        ("width", [512], "must be an integer"),
        ("seed", "123", "must be an integer"),
        ("cfg_scale", "7", "must be a number"),
        ("cfg_scale", False, "must be a number"),
        ("cfg_scale", float("nan"), "finite"),
        ("prompt", 5, "must be a string"),
        ("prompt", ["a"], "must be a string"),
        ("enable_hr", "true", "must be true or false"),
        ("enable_hr", 1, "must be true or false"),
        ("styles", "anime", "list of strings"),
        ("override_settings", [1], "must be an object"),
        ("alwayson_scripts", [], "must be an object"),
    ],
)
def test_malformed_types_name_the_field(field, value, words) -> None:
    err = fails(job(**{field: value}))
    assert err.field == f"payload.{field}"
    assert words in err.message


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"width": 500}, "payload.width", "multiple of 8 (got 500)"),
        ({"height": 1001}, "payload.height", "multiple of 8"),
        ({"width": 56}, "payload.width", "between 64 and 2048"),
        ({"width": 4096}, "payload.width", "between 64 and 2048"),
        ({"steps": 0}, "payload.steps", "between 1 and 150"),
        ({"steps": 151}, "payload.steps", "between 1 and 150"),
        ({"batch_size": 9}, "payload.batch_size", "between 1 and 8"),
        ({"batch_size": 0}, "payload.batch_size", "between 1 and 8"),
        ({"n_iter": 33}, "payload.n_iter", "between 1 and 32"),
        ({"cfg_scale": 31}, "payload.cfg_scale", "between 0 and 30"),
        ({"cfg_scale": -1}, "payload.cfg_scale", "between 0 and 30"),
        ({"subseed_strength": 1.5}, "payload.subseed_strength", "between 0 and 1"),
        ({"eta": 2.0}, "payload.eta", "between 0 and 1"),
        ({"seed": -2}, "payload.seed", "-1 (random)"),
        ({"seed": 2**40}, "payload.seed", "4294967295"),
        ({"subseed": -5}, "payload.subseed", "-1 (random)"),
        ({"seed_resize_from_w": 300}, "payload.seed_resize_from_w", "multiple of 8"),
        ({"enable_hr": True, "denoising_strength": 1.5}, "payload.denoising_strength", "between 0 and 1"),
        (
            {"enable_hr": True, "hr_second_pass_steps": 200},
            "payload.hr_second_pass_steps",
            "between 0 and 150",
        ),
        ({"enable_hr": True, "hr_scale": 0}, "payload.hr_scale", "between 1 and 8"),
        ({"enable_hr": True, "hr_resize_x": 5000}, "payload.hr_resize_x", "between 0 and 2048"),
    ],
)
def test_out_of_range_values(payload, field, words) -> None:
    err = fails(job(**payload))
    assert err.field == field
    assert words in err.message


def test_pixel_budget() -> None:
    # 2048x2048 is the budget; anything larger is refused even with legal sides.
    assert parse(job(width=2048, height=2048)).width == 2048
    tight = {"max_pixels": 512 * 512}
    err = fails(job(width=512, height=520), limits=tight)
    assert err.field == "payload.width" and "262144" in err.message


def test_hires_target_over_the_pixel_budget() -> None:
    err = fails(job(enable_hr=True, width=1536, height=1536, hr_scale=2.0))
    assert err.field == "payload.hr_scale"
    assert "hires fix target" in err.message and "3072" in err.message
    tight = {"max_pixels": 1024 * 1024}
    err = fails(job(enable_hr=True, width=512, height=512, hr_resize_x=1024, hr_resize_y=1032), limits=tight)
    assert err.field == "payload.hr_resize_x" and "1056768 pixels" in err.message


def test_hires_upscale_before_crop_counts_too() -> None:
    err = fails(job(enable_hr=True, width=512, height=2048, hr_resize_x=2048, hr_resize_y=2048))
    assert "before cropping" in err.message


def test_unknown_sampler_and_scheduler() -> None:
    err = fails(job(sampler_name="Eulerr"))
    assert err.field == "payload.sampler_name" and "Euler a" in err.message
    err = fails(job(scheduler="wobbly"))
    assert err.field == "payload.scheduler"
    err = fails(job(enable_hr=True, hr_sampler_name="nope"))
    assert err.field == "payload.hr_sampler_name"
    # LCM runs on its own schedule only.
    err = fails(job(enable_hr=True, hr_sampler_name="LCM", hr_scheduler="karras"), UnsupportedFeature)
    assert err.field == "payload.hr_scheduler"


def test_unsupported_sampler_is_unsupported_feature() -> None:
    assert fails(job(sampler_name="Restart"), UnsupportedFeature).field == "payload.sampler_name"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"alwayson_scripts": {"ADetailer": {"args": []}}}, "payload.alwayson_scripts.ADetailer"),
        ({"script_name": "x/y/z plot"}, "payload.script_name"),
        ({"restore_faces": True}, "payload.restore_faces"),
        ({"tiling": True}, "payload.tiling"),
        ({"styles": ["cinematic"]}, "payload.styles"),
        ({"refiner_checkpoint": "sdxl_refiner"}, "payload.refiner_checkpoint"),
        ({"enable_hr": True, "hr_checkpoint_name": "other.safetensors"}, "payload.hr_checkpoint_name"),
        ({"firstpass_image": png_b64()}, "payload.firstpass_image"),
        ({"enable_hr": True, "hr_upscaler": "R-ESRGAN 4x+"}, "payload.hr_upscaler"),
        # Sampler parameters the chosen sampler ignores.
        ({"sampler_name": "DPM++ 2M", "s_churn": 0.5}, "payload.s_churn"),
        ({"sampler_name": "Euler a", "s_noise": 0.9}, "payload.s_noise"),
        ({"sampler_name": "Euler", "eta": 0.5}, "payload.eta"),
        ({"s_min_uncond": 0.5}, "payload.s_min_uncond"),
        ({"infotext": "a cat\nSteps: 20"}, "payload.infotext"),
        ({"firstphase_width": 512}, "payload.firstphase_width"),
        ({"override_settings": {"sd_hypernetwork": "x.pt"}}, "payload.override_settings.sd_hypernetwork"),
        ({"prompt": "a cat <hypernet:cute:0.8>"}, "payload.prompt"),
        ({"negative_prompt": "<lora:cute:0.8>"}, "payload.negative_prompt"),
    ],
)
def test_unsupported_features_are_refused_not_ignored(payload, field) -> None:
    err = fails(job(**payload), UnsupportedFeature)
    assert err.field == field
    assert err.code == "unsupported_feature" and err.status == 400


def test_unsupported_fields_at_their_defaults_are_fine() -> None:
    req = parse(
        job(
            styles=[],
            restore_faces=False,
            tiling=False,
            script_name=None,
            refiner_checkpoint="None",
            hr_checkpoint_name="Use same checkpoint",
            alwayson_scripts={},
            s_churn=0.0,
            s_noise=1.0,
            s_tmin=0,
            s_tmax=0,
            s_min_uncond=0,
            firstphase_width=0,
        )
    )
    assert req.task == "txt2img"
    assert parse(job("img2img", mask=None, initial_noise_multiplier=1.0)).task == "img2img"


def test_inpainting_mask_is_unsupported() -> None:
    assert fails(job("img2img", mask=png_b64()), UnsupportedFeature).field == "payload.mask"


def test_clip_skip_range() -> None:
    err = fails(job(override_settings={"CLIP_stop_at_last_layers": 13}))
    assert err.field == "payload.override_settings.CLIP_stop_at_last_layers"
    err = fails(job(override_settings={"CLIP_stop_at_last_layers": "2"}))
    assert "integer" in err.message


# ---------------------------------------------------------------- model refs


def _with_checkpoint(**changes) -> dict:
    doc = job()
    ref = doc["models"]["checkpoint"]
    for key, value in changes.items():
        if value is ...:
            del ref[key]
        else:
            ref[key] = value
    return doc


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ...}, "models.checkpoint.name"),
        ({"name": ""}, "models.checkpoint.name"),
        ({"name": "../../etc/passwd"}, "models.checkpoint.name"),
        ({"uri": "http://example.com/m.safetensors"}, "models.checkpoint.uri"),
        ({"uri": "file://relative/path"}, "models.checkpoint.uri"),
        ({"uri": "s3://bucket-only"}, "models.checkpoint.uri"),
        ({"uri": 5}, "models.checkpoint.uri"),
        ({"sha256": "ABC"}, "models.checkpoint.sha256"),
        ({"sha256": SHA.upper()}, "models.checkpoint.sha256"),
        ({"sha256": SHA[:-1]}, "models.checkpoint.sha256"),
        ({"size": 0}, "models.checkpoint.size"),
        ({"size": True}, "models.checkpoint.size"),
        ({"size": "12"}, "models.checkpoint.size"),
        ({"size": ...}, "models.checkpoint.size"),
        ({"extra": 1}, "models.checkpoint.extra"),
    ],
)
def test_bad_model_ref(changes, field) -> None:
    assert fails(_with_checkpoint(**changes)).field == field


def test_models_required() -> None:
    doc = job()
    del doc["models"]
    assert fails(doc).field == "models"
    doc["models"] = {}
    assert fails(doc).field == "models.checkpoint"
    doc["models"] = {"checkpoint": dict(CHECKPOINT), "hypernetworks": []}
    assert fails(doc).field == "models.hypernetworks"


def test_bad_vae_ref() -> None:
    doc = job()
    doc["models"]["vae"] = {"name": "v", "uri": "file:///v", "sha256": "nope", "size": 1}
    assert fails(doc).field == "models.vae.sha256"


@pytest.mark.parametrize("kind", ["loras", "embeddings"])
def test_lora_and_embedding_references_are_checked(kind) -> None:
    doc = job()
    doc["models"][kind] = "x"
    assert fails(doc).field == f"models.{kind}"
    doc["models"][kind] = [dict(CHECKPOINT, sha256="nope")]
    assert fails(doc).field == f"models.{kind}[0].sha256"
    doc["models"][kind] = [dict(CHECKPOINT, name="a/cute.safetensors"), dict(CHECKPOINT, name="b/cute.pt")]
    assert fails(doc).field == f"models.{kind}[1].name"  # one stem, two files: a tag could not tell


def test_lora_tags_resolve_to_the_jobs_references() -> None:
    doc = job(prompt="a cat <lora:cute:0.8>, <lyco:cute.safetensors:0.5:0.25>")
    doc["models"]["loras"] = [dict(CHECKPOINT, name="cute.safetensors")]
    doc["models"]["embeddings"] = [dict(CHECKPOINT, name="bad-hands.pt")]
    req = parse(doc)
    assert [(u.mentioned_name, u.te_multiplier, u.unet_multiplier) for u in req.loras] == [
        ("cute", 0.8, 0.8), ("cute.safetensors", 0.5, 0.25)]
    assert [e.name for e in req.embeddings] == ["bad-hands.pt"]
    assert req.prompt == "a cat <lora:cute:0.8>, <lyco:cute.safetensors:0.5:0.25>"  # kept for the infotext
    assert fails(job(prompt="<lora:cute>")).field == "payload.prompt"  # no reference carried


def test_override_sd_vae_is_accepted_the_vae_comes_from_models() -> None:
    assert parse(job(override_settings={"sd_vae": "kl-f8.safetensors"})).vae is None


@pytest.mark.parametrize(
    "prefix", ["/jobs/1/", "jobs/1", "jobs/../1/", "../x/", "jobs//1/", "jobs/1 /", "jobs/\n/", 7, "./"]
)
def test_bad_output_prefix(prefix) -> None:
    doc = job()
    doc["output"] = {"prefix": prefix}
    assert fails(doc).field == "output.prefix"


def test_bad_output_object() -> None:
    doc = job()
    doc["output"] = "jobs/1/"
    assert fails(doc).field == "output"
    doc["output"] = {"prefix": "jobs/1/", "bucket": "b"}
    assert fails(doc).field == "output.bucket"


# ---------------------------------------------------------------- img2img errors


def test_img2img_needs_images() -> None:
    assert fails(job("img2img", init_images=[])).field == "payload.init_images"
    doc = job("img2img")
    doc["payload"]["init_images"] = None
    assert fails(doc).field == "payload.init_images"


def test_img2img_too_many_images() -> None:
    err = fails(job("img2img", batch_size=2, init_images=[png_b64()] * 3))
    assert err.field == "payload.init_images" and "batch_size 2" in err.message


def test_img2img_undecodable_image_names_its_index() -> None:
    err = fails(job("img2img", batch_size=2, init_images=[png_b64(), "bm90IGFuIGltYWdl"]))
    assert err.field == "payload.init_images[1]"


def test_img2img_oversized_image() -> None:
    limits = {"max_init_image_bytes": 1000}
    big = png_b64((256, 256), (1, 2, 3))
    noisy = io.BytesIO()
    Image.effect_noise((128, 128), 80).save(noisy, format="PNG")
    err = fails(
        job("img2img", init_images=[base64.b64encode(noisy.getvalue()).decode()]),
        PayloadTooLarge,
        limits=limits,
    )
    assert err.field == "payload.init_images[0]" and err.status == 413
    assert parse(job("img2img", init_images=[big])).init_images[0].size == (256, 256)


def test_img2img_decompression_bomb() -> None:
    buf = io.BytesIO()
    Image.new("1", (5000, 5000)).save(buf, format="PNG")
    err = fails(job("img2img", init_images=[base64.b64encode(buf.getvalue()).decode()]), PayloadTooLarge)
    assert err.field == "payload.init_images[0]"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"resize_mode": 4}, "payload.resize_mode"),
        ({"denoising_strength": 1.2}, "payload.denoising_strength"),
    ],
)
def test_img2img_ranges(payload, field) -> None:
    assert fails(job("img2img", **payload)).field == field


def test_parse_does_not_modify_the_job() -> None:
    doc = job(prompt="x", alwayson_scripts={}, override_settings={"CLIP_stop_at_last_layers": 2})
    before = copy.deepcopy(doc)
    req = parse(doc)
    req.parameters["alwayson_scripts"]["x"] = 1
    assert doc == before


def test_error_dict_shape() -> None:
    err = fails(job(width=500))
    assert err.to_dict() == {
        "status": 400,
        "code": "invalid_request",
        "detail": "width must be a multiple of 8 (got 500)",
        "field": "payload.width",
    }


def test_sampler_parameters_and_ensd_reach_the_request() -> None:
    req = parse(job(sampler_name="Euler", s_churn=0.5, s_noise=0.9, override_settings={"eta_noise_seed_delta": 31337}))
    assert (req.sampler.s_churn, req.sampler.s_noise, req.eta_noise_seed_delta) == (0.5, 0.9, 31337)
    ddim = parse(job(sampler_name="DDIM", eta=0.3)).sampler
    assert (ddim.kind, ddim.eta, ddim.eta_default) == ("timesteps", 0.3, 0.0)
    # The hires pass takes what it uses: DPM++ 2M there ignores eta without refusing the job.
    hires = parse(job(sampler_name="Euler a", eta=0.4, enable_hr=True, hr_sampler_name="DPM++ 2M")).hires
    assert hires.sampler.name == "DPM++ 2M" and hires.sampler.eta is None


def test_live_preview_period_is_the_webuis_option() -> None:
    assert parse(job()).preview_every_n_steps == 10
    assert parse(job(override_settings={"show_progress_every_n_steps": 3})).preview_every_n_steps == 3
    assert parse(job(override_settings={"show_progress_every_n_steps": -1})).preview_every_n_steps == -1
    err = fails(job(override_settings={"show_progress_every_n_steps": 1000}))
    assert err.field == "payload.override_settings.show_progress_every_n_steps"
