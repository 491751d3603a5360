"""Which Stable Diffusion architecture a checkpoint holds, and the shipped diffusers configs for it.

We read only the safetensors header (or, with the operator's opt-in, a pickle's tensor shapes) to
tell SD 1.x, SD 2.x and SDXL apart, the way the WebUI does; diffusers then converts the weights
against our diffusers-layout configs (``configs/<architecture>``), fully offline.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from inference_container.engine.model_files import (
    pickle_refused,
    pickle_shapes,
    read_safetensors_header,
    sniff_format,
)
from inference_container.engine.tokenizer import copy_tokenizer_into
from inference_container.errors import ModelRefused, ModelUnavailable, UnsupportedFeature

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"

ARCH_SD1 = "sd15"
ARCH_SD2 = "sd2"
ARCH_SDXL = "sdxl"
ARCH_TINY = "tiny-sd1"
ARCHITECTURES = (ARCH_SD1, ARCH_SD2, ARCH_SDXL, ARCH_TINY)

# modelspec.architecture values (Stability's model metadata spec) -> our config folder.
MODELSPEC_ARCHITECTURES = {
    "sdcloud-tiny-sd-v1": ARCH_TINY,
    "stable-diffusion-v1": ARCH_SD1,
    "stable-diffusion-v2-512": ARCH_SD2,
    "stable-diffusion-v2-768-v": ARCH_SD2,
    "stable-diffusion-xl-v1-base": ARCH_SDXL,
}
# Tokenizer flavour of each tokenizer folder an architecture needs.
_TOKENIZERS: dict[str, dict[str, Literal["clip", "open_clip"]]] = {
    ARCH_SD1: {"tokenizer": "clip"},
    ARCH_TINY: {"tokenizer": "clip"},
    ARCH_SD2: {"tokenizer": "open_clip"},
    ARCH_SDXL: {"tokenizer": "clip", "tokenizer_2": "open_clip"},
}


def architecture_from_keys(tensors: dict[str, dict[str, Any]], name: str = "checkpoint") -> str:
    """SD 1.x / 2.x / XL from key names and shapes, the way the WebUI tells them apart."""

    def shape(key: str) -> list[int] | None:
        info = tensors.get(key)
        return list(info["shape"]) if info else None

    keys = tensors.keys()
    if not any(k.startswith("model.diffusion_model.") for k in keys):
        raise ModelRefused(
            f"{name} has no UNet weights (model.diffusion_model.*): is it a LoRA, VAE or embedding "
            "rather than a checkpoint?"
        )
    conv_in = shape("model.diffusion_model.input_blocks.0.0.weight")
    if conv_in is not None and len(conv_in) == 4 and conv_in[1] != 4:
        raise UnsupportedFeature(
            f"{name} is an inpainting or other {conv_in[1]}-channel model; only txt2img/img2img "
            "checkpoints are supported"
        )
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return ARCH_SDXL
    if any(k.startswith("conditioner.embedders.0.model.") for k in keys):
        raise UnsupportedFeature(f"{name} is an SDXL refiner; load an SDXL base or SD 1.x/2.x checkpoint")
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        token = shape("cond_stage_model.model.token_embedding.weight")
        if token is None or token[-1] == 1024:
            return ARCH_SD2
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return ARCH_SD1
    raise ModelRefused(f"{name} is a Stable Diffusion model of an architecture this engine does not know")


def detect_architecture(path: Path, *, allow_pickle: bool = False) -> str:
    """One of ARCHITECTURES: ``modelspec.architecture`` metadata when present, else key heuristics."""
    path = Path(path)
    if sniff_format(path) == "pickle":
        if not allow_pickle:
            raise pickle_refused(path)
        return architecture_from_keys(pickle_shapes(path), path.name)
    tensors, metadata = read_safetensors_header(path)
    declared = metadata.get("modelspec.architecture", "")
    if declared in MODELSPEC_ARCHITECTURES:
        return MODELSPEC_ARCHITECTURES[declared]
    if declared.endswith(("/lora", "/textual-inversion", "/vae")):
        raise ModelRefused(f"{path.name} declares itself a {declared.rsplit('/', 1)[1]}, not a checkpoint")
    return architecture_from_keys(tensors, path.name)


def declared_prediction_type(path: Path) -> str | None:
    """``epsilon`` / ``v_prediction`` when the file's metadata says so (SD 2.x 512 vs 768-v)."""
    try:
        _, metadata = read_safetensors_header(path)
    except ModelUnavailable:
        return None
    declared = metadata.get("modelspec.prediction_type", "")
    if declared in ("epsilon", "v", "v_prediction"):
        return "v_prediction" if declared.startswith("v") else "epsilon"
    arch = metadata.get("modelspec.architecture", "")
    if arch == "stable-diffusion-v2-512":
        return "epsilon"
    if arch == "stable-diffusion-v2-768-v":
        return "v_prediction"
    return None


def config_dir(architecture: str) -> Path:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}")
    return CONFIG_ROOT / architecture



def prepared_config_dir(architecture: str, work_dir: Path, tokenizer_dir: Path | None = None) -> Path:
    """Our shipped config folder plus the tokenizer folder(s), as diffusers' ``config=`` wants it.

    Built under ``work_dir``; the tokenizer files come from ``tokenizer_dir`` (default
    ``<work_dir>/clip-tokenizer``). The folder name carries a digest of the shipped configs, so an
    upgrade never reuses a stale copy.
    """
    source = config_dir(architecture)
    root = Path(work_dir)
    tokenizers = Path(tokenizer_dir) if tokenizer_dir is not None else root / "clip-tokenizer"
    digest = hashlib.sha256()
    for file in sorted(source.rglob("*.json")):
        digest.update(file.relative_to(source).as_posix().encode())
        digest.update(file.read_bytes())
    target = root / "pipeline-configs" / f"{architecture}-{digest.hexdigest()[:12]}"
    if (target / "model_index.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{architecture}-", dir=target.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        for folder, flavour in _TOKENIZERS[architecture].items():
            copy_tokenizer_into(staging / folder, flavour, tokenizers)
        # Built aside and renamed into place: a reader never sees a half-written folder.
        try:
            staging.rename(target)
        except OSError:
            if not (target / "model_index.json").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
