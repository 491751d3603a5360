"""Single-file checkpoints: what a file is, which architecture it holds, and loading it into pipelines.

Artists bring ``.safetensors`` files in the original (LDM) single-file layout. We read only the
safetensors header to tell SD 1.x, SD 2.x and SDXL apart, then let diffusers convert the weights
against our shipped diffusers-layout configs (``configs/<architecture>``), fully offline. A pickle
``.ckpt`` can run code when loaded, so it is refused unless the operator opts in.

Loaded models stay in a small LRU keyed by the checkpoint's sha256 (and the VAE's), so the
next job with the same model starts sampling at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from inference_container.engine.memory import is_out_of_memory, release_device_memory
from inference_container.engine.tokenizer import copy_tokenizer_into
from inference_container.engine.types import ModelRef
from inference_container.errors import (
    ModelRefused,
    ModelUnavailable,
    OutOfMemory,
    UnsupportedFeature,
)

if TYPE_CHECKING:
    import torch

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

FileFormat = Literal["safetensors", "pickle"]
# A safetensors header beyond this is not a checkpoint we want to parse (real ones are < 1 MB).
_MAX_HEADER_BYTES = 64 * 1024 * 1024


# --- what a file is ------------------------------------------------------------------------------


def sniff_format(path: Path) -> FileFormat:
    """Tell safetensors from pickle by content (a renamed file must not slip through by its name)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError as exc:
        raise ModelUnavailable(f"cannot read model file {path.name}: {exc.strerror or exc}") from exc
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= min(_MAX_HEADER_BYTES, size - 8) and head[8:9] == b"{":
            return "safetensors"
    # torch.save writes a zip archive since 1.6; older files are a bare pickle stream (0x80 + protocol).
    if head[:4] == b"PK\x03\x04" or (
        head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    ):
        return "pickle"
    raise ModelUnavailable(
        f"model file {path.name} is neither safetensors nor a PyTorch checkpoint (corrupt or truncated?)"
    )


def read_safetensors_header(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(tensor name -> {dtype, shape, data_offsets}, metadata) from the header alone."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            size = path.stat().st_size
            if header_len > min(_MAX_HEADER_BYTES, size - 8):
                raise ModelUnavailable(f"model file {path.name} has a corrupt safetensors header")
            header = json.loads(f.read(header_len).decode("utf-8"))
    except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnavailable(
            f"model file {path.name} has an unreadable safetensors header ({exc})"
        ) from exc
    corrupt = ModelUnavailable(f"model file {path.name} has a corrupt safetensors header")
    if not isinstance(header, dict):
        raise corrupt
    metadata = header.pop("__metadata__", None) or {}
    try:
        end = max((int(v["data_offsets"][1]) for v in header.values()), default=0)
        if not all(isinstance(v["shape"], list) for v in header.values()) or not isinstance(metadata, dict):
            raise corrupt
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise corrupt from exc
    if 8 + header_len + end > size:
        raise ModelUnavailable(
            f"model file {path.name} is truncated ({size} bytes, header needs {8 + header_len + end})"
        )
    return header, {str(k): str(v) for k, v in metadata.items()}


def _pickle_shapes(path: Path) -> dict[str, dict[str, Any]]:
    import torch

    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many kinds for a bad archive
        raise ModelUnavailable(f"cannot read checkpoint {Path(path).name}: {type(exc).__name__}") from exc
    while isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    return {k: {"shape": list(v.shape)} for k, v in data.items() if hasattr(v, "shape")}


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
            raise _pickle_refused(path)
        return architecture_from_keys(_pickle_shapes(path), path.name)
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


def _pickle_refused(path: Path) -> ModelRefused:
    return ModelRefused(
        f"{path.name} is a pickle checkpoint (.ckpt), which can run code when loaded; convert it to "
        ".safetensors, or let the operator opt in with SDCLOUD_ALLOW_PICKLE=1"
    )


def allow_pickle_from_env() -> bool:
    return os.environ.get("SDCLOUD_ALLOW_PICKLE", "").strip().lower() in ("1", "true", "yes", "on")


# --- configs ---------------------------------------------------------------------------------------


def config_dir(architecture: str) -> Path:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}")
    return CONFIG_ROOT / architecture


