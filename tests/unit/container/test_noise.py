import torch

from inference_container.engine import noise as nz

SHAPE = (4, 8, 8)


def test_each_image_gets_the_noise_of_its_own_seed():
    result = nz.image_noise(SHAPE, [10, 11], device="cpu")
    assert result.noise.shape == (2, *SHAPE)
    torch.manual_seed(10)
    assert torch.equal(result.noise[0], torch.randn(SHAPE))
    torch.manual_seed(11)
    assert torch.equal(result.noise[1], torch.randn(SHAPE))
    assert result.rng_name == "CPU"


def test_same_seed_same_noise_different_seed_different_noise():
    a = nz.image_noise(SHAPE, [5], device="cpu").noise
    b = nz.image_noise(SHAPE, [5], device="cpu").noise
    c = nz.image_noise(SHAPE, [6], device="cpu").noise
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_generators_continue_after_the_first_noise():
    # Samplers that add noise every step keep drawing from each image's generator.
    result = nz.image_noise(SHAPE, [42], device="cpu")
    fresh = torch.Generator().manual_seed(42)
    torch.randn(SHAPE, generator=fresh)
    assert torch.equal(
        torch.randn(SHAPE, generator=result.generators[0]), torch.randn(SHAPE, generator=fresh)
    )


def test_variation_strength_zero_is_the_plain_noise():
    plain = nz.image_noise(SHAPE, [7], device="cpu").noise
    varied = nz.image_noise(SHAPE, [7], device="cpu", subseeds=[99], subseed_strength=0.0).noise
    assert torch.equal(plain, varied)


def test_variation_strength_one_is_the_variation_seed_noise():
    varied = nz.image_noise(SHAPE, [7], device="cpu", subseeds=[99], subseed_strength=1.0).noise[0]
    assert torch.allclose(varied, nz.randn(99, SHAPE, "cpu"), atol=1e-5)


def test_variation_in_between_is_a_slerp():
    base, sub = nz.randn(7, SHAPE, "cpu"), nz.randn(99, SHAPE, "cpu")
    varied = nz.image_noise(SHAPE, [7], device="cpu", subseeds=[99], subseed_strength=0.3).noise[0]
    assert torch.allclose(varied, nz.slerp(0.3, base, sub))
    assert not torch.allclose(varied, base) and not torch.allclose(varied, sub)


def test_slerp_of_nearly_parallel_noise_falls_back_to_the_webui_blend():
    low = torch.ones(1, 2, 2)
    high = torch.ones(1, 2, 2) * 2
    # The WebUI's fallback weights are swapped (low * val + high * (1 - val)); we keep that.
    assert torch.allclose(nz.slerp(0.25, low, high), low * 0.25 + high * 0.75)


def test_seed_resize_pastes_the_other_size_noise_centred():
    # Noise drawn for 32x32 pixels (4x4 latents) in the middle of a 64x64 (8x8) image.
    result = nz.image_noise(SHAPE, [3], device="cpu", seed_resize_from_w=32, seed_resize_from_h=32).noise[0]
    small = nz.randn(3, (4, 4, 4), "cpu")
    assert torch.equal(result[:, 2:6, 2:6], small)
    # Outside the paste: the image's own generator's noise at full size.
    full = nz.randn(3, SHAPE, "cpu")
    assert torch.equal(result[:, 0, :], full[:, 0, :])


def test_seed_resize_from_a_larger_size_crops_the_middle():
    result = nz.image_noise((4, 4, 4), [3], device="cpu", seed_resize_from_w=64, seed_resize_from_h=64).noise[
        0
    ]
    big = nz.randn(3, (4, 8, 8), "cpu")
    assert torch.equal(result, big[:, 2:6, 2:6])


def test_rng_name_and_device():
    assert nz.rng_name("cpu") == "CPU"
    assert nz.rng_name("cuda:0") == "GPU"
    assert nz.rng_device("cuda").type == "cuda"
    assert nz.rng_device("mps").type == "cpu"
