import numpy as np
import pytest
import torch
from PIL import Image

from inference_container.engine import generate as gen
from inference_container.engine.memory import is_out_of_memory
from inference_container.engine.samplers import resolve_sampler
from inference_container.engine.types import GenerationRequest, HiresFix
from inference_container.errors import InvalidRequest, OutOfMemory, UnsupportedFeature
from tests.support.generation import DPMPP_2M_KARRAS, make_request

EULER_A = resolve_sampler("Euler a", None)


def _request(tiny_ref, **overrides) -> GenerationRequest:
    return make_request(tiny_ref, **overrides)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _run(model, request, events=None):
    return gen.generate(model, request, (events if events is not None else []).append).images


def _init_image(width=64, height=64) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(255, 0, height, dtype=np.uint8)
    rgb = np.stack(
        [np.tile(x, (height, 1)), np.tile(y[:, None], (1, width)), np.full((height, width), 128, np.uint8)],
        -1,
    )
    return Image.fromarray(rgb, "RGB")


# --- txt2img --------------------------------------------------------------------------------------


def test_same_seed_gives_identical_pixels(tiny_model, tiny_ref):
    a = _run(tiny_model, _request(tiny_ref))
    b = _run(tiny_model, _request(tiny_ref))
    assert a[0].image.size == (64, 64)
    assert np.array_equal(_pixels(a[0].image), _pixels(b[0].image))


def test_different_seed_gives_different_pixels(tiny_model, tiny_ref):
    a = _run(tiny_model, _request(tiny_ref, seed=1))
    b = _run(tiny_model, _request(tiny_ref, seed=2))
    assert not np.array_equal(_pixels(a[0].image), _pixels(b[0].image))


def test_batch_images_take_consecutive_seeds_and_match_single_runs(tiny_model, tiny_ref):
    batch = _run(tiny_model, _request(tiny_ref, seed=500, batch_size=2))
    assert [img.seed for img in batch] == [500, 501]
    assert [img.subseed for img in batch] == [99, 100]
    single = _run(tiny_model, _request(tiny_ref, seed=501))
    # Image 2 of the batch is the picture seed 501 gives alone (up to batched float rounding).
    assert np.abs(_pixels(batch[1].image) - _pixels(single[0].image)).max() <= 2


def test_n_iter_runs_batches_with_following_seeds(tiny_model, tiny_ref):
    images = _run(tiny_model, _request(tiny_ref, seed=10, batch_size=2, n_iter=2))
    assert [img.seed for img in images] == [10, 11, 12, 13]
    assert all(img.prompt == "a photo of a cat" and img.negative_prompt == "blurry" for img in images)


def test_variation_seed_changes_the_picture_deterministically(tiny_model, tiny_ref):
    base = _run(tiny_model, _request(tiny_ref))
    varied = _run(tiny_model, _request(tiny_ref, subseed_strength=0.5))
    again = _run(tiny_model, _request(tiny_ref, subseed_strength=0.5))
    assert not np.array_equal(_pixels(base[0].image), _pixels(varied[0].image))
    assert np.array_equal(_pixels(varied[0].image), _pixels(again[0].image))


def test_ancestral_sampler_is_deterministic_per_seed(tiny_model, tiny_ref):
    a = _run(tiny_model, _request(tiny_ref, sampler=EULER_A))
    b = _run(tiny_model, _request(tiny_ref, sampler=EULER_A))
    euler = _run(tiny_model, _request(tiny_ref))
    assert np.array_equal(_pixels(a[0].image), _pixels(b[0].image))
    assert not np.array_equal(_pixels(a[0].image), _pixels(euler[0].image))


def test_sampler_choice_changes_the_result(tiny_model, tiny_ref):
    euler = _run(tiny_model, _request(tiny_ref))
    dpm = _run(tiny_model, _request(tiny_ref, sampler=DPMPP_2M_KARRAS))
    assert not np.array_equal(_pixels(euler[0].image), _pixels(dpm[0].image))


def test_eta_reaches_ddim(tiny_model, tiny_ref):
    zero = _run(tiny_model, _request(tiny_ref, sampler=resolve_sampler("DDIM", None, parameters={"eta": 0.0})))
    one = _run(tiny_model, _request(tiny_ref, sampler=resolve_sampler("DDIM", None, parameters={"eta": 1.0})))
    assert not np.array_equal(_pixels(zero[0].image), _pixels(one[0].image))


def test_long_prompt_over_75_tokens_works(tiny_model, tiny_ref):
    long_prompt = ", ".join(["a very detailed photo of a cat"] * 20)  # ~140 tokens
    images = _run(tiny_model, _request(tiny_ref, prompt=long_prompt))
    short = _run(tiny_model, _request(tiny_ref, prompt="a very detailed photo of a cat"))
    assert images[0].image.size == (64, 64)
    assert images[0].prompt == long_prompt
    assert not np.array_equal(_pixels(images[0].image), _pixels(short[0].image))


