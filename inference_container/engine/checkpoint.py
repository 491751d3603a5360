"""Loading single-file checkpoints into ready pipelines, and keeping the recent ones in memory.

Artists bring ``.safetensors`` files in the original (LDM) single-file layout. ``model_files``
tells what a file is, ``architectures`` which model it holds and which shipped config fits; here
diffusers converts the weights against that config, offline. A pickle ``.ckpt`` can run code when
loaded, so it is refused unless the operator opts in.

Loaded models stay in a small LRU keyed by the checkpoint's sha256 (and the VAE's), so the
next job with the same model starts sampling at once.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference_container.engine.architectures import (
    ARCH_SD2,
    ARCH_SDXL,
    declared_prediction_type,
    detect_architecture,
    prepared_config_dir,
)
from inference_container.engine.memory import is_out_of_memory, release_device_memory
from inference_container.engine.model_files import named_for_format, pickle_refused, sniff_format
from inference_container.engine.types import ModelRef
from inference_container.errors import (
    ModelRefused,
    ModelUnavailable,
    OutOfMemory,
    UnsupportedFeature,
)
from inference_container.settings import ContainerSettings

if TYPE_CHECKING:
    import torch


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
    # The job's textual-inversion embeddings (engine/embeddings.py). The cached model has none;
    # a job works on a copy that carries its own (extra_networks.activated), sharing the pipelines.
    embeddings: tuple[Any, ...] = ()

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
        tokenizer_dir: Path | None = None,
    ) -> None:
        """Arguments left None come from the container settings (environment, then default)."""
        import torch

        settings = ContainerSettings.from_env()
        self.device = torch.device(device or default_device())
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.max_cached = max(1, int(max_cached))
        self.allow_pickle = settings.allow_pickle if allow_pickle is None else allow_pickle
        self.work_dir = Path(work_dir) if work_dir is not None else settings.engine_cache_dir
        # An explicit work_dir keeps its tokenizer files inside it (tests); otherwise the settings say.
        if tokenizer_dir is None and work_dir is None:
            tokenizer_dir = settings.clip_tokenizer_dir
        self.tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir is not None else None
        self._cache: OrderedDict[tuple[str, str | None], LoadedModel] = OrderedDict()
        # Standalone VAEs swapped in per job (extra_networks), by (sha256, architecture).
        self._vaes: OrderedDict[tuple[str, str], Any] = OrderedDict()
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

    def load_vae(self, model: LoadedModel, path: Path, ref: ModelRef) -> Any:
        """A standalone VAE file built for ``model``'s architecture, on its device.

        A job's VAE override is swapped into the cached pipeline for that job only, so a VAE
        costs its own memory, not a second copy of the checkpoint; the last ``max_cached`` stay.
        """
        import torch

        key = (ref.sha256, model.architecture)
        with self._lock:
            vae = self._vaes.get(key)
            if vae is not None:
                self._vaes.move_to_end(key)
                return vae
        with self._load_lock:
            _go_offline()
            folder = prepared_config_dir(model.architecture, self.work_dir, self.tokenizer_dir)
            vae = self._vae_from_file(Path(path), folder, ref.name)
            try:
                vae.to(self.device)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                release_device_memory()
                raise OutOfMemory(f"not enough {self.device.type.upper()} memory to load the VAE {ref.name}") from None
            if vae.config.get("force_upcast") and vae.dtype == torch.float16:
                vae.to(torch.float32)  # as for a checkpoint's own SDXL VAE
            vae.eval()
            with self._lock:
                self._vaes[key] = vae
                while len(self._vaes) > self.max_cached:
                    self._vaes.popitem(last=False)
            return vae

    def _vae_from_file(self, vae_path: Path, folder: Path, name: str) -> Any:
        from diffusers import AutoencoderKL

        vae_format = sniff_format(vae_path)
        if vae_format == "pickle" and not self.allow_pickle:
            raise pickle_refused(Path(name))
        try:
            with named_for_format(vae_path, vae_format) as named_vae:
                return AutoencoderKL.from_single_file(
                    str(named_vae),
                    config=str(folder),
                    subfolder="vae",
                    local_files_only=True,
                    torch_dtype=self.dtype,
                )
        except (ModelUnavailable, ModelRefused):
            raise
        except Exception as exc:
            raise ModelUnavailable(f"could not load the VAE {name}: {_short(exc)}", field="models.vae") from exc

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
            raise pickle_refused(Path(ref.name))
        architecture = detect_architecture(path, allow_pickle=self.allow_pickle)
        _go_offline()
        folder = prepared_config_dir(architecture, self.work_dir, self.tokenizer_dir)
        try:
            with named_for_format(path, fmt) as named:
                pipe = self._from_single_file(named, architecture, folder, vae_path)
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
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        kwargs: dict[str, Any] = {"config": str(folder), "local_files_only": True, "torch_dtype": self.dtype}
        if vae_path is not None:
            kwargs["vae"] = self._vae_from_file(vae_path, folder, vae_path.name)
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
