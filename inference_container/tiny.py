"""A tiny Stable Diffusion 1.x checkpoint with random weights, in the real single-file layout.

``python -m inference_container.tiny OUT.safetensors [--seed N]``

Tests and the demo need a model that loads exactly like an artist's checkpoint (same
``model.diffusion_model.*`` / ``first_stage_model.*`` / ``cond_stage_model.*`` keys, same block
structure: four UNet levels with two layers each, cross-attention in the first three, a four-level
VAE with a latent scale factor of 8, a twelve-layer CLIP with the full 49,408-token vocabulary)
but fits in a few MB and samples in seconds on a CPU. We build tiny diffusers models from
``engine/configs/tiny-sd1``, then write their tensors under the original LDM names with the
converter below, which is parameterised by the config (block count, layers per block, which
blocks attend) so the same code names a full-size SD 1.5 model's keys too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

CONFIG_ROOT = Path(__file__).resolve().parent / "engine" / "configs"
TINY_CONFIG_DIR = CONFIG_ROOT / "tiny-sd1"
TINY_ARCHITECTURE = "sdcloud-tiny-sd-v1"

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer.text_model."

# Inner names of a UNet ResBlock: diffusers name -> LDM name.
_UNET_RESNET_NAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
UNET_RESNET_NAMES = _UNET_RESNET_NAMES  # public: the engine's LoRA loader names LDM layers with it
_VAE_RESNET_NAMES = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION_NAMES = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def read_config(config_dir: Path, component: str) -> dict[str, Any]:
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((Path(config_dir) / component / name).read_text(encoding="utf-8"))


# --- key conversion: diffusers names -> original LDM names --------------------------------------


def _layers_per_block(config: Mapping[str, Any], level: int) -> int:
    layers = config["layers_per_block"]
    return layers[level] if isinstance(layers, list) else int(layers)


def unet_prefix_map(config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(diffusers prefix, LDM prefix, kind) for every UNet sub-module; kind picks inner renames.

    LDM numbers the encoder as one flat list: ``input_blocks.0`` is conv_in, then each level
    contributes one entry per layer plus one for its downsampler; the decoder mirrors it with
    one extra layer per level, the upsampler riding in the level's last entry.
    """
    levels = len(config["block_out_channels"])
    pairs: list[tuple[str, str, str]] = [
        ("conv_in", "input_blocks.0.0", "plain"),
        ("time_embedding.linear_1", "time_embed.0", "plain"),
        ("time_embedding.linear_2", "time_embed.2", "plain"),
        ("add_embedding.linear_1", "label_emb.0.0", "plain"),
        ("add_embedding.linear_2", "label_emb.0.2", "plain"),
        ("conv_norm_out", "out.0", "plain"),
        ("conv_out", "out.2", "plain"),
        ("mid_block.resnets.0", "middle_block.0", "resnet"),
        ("mid_block.attentions.0", "middle_block.1", "plain"),
        ("mid_block.resnets.1", "middle_block.2", "resnet"),
    ]
    index = 1
    for level in range(levels):
        for layer in range(_layers_per_block(config, level)):
            pairs.append((f"down_blocks.{level}.resnets.{layer}", f"input_blocks.{index}.0", "resnet"))
            pairs.append((f"down_blocks.{level}.attentions.{layer}", f"input_blocks.{index}.1", "plain"))
            index += 1
        if level < levels - 1:
            pairs.append((f"down_blocks.{level}.downsamplers.0.conv", f"input_blocks.{index}.0.op", "plain"))
            index += 1
    index = 0
    reversed_layers = [_layers_per_block(config, lvl) for lvl in reversed(range(levels))]
    for level in range(levels):
        up_attends = config["up_block_types"][level].startswith("CrossAttn")
        layers = reversed_layers[level] + 1
        for layer in range(layers):
            pairs.append((f"up_blocks.{level}.resnets.{layer}", f"output_blocks.{index}.0", "resnet"))
            pairs.append((f"up_blocks.{level}.attentions.{layer}", f"output_blocks.{index}.1", "plain"))
            if layer == layers - 1 and level < levels - 1:
                slot = 2 if up_attends else 1
                pairs.append(
                    (f"up_blocks.{level}.upsamplers.0.conv", f"output_blocks.{index}.{slot}.conv", "plain")
                )
            index += 1
    return pairs