def test_emphasis_changes_the_picture(tiny_model, tiny_ref):
    plain = _run(tiny_model, _request(tiny_ref, prompt="a cat"))
    strong = _run(tiny_model, _request(tiny_ref, prompt="a (cat:1.8)"))
    assert not np.array_equal(_pixels(plain[0].image), _pixels(strong[0].image))


def test_non_square_size(tiny_model, tiny_ref):
    images = _run(tiny_model, _request(tiny_ref, width=96, height=64))
    assert images[0].image.size == (96, 64)


def test_progress_counts_every_step_then_decodes(tiny_model, tiny_ref):
    events = []
    _run(tiny_model, _request(tiny_ref, steps=3, n_iter=2), events)
    sampling = [e.step for e in events if e.phase == "sampling"]
    assert sampling == sorted(sampling) and max(sampling) == 6
    assert all(e.steps == 6 and e.job_id == "job-1" for e in events)
    assert [e.step for e in events if e.phase == "decoding"] == [3, 6]


# --- hires fix -------------------------------------------------------------------------------------


def _hires(**overrides) -> HiresFix:
    fields = dict(
        target_width=128,
        target_height=96,
        upscaler="Latent",
        second_pass_steps=2,
        denoising_strength=0.6,
        scale=2.0,
        resize_x=0,
        resize_y=0,
        sampler=None,
        prompt="",
        negative_prompt="",
    )
    fields.update(overrides)
    return HiresFix(**fields)


@pytest.mark.parametrize("upscaler", ["Latent", "Latent (nearest)", "Lanczos", "Nearest", None])
def test_hires_fix_reaches_the_target_size(tiny_model, tiny_ref, upscaler):
    events = []
    req = _request(tiny_ref, hires=_hires(upscaler=upscaler))
    images = _run(tiny_model, req, events)
    assert images[0].image.size == (128, 96)
    # 4 first-pass steps + the 2 hires steps (A1111 runs exactly hr_second_pass_steps).
    assert gen.total_steps(req) == 6
    assert max(e.step for e in events) == 6


def test_hires_fix_is_deterministic_and_uses_its_own_sampler(tiny_model, tiny_ref):
    a = _run(tiny_model, _request(tiny_ref, hires=_hires()))
    b = _run(tiny_model, _request(tiny_ref, hires=_hires()))
    c = _run(tiny_model, _request(tiny_ref, hires=_hires(sampler=DPMPP_2M_KARRAS, second_pass_steps=4)))
    assert np.array_equal(_pixels(a[0].image), _pixels(b[0].image))
    assert not np.array_equal(_pixels(a[0].image), _pixels(c[0].image))


def test_hires_prompt_is_used_in_the_second_pass(tiny_model, tiny_ref):
    same = _run(tiny_model, _request(tiny_ref, hires=_hires()))
    other = _run(tiny_model, _request(tiny_ref, hires=_hires(prompt="a dog")))
    assert not np.array_equal(_pixels(same[0].image), _pixels(other[0].image))
    assert other[0].prompt == "a photo of a cat"


def test_unknown_hires_upscaler_is_unsupported(tiny_model, tiny_ref):
    with pytest.raises(UnsupportedFeature) as info:
        _run(tiny_model, _request(tiny_ref, hires=_hires(upscaler="R-ESRGAN 4x+")))
    assert info.value.field == "payload.hr_upscaler"


# --- img2img -------------------------------------------------------------------------------------


def _img2img(tiny_ref, **overrides):
    fields = dict(task="img2img", init_images=(_init_image(),), denoising_strength=0.5, steps=6)
    fields.update(overrides)
    return _request(tiny_ref, **fields)


def test_img2img_is_deterministic_and_seeded(tiny_model, tiny_ref):
    a = _run(tiny_model, _img2img(tiny_ref))
    b = _run(tiny_model, _img2img(tiny_ref))
    c = _run(tiny_model, _img2img(tiny_ref, seed=4321))
    assert a[0].image.size == (64, 64)
    assert np.array_equal(_pixels(a[0].image), _pixels(b[0].image))
    assert not np.array_equal(_pixels(a[0].image), _pixels(c[0].image))


def test_img2img_depends_on_the_init_image(tiny_model, tiny_ref):
    a = _run(tiny_model, _img2img(tiny_ref))
    flipped = _init_image().transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    b = _run(tiny_model, _img2img(tiny_ref, init_images=(flipped,)))
    assert not np.array_equal(_pixels(a[0].image), _pixels(b[0].image))


