"""Tiny extra networks for the tiny SD 1.x model (``tiny.py``), in the files artists bring.

- a LoRA in kohya's layout (``lora_unet_*`` / ``lora_te_*`` with ``.lora_down.weight``,
  ``.lora_up.weight``, ``.alpha``), UNet layers named the diffusers way or the LDM way, with a
  LoCon 3x3 convolution layer among them;
- a textual-inversion embedding as A1111 saves it in safetensors (``emb_params``: vectors x 32),
  or as the legacy pickle ``.pt`` (``string_to_param``) for the refusal path;
- a standalone VAE in the LDM single-file layout (``encoder.*`` / ``decoder.*``, no prefix).

Weights are random from a seed: they change the image, which is all tests need to see.
"""

from __future__ import annotations

from pathlib import Path

import torch

from inference_container.engine.lora import kohya_layer_name
from inference_container.tiny import (
    TINY_CONFIG_DIR,
    UNET_RESNET_NAMES,
    VAE_PREFIX,
    build_models,
    read_config,
    rename_inner,
    unet_prefix_map,
    vae_to_ldm,
)

_UNET_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
                 "attn2.to_v", "attn2.to_out.0", "proj_in", "proj_out")
_TE_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1")


def _save(tensors: dict[str, torch.Tensor], out: Path, metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out), metadata=metadata)
    return out


def _ldm_name(module_name: str, config: dict) -> str:
    for d_prefix, l_prefix, kind in sorted(unet_prefix_map(config), key=lambda p: len(p[0]), reverse=True):
        if module_name.startswith(d_prefix + "."):
            rest = module_name[len(d_prefix) + 1 :]
            return f"{l_prefix}.{rename_inner(rest, UNET_RESNET_NAMES) if kind == 'resnet' else rest}"
    raise ValueError(f"no LDM name for {module_name!r}")


def write_tiny_lora(out: Path, *, seed: int = 1, rank: int = 4, ldm_names: bool = False,
                    config_dir: Path = TINY_CONFIG_DIR) -> Path:
    """A kohya-layout LoRA for the tiny model: attention + projections in the UNet, attention and
    MLP in every CLIP layer, and one LoCon 3x3 convolution (the first ResBlock's conv1)."""
    unet, _, text_encoder = build_models(config_dir, device="meta")
    config = read_config(config_dir, "unet")
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}

    def add(key: str, weight_shape: torch.Size) -> None:
        out_features, fan_in = weight_shape[0], weight_shape[1]
        kernel = tuple(weight_shape[2:])
        down_shape = (rank, fan_in, *kernel)  # LoCon keeps the layer's kernel in the down weight
        up_shape = (out_features, rank, 1, 1) if kernel else (out_features, rank)
        tensors[f"{key}.lora_down.weight"] = torch.randn(down_shape, generator=generator) * 0.2
        tensors[f"{key}.lora_up.weight"] = torch.randn(up_shape, generator=generator) * 0.2
        tensors[f"{key}.alpha"] = torch.tensor(float(rank) / 2)

    for name, module in unet.named_modules():
        conv_target = name == "down_blocks.0.resnets.0.conv1"
        if not (conv_target or (isinstance(module, torch.nn.Linear | torch.nn.Conv2d) and name.endswith(_UNET_TARGETS))):
            continue
        layer = _ldm_name(name, config) if ldm_names else name
        add("lora_unet_" + layer.replace(".", "_"), module.weight.shape)
    for name, module in text_encoder.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(_TE_TARGETS):
            add("lora_te_" + kohya_layer_name("text_encoder", name), module.weight.shape)
    metadata = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "sdcloud.seed": str(seed)}
    return _save({k: v.to(torch.float16) for k, v in tensors.items()}, out, metadata)


def tiny_embedding_vectors(*, seed: int = 2, vectors: int = 2, dim: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((vectors, dim), generator=generator) * 2.0


def write_tiny_embedding(out: Path, *, seed: int = 2, vectors: int = 2, dim: int = 32) -> Path:
    """A1111's safetensors textual inversion: one ``emb_params`` tensor (vectors x CLIP width)."""
    return _save({"emb_params": tiny_embedding_vectors(seed=seed, vectors=vectors, dim=dim)}, Path(out))


def write_tiny_pickle_embedding(out: Path, *, seed: int = 2, vectors: int = 2, dim: int = 32) -> Path:
    """The legacy ``.pt`` layout (a pickle): ``{"string_to_param": {"*": vectors}, "name": ...}``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    vectors_t = tiny_embedding_vectors(seed=seed, vectors=vectors, dim=dim)
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors_t}, "name": out.stem,
                "step": 0}, str(out))
    return out


def write_tiny_vae(out: Path, *, seed: int = 3, config_dir: Path = TINY_CONFIG_DIR) -> Path:
    """A standalone VAE for the tiny model, as A1111's VAE folder holds them (LDM names, no prefix)."""
    _, vae, _ = build_models(config_dir, seed=seed)
    state = vae_to_ldm(vae.state_dict(), read_config(config_dir, "vae"))
    return _save({k.removeprefix(VAE_PREFIX): v.to(torch.float16) for k, v in state.items()}, Path(out))
