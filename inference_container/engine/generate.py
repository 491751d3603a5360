"""Run a validated txt2img / img2img request on a loaded model, the WebUI's way.

The diffusers pipelines do the denoising loop; everything that makes the result match the
WebUI stays here: our own prompt conditioning (emphasis, long prompts), our own noise (per-image
seeds, variation seeds, seed resize), img2img resize modes, and the hires fix as a second
img2img pass. Pipelines return latents; we decode ourselves so progress can say "decoding" and
the hires fix can upscale in latent space.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from diffusers import (
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
)
from PIL import Image

from inference_container.engine.checkpoint import LoadedModel
from inference_container.engine.memory import is_out_of_memory, release_device_memory
from inference_container.engine.noise import ImageNoise, image_noise
from inference_container.engine.samplers_apply import make_scheduler
from inference_container.engine.seeds import batch_seeds
from inference_container.engine.text_encoding import Conditioning, encode_for_model
from inference_container.engine.types import (
    GeneratedImage,
    GenerationRequest,
    Progress,
    ProgressCallback,
    SamplerSpec,
)
from inference_container.errors import InvalidRequest, OutOfMemory, UnsupportedFeature

# A1111's latent upscale modes for the hires fix: name -> (interpolate mode, antialias).
LATENT_UPSCALE_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
# Pixel-space upscalers we implement; "None" (like an absent upscaler) is a plain Lanczos resize.
PIXEL_UPSCALERS: dict[str | None, Image.Resampling] = {
    None: Image.Resampling.LANCZOS,
    "None": Image.Resampling.LANCZOS,
    "Lanczos": Image.Resampling.LANCZOS,
    "Nearest": Image.Resampling.NEAREST,
}
RESIZE_JUST_RESIZE, RESIZE_CROP, RESIZE_FILL, RESIZE_LATENT = 0, 1, 2, 3


def pass_steps(steps: int, denoising_strength: float | None) -> int:
    """Sampling steps an img2img pass really runs: the WebUI's ``int(steps * strength)``, at least 1."""
    if denoising_strength is None:
        return steps
    return max(1, int(steps * denoising_strength))


def total_steps(request: GenerationRequest) -> int:
    """Sampling steps over the whole job, both hires passes and every batch counted."""
    per_batch = request.steps
    if request.task == "img2img":
        per_batch = pass_steps(request.steps, request.denoising_strength)
    if request.task == "txt2img" and request.hires:
        per_batch += pass_steps(
            request.hires.second_pass_steps or request.steps, request.hires.denoising_strength
        )
    return per_batch * request.n_iter


def generate(
    model: LoadedModel, request: GenerationRequest, on_progress: ProgressCallback
) -> list[GeneratedImage]:
    """All ``n_iter * batch_size`` images of ``request``, in seed order."""
    try:
        with torch.no_grad():
            return _Job(model, request, on_progress).run()
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        release_device_memory()
        size = f"{request.width}x{request.height}"
        if request.hires:
            size += f" (hires fix to {request.hires.target_width}x{request.hires.target_height})"
        where = "GPU" if model.device.type == "cuda" else "machine"
        raise OutOfMemory(
            f"the {where} ran out of memory making {request.batch_size} image(s) at {size}; "
            "use a smaller size, batch size or hires scale"
        ) from None