def default_work_dir() -> Path:
    """Explicit argument > ``SDCLOUD_ENGINE_CACHE_DIR`` > ``~/.cache/sdcloud``."""
    env = os.environ.get("SDCLOUD_ENGINE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "sdcloud"


def prepared_config_dir(architecture: str, work_dir: Path | None = None) -> Path:
    """Our shipped config folder plus the tokenizer folder(s), as diffusers' ``config=`` wants it.

    The folder name carries a digest of the shipped configs, so an upgrade never reuses a stale copy.
    """
    source = config_dir(architecture)
    root = Path(work_dir) if work_dir is not None else default_work_dir()
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
            copy_tokenizer_into(staging / folder, flavour, root / "clip-tokenizer")
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


def _go_offline() -> None:
    """Nothing is downloaded at run time: tell every HF library so before it looks anything up."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()  # no terminal to draw on in a server
    except ImportError:
        pass
    try:
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_OFFLINE = True  # read at import time; set it for already-imported code
    except ImportError:
        pass


# --- the loaded model ---------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A checkpoint turned into ready pipelines on a device; shared read-only between jobs."""

    ref: ModelRef
    architecture: str
    txt2img: Any  # StableDiffusionPipeline | StableDiffusionXLPipeline
    img2img: Any  # StableDiffusionImg2ImgPipeline | StableDiffusionXLImg2ImgPipeline, same modules
    device: torch.device
    dtype: torch.dtype
    vae_key: str | None = None

    @property
    def is_sdxl(self) -> bool:
        return self.architecture == ARCH_SDXL

    @property
    def rng_name(self) -> str:
        """A1111's ``RNG:`` infotext value: noise comes from the GPU's generator only on CUDA."""
        return "GPU" if self.device.type == "cuda" else "CPU"

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.txt2img.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.txt2img.unet.config.in_channels)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class PipelineLoader:
    """Builds pipelines from single files and keeps the last ``max_cached`` of them (thread-safe)."""

    def __init__(
        self,
        device: str | None = None,
        dtype: Any = None,
        max_cached: int = 2,
        *,
        allow_pickle: bool | None = None,
        work_dir: Path | None = None,
    ) -> None:
        import torch

        self.device = torch.device(device or default_device())
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.max_cached = max(1, int(max_cached))
        self.allow_pickle = allow_pickle_from_env() if allow_pickle is None else allow_pickle
        self.work_dir = Path(work_dir) if work_dir is not None else default_work_dir()
        self._cache: OrderedDict[tuple[str, str | None], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # guards _cache
        self._load_lock = threading.Lock()  # one load at a time: device memory is the limit

    def cached_keys(self) -> list[tuple[str, str | None]]:
        with self._lock:
            return list(self._cache)

    def load(
        self,
        checkpoint_path: Path,
        ref: ModelRef,
        vae_path: Path | None = None,
        vae_ref: ModelRef | None = None,
    ) -> LoadedModel:
        """The pipelines for ``ref``; built from ``checkpoint_path`` unless already in memory."""
        vae_key = _vae_key(vae_path, vae_ref)
        key = (ref.sha256, vae_key)
        hit = self._lookup(key)
        if hit is not None:
            return hit
        with self._load_lock:
            hit = self._lookup(key)  # another thread may have loaded it while we waited
            if hit is not None:
                return hit
            self._make_room()
            model = self._build(Path(checkpoint_path), ref, Path(vae_path) if vae_path else None, vae_key)
            with self._lock:
                self._cache[key] = model
            return model

    def evict_all(self) -> None:
        with self._lock:
            self._cache.clear()
        release_device_memory()

    def _lookup(self, key: tuple[str, str | None]) -> LoadedModel | None:
        with self._lock:
            model = self._cache.get(key)
            if model is not None:
                self._cache.move_to_end(key)
            return model

    def _make_room(self) -> None:
        evicted = False
        with self._lock:
            while len(self._cache) >= self.max_cached:
                self._cache.popitem(last=False)
                evicted = True
        if evicted:
            release_device_memory()

    def _build(self, path: Path, ref: ModelRef, vae_path: Path | None, vae_key: str | None) -> LoadedModel:
        import torch

        if not path.is_file():
            raise ModelUnavailable(f"checkpoint file for {ref.name} is missing", field="models.checkpoint")
        fmt = sniff_format(path)
        if fmt == "pickle" and not self.allow_pickle:
            raise _pickle_refused(Path(ref.name))
        architecture = detect_architecture(path, allow_pickle=self.allow_pickle)
        _go_offline()
        folder = prepared_config_dir(architecture, self.work_dir)
        try:
            pipe = self._from_single_file(path, architecture, folder, vae_path)
        except (ModelUnavailable, ModelRefused, UnsupportedFeature):
            raise
        except Exception as exc:
            raise ModelUnavailable(
                f"could not load checkpoint {ref.name} as {architecture}: {_short(exc)}",
                field="models.checkpoint",
            ) from exc
        pipe.set_progress_bar_config(disable=True)
        try:
            pipe.to(self.device)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            del pipe
            release_device_memory()
            raise OutOfMemory(
                f"not enough {self.device.type.upper()} memory to load {ref.name}; "
                "free memory (fewer cached models) or use a larger instance"
            ) from None
        if pipe.vae.config.get("force_upcast") and pipe.vae.dtype == torch.float16:
            # SDXL's VAE overflows in fp16; keep it in fp32 for good (the WebUI's --no-half-vae).
            pipe.vae.to(torch.float32)
        if architecture == ARCH_SD2:
            _fix_sd2_prediction_type(pipe, path)
        img2img = _img2img_from(pipe, architecture)
        return LoadedModel(
            ref=ref,
            architecture=architecture,
            txt2img=pipe,
            img2img=img2img,
            device=self.device,
            dtype=self.dtype,
            vae_key=vae_key,
        )

    def _from_single_file(self, path: Path, architecture: str, folder: Path, vae_path: Path | None) -> Any:
        from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline

        kwargs: dict[str, Any] = {"config": str(folder), "local_files_only": True, "torch_dtype": self.dtype}
        if vae_path is not None:
            if sniff_format(vae_path) == "pickle" and not self.allow_pickle:
                raise _pickle_refused(vae_path)
            try:
                kwargs["vae"] = AutoencoderKL.from_single_file(
                    str(vae_path),
                    config=str(folder),
                    subfolder="vae",
                    local_files_only=True,
                    torch_dtype=self.dtype,
                )
            except Exception as exc:
                raise ModelUnavailable(f"could not load the VAE: {_short(exc)}", field="models.vae") from exc
        cls = StableDiffusionXLPipeline if architecture == ARCH_SDXL else StableDiffusionPipeline
        return cls.from_single_file(str(path), **kwargs)


def _img2img_from(pipe: Any, architecture: str) -> Any:
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    if architecture == ARCH_SDXL:
        img2img = StableDiffusionXLImg2ImgPipeline(**pipe.components, add_watermarker=False)
    else:
        img2img = StableDiffusionImg2ImgPipeline(**pipe.components, requires_safety_checker=False)
    img2img.set_progress_bar_config(disable=True)
    return img2img


def _fix_sd2_prediction_type(pipe: Any, path: Path) -> None:
    """SD 2.x comes as 512 (epsilon) and 768-v (v-prediction) with identical keys.

    Trust the file's metadata when it says; otherwise probe like the WebUI does: with a constant
    input at the last timestep, a v-model's output sits far below the input.
    """
    import torch

    prediction = declared_prediction_type(path)
    if prediction is None:
        unet = pipe.unet
        with torch.no_grad():
            x = torch.full((1, unet.config.in_channels, 8, 8), 0.5, device=unet.device, dtype=unet.dtype)
            cond = torch.full(
                (1, 2, unet.config.cross_attention_dim), 0.5, device=unet.device, dtype=unet.dtype
            )
            t = torch.tensor([999], device=unet.device)
            out = unet(x, t, encoder_hidden_states=cond).sample
            prediction = "v_prediction" if float((out - x).float().mean()) < -1 else "epsilon"
    if pipe.scheduler.config.get("prediction_type") != prediction:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type=prediction)


def _vae_key(vae_path: Path | None, vae_ref: ModelRef | None) -> str | None:
    if vae_ref is not None:
        return vae_ref.sha256
    if vae_path is None:
        return None
    # Without a ref we only know the file; its identity stands in for its hash.
    try:
        st = Path(vae_path).stat()
    except OSError as exc:
        raise ModelUnavailable(f"VAE file {Path(vae_path).name} is missing", field="models.vae") from exc
    return f"{Path(vae_path).resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__