def test_img2img_zero_denoising_runs_one_step_at_the_smallest_sigma(tiny_model, tiny_ref):
    # A1111: t_enc = 0 still samples sigmas[steps - 1:], one step from the smallest sigma.
    events = []
    out = _run(tiny_model, _img2img(tiny_ref, denoising_strength=0.0), events)
    expected = gen.decode_latents(tiny_model, gen.encode_images(tiny_model, [_init_image()]))[0]
    full = _run(tiny_model, _img2img(tiny_ref, denoising_strength=1.0))
    near = np.abs(_pixels(out[0].image) - _pixels(expected)).mean()
    assert near < np.abs(_pixels(full[0].image) - _pixels(expected)).mean()
    assert events[-1].phase == "decoding" and events[-1].step == 1


def test_img2img_progress_counts_the_denoised_steps(tiny_model, tiny_ref):
    events = []
    req = _img2img(tiny_ref, steps=10, denoising_strength=0.5)
    _run(tiny_model, req, events)
    # A1111's t_enc + 1 with t_enc = int(0.5 * 10).
    assert gen.total_steps(req) == 6
    assert max(e.step for e in events) == 6


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_img2img_resize_modes_reach_the_requested_size(tiny_model, tiny_ref, mode):
    req = _img2img(tiny_ref, init_images=(_init_image(96, 48),), resize_mode=mode, width=64, height=64)
    assert _run(tiny_model, req)[0].image.size == (64, 64)


def test_img2img_one_init_image_serves_the_whole_batch(tiny_model, tiny_ref):
    images = _run(tiny_model, _img2img(tiny_ref, batch_size=2))
    assert [img.seed for img in images] == [1234, 1235]


def test_img2img_wrong_number_of_init_images(tiny_model, tiny_ref):
    with pytest.raises(InvalidRequest) as info:
        _run(tiny_model, _img2img(tiny_ref, batch_size=3, init_images=(_init_image(), _init_image())))
    assert info.value.field == "payload.init_images"


def test_transparent_init_image_is_flattened_on_white(tiny_model, tiny_ref):
    clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    a = _run(tiny_model, _img2img(tiny_ref, init_images=(clear,)))
    b = _run(tiny_model, _img2img(tiny_ref, init_images=(white,)))
    assert np.array_equal(_pixels(a[0].image), _pixels(b[0].image))


# --- resize modes (pure image logic) ----------------------------------------------------------------


def _bars(width, height) -> Image.Image:
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, width // 2, height))
    return image


def test_crop_and_resize_keeps_the_middle():
    out = gen.resize_image(1, _bars(200, 100), 100, 100)
    assert out.size == (100, 100)
    # The middle of a 2:1 image: left half blue, right half red around the centre line.
    assert out.getpixel((40, 50))[2] > 200 and out.getpixel((60, 50))[0] > 200


def test_resize_and_fill_pads_with_stretched_edges():
    out = gen.resize_image(2, _bars(200, 100), 100, 100)
    assert out.size == (100, 100)
    # Top and bottom bands are filled from the image's edge rows, not left black.
    assert out.getpixel((10, 2)) != (0, 0, 0) and out.getpixel((90, 97)) != (0, 0, 0)


def test_unknown_resize_mode_names_the_field():
    with pytest.raises(InvalidRequest) as info:
        gen.resize_image(7, _bars(10, 10), 8, 8)
    assert info.value.field == "payload.resize_mode"


# --- samplers and errors -----------------------------------------------------------------------------


def test_out_of_memory_becomes_a_clear_error(tiny_model, tiny_ref):
    def fail(module, args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    handle = tiny_model.txt2img.unet.register_forward_pre_hook(fail)
    try:
        with pytest.raises(OutOfMemory, match="smaller size"):
            _run(tiny_model, _request(tiny_ref, batch_size=2))
    finally:
        handle.remove()


def test_out_of_memory_detection():
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_cfg_below_one_still_blends_with_the_negative_prompt(tiny_model, tiny_ref):
    # The WebUI computes uncond + scale * (cond - uncond) for any scale: at 0 that is the
    # negative prompt's picture alone, so changing the positive prompt changes nothing.
    a = _run(tiny_model, _request(tiny_ref, cfg_scale=0.0, prompt="a cat"))
    b = _run(tiny_model, _request(tiny_ref, cfg_scale=0.0, prompt="a dog"))
    half = _run(tiny_model, _request(tiny_ref, cfg_scale=0.5, prompt="a cat"))
    one = _run(tiny_model, _request(tiny_ref, cfg_scale=1.0, prompt="a cat"))
    assert np.array_equal(_pixels(a[0].image), _pixels(b[0].image))
    assert not np.array_equal(_pixels(half[0].image), _pixels(one[0].image))
