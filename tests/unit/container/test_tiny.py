import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from inference_container import tiny
from inference_container.engine.architectures import CONFIG_ROOT

REPO = Path(__file__).resolve().parents[3]


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def _real_sd15_keys() -> set[str]:
    # A full-size SD 1.5 built on the meta device: its converted names are the real key set.
    unet, vae, text_encoder = tiny.build_models(CONFIG_ROOT / "sd15", device="meta")
    return set(tiny.ldm_state_dict(unet, vae, text_encoder, CONFIG_ROOT / "sd15"))


@pytest.mark.slow
def test_cli_writes_a_small_checkpoint(tmp_path):
    out = tmp_path / "cli" / "tiny.safetensors"
    done = subprocess.run(
        [sys.executable, "-m", "inference_container.tiny", str(out), "--seed", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.is_file() and "wrote" in done.stdout
    assert out.stat().st_size < 12 * 1024 * 1024
    _, metadata = _read(out)
    assert metadata["modelspec.architecture"] == "sdcloud-tiny-sd-v1"
    assert metadata["sdcloud.seed"] == "3"


def test_cli_refuses_other_suffixes(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "inference_container.tiny", str(tmp_path / "x.ckpt")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and ".safetensors" in done.stderr


def test_key_set_equals_a_real_sd15_checkpoint(tiny_checkpoint):
    tensors, _ = _read(tiny_checkpoint)
    real = _real_sd15_keys()
    assert set(tensors) == real
    # Landmarks of the real layout, spelled out.
    for key in (
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.input_blocks.3.0.op.weight",
        "model.diffusion_model.output_blocks.2.1.conv.weight",
        "model.diffusion_model.output_blocks.5.2.conv.weight",
        "model.diffusion_model.output_blocks.11.0.skip_connection.weight",
        "model.diffusion_model.middle_block.1.proj_in.weight",
        "model.diffusion_model.out.2.weight",
        "first_stage_model.encoder.mid.attn_1.q.weight",
        "first_stage_model.decoder.up.3.upsample.conv.weight",
        "first_stage_model.quant_conv.weight",
        "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight",
        "cond_stage_model.transformer.text_model.embeddings.position_ids",
        "alphas_cumprod",
    ):
        assert key in real, key


def test_structure_matches_sd15(tiny_checkpoint):
    tensors, _ = _read(tiny_checkpoint)
    assert tensors["model.diffusion_model.input_blocks.0.0.weight"].shape[1] == 4  # 4-channel latents
    assert tensors["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4  # LDM's 1x1 conv attention
    assert (
        tensors["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"].shape[0] == 49408
    )
    assert (
        tensors["cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"].shape[0] == 77
    )
    assert tensors["cond_stage_model.transformer.text_model.embeddings.position_ids"].dtype == torch.int64
    assert tensors["model.diffusion_model.out.2.weight"].dtype == torch.float16


def test_round_trip_every_tensor_loads_unchanged(tiny_model):
    # The fixture file was written from these very models (seed 0) in fp16.
    unet, vae, text_encoder = tiny.build_models(tiny.TINY_CONFIG_DIR, seed=0)
    for name, original, loaded in (
        ("unet", unet, tiny_model.txt2img.unet),
        ("vae", vae, tiny_model.txt2img.vae),
        ("text_encoder", text_encoder, tiny_model.txt2img.text_encoder),
    ):
        written = original.state_dict()
        got = loaded.state_dict()
        assert set(got) == set(written), name
        for key, tensor in written.items():
            expected = tensor.half().float() if tensor.is_floating_point() else tensor
            assert torch.equal(got[key].to(expected.dtype), expected), f"{name}.{key}"


def test_same_seed_same_weights_other_seed_other_weights():
    a = tiny.build_models(tiny.TINY_CONFIG_DIR, seed=1)[0].state_dict()
    b = tiny.build_models(tiny.TINY_CONFIG_DIR, seed=1)[0].state_dict()
    c = tiny.build_models(tiny.TINY_CONFIG_DIR, seed=2)[0].state_dict()
    key = "conv_in.weight"
    assert torch.equal(a[key], b[key])
    assert not torch.equal(a[key], c[key])


def test_building_does_not_disturb_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny.build_models(tiny.TINY_CONFIG_DIR, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_converter_refuses_keys_it_cannot_place():
    config = tiny.read_config(tiny.TINY_CONFIG_DIR, "unet")
    with pytest.raises(ValueError, match="no LDM name"):
        tiny.unet_to_ldm({"mystery.weight": torch.zeros(1)}, config)


def test_unet_map_follows_the_config():
    # Three levels (SDXL-like): 1 + 3*(2+1) - 1 = 9 input blocks, upsamplers at 2.1, 5.2.
    config = {
        "block_out_channels": [8, 16, 32],
        "layers_per_block": 2,
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    }
    pairs = {d: ldm for d, ldm, _ in tiny.unet_prefix_map(config)}
    assert pairs["down_blocks.2.resnets.1"] == "input_blocks.8.0"
    assert pairs["down_blocks.1.downsamplers.0.conv"] == "input_blocks.6.0.op"
    assert "down_blocks.2.downsamplers.0.conv" not in pairs
    assert pairs["up_blocks.0.upsamplers.0.conv"] == "output_blocks.2.2.conv"
    assert pairs["up_blocks.2.resnets.2"] == "output_blocks.8.0"
    assert pairs["add_embedding.linear_1"] == "label_emb.0.0"


def test_ddpm_buffers_follow_the_scaled_linear_schedule():
    buffers = tiny.ddpm_buffers(tiny.read_config(tiny.TINY_CONFIG_DIR, "scheduler"))
    assert buffers["betas"].shape == (1000,)
    assert buffers["betas"][0].item() == pytest.approx(0.00085)
    assert buffers["betas"][-1].item() == pytest.approx(0.012)
    assert buffers["alphas_cumprod"][-1].item() == pytest.approx(0.0047, abs=1e-4)