def vae_prefix_map(config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(diffusers prefix, LDM prefix, kind) for the VAE; the LDM decoder counts its levels upwards."""
    levels = len(config["block_out_channels"])
    layers = int(config["layers_per_block"])
    pairs: list[tuple[str, str, str]] = [
        ("quant_conv", "quant_conv", "plain"),
        ("post_quant_conv", "post_quant_conv", "plain"),
    ]
    for side in ("encoder", "decoder"):
        pairs += [
            (f"{side}.conv_in", f"{side}.conv_in", "plain"),
            (f"{side}.conv_out", f"{side}.conv_out", "plain"),
            (f"{side}.conv_norm_out", f"{side}.norm_out", "plain"),
            (f"{side}.mid_block.resnets.0", f"{side}.mid.block_1", "vae_resnet"),
            (f"{side}.mid_block.resnets.1", f"{side}.mid.block_2", "vae_resnet"),
            (f"{side}.mid_block.attentions.0", f"{side}.mid.attn_1", "vae_attention"),
        ]
    for level in range(levels):
        for layer in range(layers):
            pairs.append(
                (
                    f"encoder.down_blocks.{level}.resnets.{layer}",
                    f"encoder.down.{level}.block.{layer}",
                    "vae_resnet",
                )
            )
        if level < levels - 1:
            pairs.append(
                (
                    f"encoder.down_blocks.{level}.downsamplers.0.conv",
                    f"encoder.down.{level}.downsample.conv",
                    "plain",
                )
            )
    for level in range(levels):
        ldm_level = levels - 1 - level
        for layer in range(layers + 1):
            pairs.append(
                (
                    f"decoder.up_blocks.{level}.resnets.{layer}",
                    f"decoder.up.{ldm_level}.block.{layer}",
                    "vae_resnet",
                )
            )
        if level < levels - 1:
            pairs.append(
                (
                    f"decoder.up_blocks.{level}.upsamplers.0.conv",
                    f"decoder.up.{ldm_level}.upsample.conv",
                    "plain",
                )
            )
    return pairs


def _rename_inner(rest: str, names: Mapping[str, str]) -> str:
    for old, new in names.items():
        if rest == old or rest.startswith(old + "."):
            return new + rest[len(old) :]
    return rest


rename_inner = _rename_inner  # public alias, for the same reason


def _convert(
    state: Mapping[str, torch.Tensor], pairs: list[tuple[str, str, str]]
) -> Iterator[tuple[str, str, torch.Tensor]]:
    # Longest prefix first, so "up_blocks.0.resnets.1" never matches a shorter sibling.
    ordered = sorted(pairs, key=lambda p: len(p[0]), reverse=True)
    for key, tensor in state.items():
        for d_prefix, l_prefix, kind in ordered:
            if key.startswith(d_prefix + "."):
                rest = key[len(d_prefix) + 1 :]
                if kind == "resnet":
                    rest = _rename_inner(rest, _UNET_RESNET_NAMES)
                elif kind == "vae_resnet":
                    rest = _rename_inner(rest, _VAE_RESNET_NAMES)
                elif kind == "vae_attention":
                    rest = _rename_inner(rest, _VAE_ATTENTION_NAMES)
                    if tensor.ndim == 2:  # LDM's VAE attention uses 1x1 convolutions
                        tensor = tensor.reshape(*tensor.shape, 1, 1)
                yield key, f"{l_prefix}.{rest}", tensor
                break
        else:
            raise ValueError(f"no LDM name for diffusers key {key!r}: config and model disagree")


def unet_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {UNET_PREFIX + ldm: t for _, ldm, t in _convert(state, unet_prefix_map(config))}


def vae_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {VAE_PREFIX + ldm: t for _, ldm, t in _convert(state, vae_prefix_map(config))}


def clip_to_ldm(state: Mapping[str, torch.Tensor], max_positions: int = 77) -> dict[str, torch.Tensor]:
    """OpenAI CLIP keeps transformers' own names under ``cond_stage_model.transformer``."""
    out = {}
    for key, tensor in state.items():
        name = key.removeprefix("text_model.")
        out[CLIP_PREFIX + name] = tensor
    # Real SD 1.x files carry the position ids buffer; some tools check it.
    out.setdefault(
        CLIP_PREFIX + "embeddings.position_ids", torch.arange(max_positions, dtype=torch.int64)[None]
    )
    return out


def ddpm_buffers(scheduler_config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The noise schedule buffers LDM stores beside the weights (the WebUI reads alphas_cumprod)."""
    steps = int(scheduler_config["num_train_timesteps"])
    start, end = float(scheduler_config["beta_start"]), float(scheduler_config["beta_end"])
    betas = torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float64) ** 2  # "scaled_linear"
    alphas = 1.0 - betas
    cumprod = torch.cumprod(alphas, dim=0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), cumprod[:-1]])
    posterior_variance = betas * (1.0 - prev) / (1.0 - cumprod)
    buffers = {
        "betas": betas,
        "alphas_cumprod": cumprod,
        "alphas_cumprod_prev": prev,
        "sqrt_alphas_cumprod": cumprod.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - cumprod).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / cumprod).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / cumprod - 1).sqrt(),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * prev.sqrt() / (1.0 - cumprod),
        "posterior_mean_coef2": (1.0 - prev) * alphas.sqrt() / (1.0 - cumprod),
    }
    return {k: v.to(torch.float32) for k, v in buffers.items()}


# --- building models -------------------------------------------------------------------------------


def build_models(config_dir: Path, *, seed: int = 0, device: str = "cpu") -> tuple[Any, Any, Any]:
    """(unet, vae, text_encoder) with random weights drawn from ``seed``; ``device="meta"`` allocates nothing."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    text_config = CLIPTextConfig(**read_config(config_dir, "text_encoder"))
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(read_config(config_dir, "unet"))
        vae = AutoencoderKL.from_config(read_config(config_dir, "vae"))
        text_encoder = CLIPTextModel(text_config)
    return unet.eval(), vae.eval(), text_encoder.eval()


def ldm_state_dict(unet: Any, vae: Any, text_encoder: Any, config_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the three models under its original single-file name."""
    state: dict[str, torch.Tensor] = {}
    state.update(unet_to_ldm(unet.state_dict(), read_config(config_dir, "unet")))
    state.update(vae_to_ldm(vae.state_dict(), read_config(config_dir, "vae")))
    text_config = read_config(config_dir, "text_encoder")
    state.update(clip_to_ldm(text_encoder.state_dict(), int(text_config["max_position_embeddings"])))
    state.update(ddpm_buffers(read_config(config_dir, "scheduler")))
    # The EMA bookkeeping scalars that pruned "emaonly" releases still carry.
    state["model_ema.decay"] = torch.tensor(0.9999, dtype=torch.float32)
    state["model_ema.num_updates"] = torch.tensor(0, dtype=torch.int32)
    return state


def modelspec_metadata(seed: int, architecture: str = TINY_ARCHITECTURE) -> dict[str, str]:
    return {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": architecture,
        "modelspec.implementation": "sdcloud",
        "modelspec.title": f"SD Cloud tiny SD 1.x (random weights, seed {seed})",
        "modelspec.description": "Random weights for tests and demos; produces noise, not pictures.",
        "modelspec.resolution": "64x64",
        "modelspec.prediction_type": "epsilon",
        "sdcloud.seed": str(seed),
    }


def write_random_checkpoint(
    out: Path,
    *,
    seed: int = 0,
    config_dir: Path = TINY_CONFIG_DIR,
    dtype: torch.dtype = torch.float16,
    architecture: str = TINY_ARCHITECTURE,
    device: str = "cpu",
) -> Path:
    """Write a random-weight checkpoint of the architecture in ``config_dir`` to ``out``.

    Floating tensors are stored in ``dtype`` (fp16 like most published checkpoints); the integer
    position ids stay int64. ``device="cuda"`` draws full-size weights much faster.
    """
    from safetensors.torch import save_file

    unet, vae, text_encoder = build_models(config_dir, seed=seed, device=device)
    state = ldm_state_dict(unet, vae, text_encoder, config_dir)
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).to("cpu").contiguous() for k, v in state.items()
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    save_file(state, str(tmp), metadata=modelspec_metadata(seed, architecture))
    tmp.replace(out)
    return out


def write_tiny_model(out: Path, seed: int = 0) -> Path:
    return write_random_checkpoint(out, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inference_container.tiny",
        description="Write a tiny random-weight SD 1.x checkpoint in the original single-file layout.",
    )
    parser.add_argument("out", type=Path, help="output path, e.g. models/tiny-sd15.safetensors")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    args = parser.parse_args(argv)
    if args.out.suffix != ".safetensors":
        parser.error("the output file name must end in .safetensors")
    path = write_tiny_model(args.out, seed=args.seed)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