class _Job:
    def __init__(self, model: LoadedModel, request: GenerationRequest, on_progress: ProgressCallback) -> None:
        self.model = model
        self.request = request
        self.on_progress = on_progress
        self.total = total_steps(request)
        self.step = 0
        self.factor = model.vae_scale_factor
        self.channels = model.latent_channels

    # -- the job --------------------------------------------------------------------------------

    def run(self) -> list[GeneratedImage]:
        req = self.request
        seeds, subseeds = batch_seeds(req.seed, req.subseed, req.subseed_strength, req.image_count)
        self._report("sampling")
        cond = encode_for_model(self.model, req.prompt, req.negative_prompt, req.clip_skip)
        hires_cond = cond
        if req.hires and (req.hires.prompt or req.hires.negative_prompt):
            hires_cond = encode_for_model(
                self.model,
                req.hires.prompt or req.prompt,
                req.hires.negative_prompt or req.negative_prompt,
                req.clip_skip,
            )
        init_latents = self._init_latents() if req.task == "img2img" else None

        results: list[GeneratedImage] = []
        for n in range(req.n_iter):
            batch = slice(n * req.batch_size, (n + 1) * req.batch_size)
            batch_seeds_, batch_subseeds = seeds[batch], subseeds[batch]
            if init_latents is not None:
                latents = self._img2img(init_latents, batch_seeds_, batch_subseeds, cond)
            else:
                latents = self._txt2img(batch_seeds_, batch_subseeds, cond)
                if req.hires:
                    latents = self._hires(latents, batch_seeds_, batch_subseeds, hires_cond)
            self._report("decoding")
            images = decode_latents(self.model, latents)
            for image, seed, subseed in zip(images, batch_seeds_, batch_subseeds, strict=True):
                results.append(GeneratedImage(image, seed, subseed, req.prompt, req.negative_prompt))
        return results

    # -- passes ---------------------------------------------------------------------------------

    def _txt2img(self, seeds: Sequence[int], subseeds: Sequence[int], cond: Conditioning) -> torch.Tensor:
        req = self.request
        noise = self._noise(req.width, req.height, seeds, subseeds)
        pipe = _pipeline(self.model, "txt2img", make_scheduler(self.model.txt2img.scheduler, req.sampler))
        return self._run_pass(
            pipe,
            req.steps,
            height=req.height,
            width=req.width,
            num_inference_steps=req.steps,
            guidance_scale=req.cfg_scale,
            latents=noise.noise.to(self.model.device, self.model.dtype),
            generator=noise.generators,
            **self._common_kwargs(pipe, cond, len(seeds)),
        )

    def _img2img_pass(
        self,
        latents: torch.Tensor,
        noise: ImageNoise,
        *,
        steps: int,
        strength: float,
        sampler: SamplerSpec,
        cond: Conditioning,
        sampler_field: str,
    ) -> torch.Tensor:
        nominal = pass_steps(steps, strength)
        if int(steps * strength) < 1:
            # Nothing to denoise: the result is the input itself.
            self.step += nominal
            self._report("sampling")
            return latents
        scheduler = make_scheduler(self.model.txt2img.scheduler, sampler, field=sampler_field)
        pipe = _pipeline(self.model, "img2img", scheduler)
        pipe.sdcloud_noise = noise.noise
        return self._run_pass(
            pipe,
            nominal,
            image=latents.to(self.model.device, self.model.dtype),
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=self.request.cfg_scale,
            generator=noise.generators,
            **self._common_kwargs(pipe, cond, latents.shape[0]),
        )

    def _img2img(
        self, init_latents: torch.Tensor, seeds: Sequence[int], subseeds: Sequence[int], cond: Conditioning
    ) -> torch.Tensor:
        req = self.request
        noise = self._noise(req.width, req.height, seeds, subseeds)
        return self._img2img_pass(
            init_latents,
            noise,
            steps=req.steps,
            strength=float(req.denoising_strength if req.denoising_strength is not None else 0.75),
            sampler=req.sampler,
            cond=cond,
            sampler_field="payload.sampler_name",
        )

    def _hires(
        self, latents: torch.Tensor, seeds: Sequence[int], subseeds: Sequence[int], cond: Conditioning
    ) -> torch.Tensor:
        req = self.request
        hr = req.hires
        assert hr is not None
        width, height = hr.target_width, hr.target_height
        if hr.upscaler in LATENT_UPSCALE_MODES:
            mode, antialias = LATENT_UPSCALE_MODES[hr.upscaler]
            upscaled = torch.nn.functional.interpolate(
                latents.float(),
                size=(height // self.factor, width // self.factor),
                mode=mode,
                antialias=antialias,
            ).to(latents.dtype)
        elif hr.upscaler in PIXEL_UPSCALERS:
            resample = PIXEL_UPSCALERS[hr.upscaler]
            images = [
                im.resize((width, height), resample=resample) for im in decode_latents(self.model, latents)
            ]
            upscaled = encode_images(self.model, images)
        else:
            raise UnsupportedFeature(
                f"hires upscaler {hr.upscaler!r} is not available in this engine; use one of "
                + ", ".join(sorted([*LATENT_UPSCALE_MODES, "Lanczos", "Nearest", "None"])),
                field="payload.hr_upscaler",
            )
        # The WebUI draws fresh noise at the new size from the same seeds.
        noise = self._noise(width, height, seeds, subseeds)
        return self._img2img_pass(
            upscaled,
            noise,
            steps=hr.second_pass_steps or req.steps,
            strength=hr.denoising_strength,
            sampler=hr.sampler or req.sampler,
            cond=cond,
            sampler_field="payload.hr_sampler_name" if hr.sampler else "payload.sampler_name",
        )

    # -- pieces ---------------------------------------------------------------------------------

    def _noise(self, width: int, height: int, seeds: Sequence[int], subseeds: Sequence[int]) -> ImageNoise:
        req = self.request
        return image_noise(
            (self.channels, height // self.factor, width // self.factor),
            seeds,
            device=self.model.device,
            subseeds=subseeds,
            subseed_strength=req.subseed_strength,
            seed_resize_from_w=req.seed_resize_from_w,
            seed_resize_from_h=req.seed_resize_from_h,
            scale_factor=self.factor,
        )

    def _common_kwargs(self, pipe: Any, cond: Conditioning, batch: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(cond.repeat(batch).pipeline_kwargs())
        kwargs = {k: v.to(self.model.device, self.model.dtype) for k, v in kwargs.items()}
        kwargs["num_images_per_prompt"] = 1
        if self.request.eta is not None and "eta" in _call_parameters(pipe):
            kwargs["eta"] = self.request.eta
        return kwargs

    def _init_latents(self) -> torch.Tensor:
        req = self.request
        images = _batch_init_images(req.init_images, req.batch_size)
        if req.resize_mode == RESIZE_LATENT:
            latents = [encode_images(self.model, [im]) for im in images]
            size = (req.height // self.factor, req.width // self.factor)
            return torch.cat(
                [torch.nn.functional.interpolate(lat.float(), size=size, mode="bilinear") for lat in latents]
            ).to(latents[0].dtype)
        resized = [resize_image(req.resize_mode, im, req.width, req.height) for im in images]
        return encode_images(self.model, resized)

    def _run_pass(self, pipe: Any, nominal_steps: int, **kwargs: Any) -> torch.Tensor:
        """Run one sampling pass, reporting its steps as ``nominal_steps`` of the job's total.

        Second-order samplers call back twice per step, img2img passes run a slice of the
        schedule: the pipeline's own count is scaled onto the WebUI's step count.
        """
        base = self.step

        def callback(pipe: Any, index: int, timestep: Any, tensors: dict) -> dict:
            actual = max(1, int(getattr(pipe, "num_timesteps", 0) or nominal_steps))
            self.step = base + min(nominal_steps, round((index + 1) * nominal_steps / actual))
            self._report("sampling")
            return {}

        out = pipe(output_type="latent", callback_on_step_end=callback, **kwargs)
        self.step = base + nominal_steps
        return out.images

    def _report(self, phase: str) -> None:
        self.on_progress(Progress(self.request.job_id, phase, min(self.step, self.total), self.total))


# --- pipelines ---------------------------------------------------------------------------------------


class _WebUIGuidance:
    """Classifier-free guidance for every scale but 1, as the WebUI does.

    diffusers skips the unconditional pass for scales <= 1, which turns cfg 0.5 into cfg 1; the
    WebUI blends ``uncond + scale * (cond - uncond)`` for any scale, and at exactly 1 that blend
    is the conditional result alone, so skipping it there changes nothing.
    """

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale != 1 and self.unet.config.time_cond_proj_dim is None


def _noised_latents(
    pipe: Any, image: torch.Tensor, timestep: torch.Tensor, dtype: Any, device: Any
) -> torch.Tensor:
    """img2img start: our latents plus our noise, at the pass's first timestep."""
    init = image.to(device=device, dtype=dtype)
    noise = pipe.sdcloud_noise.to(device=device, dtype=dtype)
    return pipe.scheduler.add_noise(init, noise, timestep)


class _SDTxt2Img(_WebUIGuidance, StableDiffusionPipeline):
    pass


class _SDXLTxt2Img(_WebUIGuidance, StableDiffusionXLPipeline):
    pass


class _SDImg2Img(_WebUIGuidance, StableDiffusionImg2ImgPipeline):
    """Takes latents as ``image`` and noises them with ``sdcloud_noise`` (the WebUI's seeds)."""

    sdcloud_noise: torch.Tensor | None = None

    def prepare_latents(
        self, image, timestep, batch_size, num_images_per_prompt, dtype, device, generator=None
    ):
        return _noised_latents(self, image, timestep, dtype, device)


class _SDXLImg2Img(_WebUIGuidance, StableDiffusionXLImg2ImgPipeline):
    sdcloud_noise: torch.Tensor | None = None

    def prepare_latents(
        self,
        image,
        timestep,
        batch_size,
        num_images_per_prompt,
        dtype,
        device,
        generator=None,
        add_noise=True,
    ):
        if not add_noise:
            return image.to(device=device, dtype=dtype)
        return _noised_latents(self, image, timestep, dtype, device)


def _pipeline(model: LoadedModel, kind: str, scheduler: Any) -> Any:
    """A fresh pipeline over the model's shared modules with this pass's scheduler.

    Pipelines keep per-call state (guidance scale, step count) on themselves, so each pass gets
    its own cheap instance instead of mutating the cached one.
    """
    components = dict(model.txt2img.components)
    components["scheduler"] = scheduler
    if model.is_sdxl:
        cls = _SDXLTxt2Img if kind == "txt2img" else _SDXLImg2Img
        pipe = cls(**components, add_watermarker=False)
    else:
        cls = _SDTxt2Img if kind == "txt2img" else _SDImg2Img
        pipe = cls(**components, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


_CALL_PARAMETERS: dict[type, frozenset[str]] = {}


def _call_parameters(pipe: Any) -> frozenset[str]:
    import inspect

    cls = type(pipe)
    if cls not in _CALL_PARAMETERS:
        _CALL_PARAMETERS[cls] = frozenset(inspect.signature(cls.__call__).parameters)
    return _CALL_PARAMETERS[cls]


# --- images <-> latents ------------------------------------------------------------------------------


def _vae_scale(vae: Any) -> tuple[float, torch.Tensor | None, torch.Tensor | None]:
    """(scaling factor, latents mean, latents std); mean/std only for VAEs that declare them."""
    config = vae.config
    mean = getattr(config, "latents_mean", None)
    std = getattr(config, "latents_std", None)
    if mean is None or std is None:
        return float(config.scaling_factor), None, None
    return (
        float(config.scaling_factor),
        torch.tensor(mean).view(1, -1, 1, 1),
        torch.tensor(std).view(1, -1, 1, 1),
    )


@torch.no_grad()
def encode_images(model: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    """Scaled latents of RGB images (all the same size)."""
    vae = model.txt2img.vae
    pixels = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images]) / 127.5 - 1.0
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(model.device, vae.dtype)
    # The posterior's mean, not a sample: the VAE's spread is tiny, and a sample would need an RNG
    # the WebUI does not seed either.
    latents = vae.encode(x).latent_dist.mean
    scale, mean, std = _vae_scale(vae)
    if mean is not None:
        latents = (latents - mean.to(latents)) * scale / std.to(latents)
    else:
        latents = latents * scale
    return latents.to(model.dtype)


@torch.no_grad()
def decode_latents(model: LoadedModel, latents: torch.Tensor) -> list[Image.Image]:
    vae = model.txt2img.vae
    scale, mean, std = _vae_scale(vae)
    z = latents.to(model.device, vae.dtype)
    z = z * std.to(z) / scale + mean.to(z) if mean is not None else z / scale
    pixels = vae.decode(z).sample
    if torch.isnan(pixels).any() and vae.dtype == torch.float16:
        # fp16 VAEs overflow on some latents; decode that batch in fp32 like --no-half-vae.
        pixels = copy.deepcopy(vae).float().decode(z.float()).sample
    return model.txt2img.image_processor.postprocess(pixels.float(), output_type="pil")


# --- init images -----------------------------------------------------------------------------------


def _batch_init_images(init_images: Sequence[Image.Image], batch_size: int) -> list[Image.Image]:
    if not init_images:
        raise InvalidRequest("img2img needs at least one init image", field="payload.init_images")
    images = [_flatten(im) for im in init_images]
    if len(images) == 1:
        return images * batch_size
    if len(images) != batch_size:
        raise InvalidRequest(
            f"init_images has {len(images)} images; send one, or exactly batch_size ({batch_size})",
            field="payload.init_images",
        )
    return images


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, transparent areas on white (the WebUI's default img2img background)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def resize_image(mode: int, image: Image.Image, width: int, height: int) -> Image.Image:
    """The WebUI's img2img resize modes 0 (just resize), 1 (crop and resize), 2 (resize and fill)."""
    lanczos = Image.Resampling.LANCZOS
    if mode == RESIZE_JUST_RESIZE:
        return image.resize((width, height), resample=lanczos)
    ratio = width / height
    src_ratio = image.width / image.height
    if mode == RESIZE_CROP:
        src_w = width if ratio > src_ratio else image.width * height // image.height
        src_h = height if ratio <= src_ratio else image.height * width // image.width
        resized = image.resize((src_w, src_h), resample=lanczos)
        out = Image.new("RGB", (width, height))
        out.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        return out
    if mode == RESIZE_FILL:
        src_w = width if ratio < src_ratio else image.width * height // image.height
        src_h = height if ratio >= src_ratio else image.height * width // image.width
        resized = image.resize((src_w, src_h), resample=lanczos)
        out = Image.new("RGB", (width, height))
        out.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        if ratio < src_ratio:
            fill = height // 2 - src_h // 2
            if fill > 0:
                out.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
                out.paste(
                    resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
                    box=(0, fill + src_h),
                )
        elif ratio > src_ratio:
            fill = width // 2 - src_w // 2
            if fill > 0:
                out.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
                out.paste(
                    resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
                    box=(fill + src_w, 0),
                )
        return out
    raise InvalidRequest(f"resize_mode must be 0, 1, 2 or 3 (got {mode})", field="payload.resize_mode")
