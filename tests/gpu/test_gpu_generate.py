"""fp16 generation on CUDA with a full-size SD 1.5-architecture model (random weights)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture(scope="module")
def full_size_model(tmp_path_factory):
    from inference_container.engine.architectures import CONFIG_ROOT
    from inference_container.engine.checkpoint import PipelineLoader
    from inference_container.engine.types import ModelRef
    from inference_container.tiny import write_random_checkpoint

    folder = tmp_path_factory.mktemp("gpu-model")
    path = write_random_checkpoint(
        folder / "sd15-random.safetensors",
        seed=0,
        config_dir=CONFIG_ROOT / "sd15",
        architecture="stable-diffusion-v1",
        device="cuda",
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    ref = ModelRef(path.name, path.as_uri(), digest, path.stat().st_size)
    loader = PipelineLoader(work_dir=folder / "work")
    return loader.load(path, ref), ref


def _request(ref, **overrides):
    from tests.support.generation import DPMPP_2M_KARRAS, make_request

    fields = dict(job_id="gpu", prompt="a photo of a cat, (masterpiece:1.2)", width=512, height=512, steps=20,
                  sampler=DPMPP_2M_KARRAS, seed=42, subseed=1, batch_size=2)
    fields.update(overrides)
    return make_request(ref, **fields)


def test_fp16_generation_at_512(full_size_model):
    from inference_container.engine.generate import generate

    model, ref = full_size_model
    assert model.device.type == "cuda" and model.dtype == torch.float16
    assert model.rng_name == "GPU"
    events = []
    images = generate(model, _request(ref), events.append).images
    assert [img.image.size for img in images] == [(512, 512), (512, 512)]
    assert [img.seed for img in images] == [42, 43]
    assert max(e.step for e in events) == 20
    again = generate(model, _request(ref), lambda p: None).images
    first, second = (np.asarray(img.image, np.int16) for img in (images[0], again[0]))
    assert np.abs(first - second).max() <= 2  # same seed, same picture (GPU kernels may round differently)


def test_fp16_hires_fix_to_768(full_size_model):
    from inference_container.engine.generate import generate
    from inference_container.engine.types import HiresFix

    model, ref = full_size_model
    hires = HiresFix(768, 768, "Latent", 10, 0.5, 1.5, 0, 0, None, "", "")
    images = generate(model, _request(ref, batch_size=1, hires=hires), lambda p: None).images
    assert images[0].image.size == (768, 768)
