"""Run a validated txt2img / img2img request on a loaded model, the WebUI's way.

Our own everything: prompt conditioning (emphasis, long prompts), initial noise (per-image seeds,
variation seeds, seed resize), the samplers and their schedules (``sampling``), img2img resize
modes, and the hires fix as a second img2img pass. Each batch iteration asks the optional
``SamplingControl`` before every step; a skipped or interrupted pass keeps what A1111 keeps (the
last conditional prediction), and an interrupt ends the job after that iteration's images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from inference_container.contract import strip_network_tags
from inference_container.engine.checkpoint import LoadedModel
from inference_container.engine.init_images import RESIZE_LATENT, batch_init_images, resize_image
from inference_container.engine.latents import decode_latents, encode_images
from inference_container.engine.memory import is_out_of_memory, release_device_memory
from inference_container.engine.noise import ImageNoise, image_noise
from inference_container.engine.previews import preview_jpeg, wants_preview
from inference_container.engine.sampling.denoiser import PassConditioning
from inference_container.engine.sampling.runner import (
    Img2ImgStart,
    PassModel,
    PassResult,
    pass_step_count,
    run_pass,
)
from inference_container.engine.seeds import batch_seeds
from inference_container.engine.text_encoding import Conditioning, encode_for_model
from inference_container.engine.types import (
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    Progress,
    ProgressCallback,
    SamplerSpec,
    SamplingControl,
)
from inference_container.errors import OutOfMemory, UnsupportedFeature

__all__ = ["decode_latents", "encode_images", "generate", "pass_steps", "resize_image", "total_steps"]

# A1111's latent upscale modes for the hires fix: name -> (interpolate mode, antialias).
LATENT_UPSCALE_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


def _pixel_upscalers() -> dict:
    from PIL import Image

    # Pixel-space upscalers we implement; "None" (like an absent upscaler) is a plain Lanczos resize.
    return {
        None: Image.Resampling.LANCZOS,
        "None": Image.Resampling.LANCZOS,
        "Lanczos": Image.Resampling.LANCZOS,
        "Nearest": Image.Resampling.NEAREST,
    }


def pass_steps(steps: int, denoising_strength: float | None) -> int:
    """Steps an img2img pass counts: A1111's ``t_enc + 1`` with t_enc = int(min(strength, 0.999) * steps)."""
    if denoising_strength is None:
        return steps
    return pass_step_count(steps, Img2ImgStart(torch.empty(0), float(denoising_strength), False))


def _hires_steps(request: GenerationRequest) -> int:
    hr = request.hires
    assert hr is not None
    # A1111 hands the hires pass its step count explicitly: exactly that many steps run.
    return (hr.second_pass_steps or request.steps) if hr.denoising_strength > 0 else 0


def total_steps(request: GenerationRequest) -> int:
    """Sampling steps over the whole job, both hires passes and every batch counted."""
    per_batch = request.steps
    if request.task == "img2img":
        per_batch = pass_steps(request.steps, request.denoising_strength)
    if request.task == "txt2img" and request.hires:
        per_batch += _hires_steps(request)
    return per_batch * request.n_iter


def generate(
    model: LoadedModel,
    request: GenerationRequest,
    on_progress: ProgressCallback,
    control: SamplingControl | None = None,
) -> GenerationResult:
    """All ``n_iter * batch_size`` images of ``request``, in seed order (fewer when interrupted)."""
    try:
        with torch.no_grad():
            return _RequestGeneration(model, request, on_progress, control).run()
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


class _RequestGeneration:
    """One request's generation: its batches, their passes, progress and control."""

    def __init__(
        self,
        model: LoadedModel,
        request: GenerationRequest,
        on_progress: ProgressCallback,
        control: SamplingControl | None,
    ) -> None:
        self.model = model
        self.request = request
        self.on_progress = on_progress
        self.control = control
        self.total = total_steps(request)
        self.step = 0
        self.factor = model.vae_scale_factor
        self.channels = model.latent_channels
        pipe = model.txt2img
        self.pass_model = PassModel(
            unet=pipe.unet,
            dtype=model.dtype,
            device=model.device,
            scheduler_config=dict(pipe.scheduler.config),
            is_sdxl=model.is_sdxl,
        )

    def run(self) -> GenerationResult:
        req = self.request
        seeds, subseeds = batch_seeds(req.seed, req.subseed, req.subseed_strength, req.image_count)
        self._report("sampling")
        # A1111 conditions on the prompt with its extra-network tags taken out (they were applied).
        prompt = strip_network_tags(req.prompt)
        cond = encode_for_model(self.model, prompt, req.negative_prompt, req.clip_skip)
        hires_cond = cond
        if req.hires and (req.hires.prompt or req.hires.negative_prompt):
            hires_cond = encode_for_model(
                self.model,
                strip_network_tags(req.hires.prompt) or prompt,
                req.hires.negative_prompt or req.negative_prompt,
                req.clip_skip,
            )
        init_latents = self._init_latents() if req.task == "img2img" else None

        results: list[GeneratedImage] = []
        skipped: list[int] = []
        interrupted = False
        for n in range(req.n_iter):
            batch = slice(n * req.batch_size, (n + 1) * req.batch_size)
            iter_seeds, iter_subseeds = seeds[batch], subseeds[batch]
            iteration_end = self.step + self.total // req.n_iter
            if init_latents is not None:
                result = self._img2img(n, init_latents, iter_seeds, iter_subseeds, cond)
            else:
                result = self._txt2img(n, iter_seeds, iter_subseeds, cond)
                # A1111 skips the hires pass once the first pass was stopped.
                if req.hires and result.stopped is None:
                    result = self._hires(n, result.latents, iter_seeds, iter_subseeds, hires_cond)
            if result.stopped == "skip":
                skipped.append(n)
                self.step = iteration_end
            self._report("decoding")
            images = decode_latents(self.model, result.latents)
            for image, seed, subseed in zip(images, iter_seeds, iter_subseeds, strict=True):
                results.append(GeneratedImage(image, seed, subseed, req.prompt, req.negative_prompt))
            if result.stopped == "interrupt":
                interrupted = True
                break
        return GenerationResult(results, interrupted=interrupted, skipped_iterations=tuple(skipped))

    # -- passes ---------------------------------------------------------------------------------

    def _txt2img(self, n: int, seeds: Sequence[int], subseeds: Sequence[int], cond: Conditioning) -> PassResult:
        req = self.request
        noise = self._noise(req.width, req.height, seeds, subseeds)
        return self._pass(n, req.sampler, req.steps, noise, seeds, cond, req.width, req.height, None)

    def _img2img(
        self, n: int, init_latents: torch.Tensor, seeds: Sequence[int], subseeds: Sequence[int], cond: Conditioning
    ) -> PassResult:
        req = self.request
        noise = self._noise(req.width, req.height, seeds, subseeds)
        strength = float(req.denoising_strength if req.denoising_strength is not None else 0.75)
        start = Img2ImgStart(init_latents, strength, fixed_steps=False)
        return self._pass(n, req.sampler, req.steps, noise, seeds, cond, req.width, req.height, start)

    def _hires(
        self, n: int, latents: torch.Tensor, seeds: Sequence[int], subseeds: Sequence[int], cond: Conditioning
    ) -> PassResult:
        req = self.request
        hr = req.hires
        assert hr is not None
        width, height = hr.target_width, hr.target_height
        pixel_upscalers = _pixel_upscalers()
        if hr.upscaler in LATENT_UPSCALE_MODES:
            mode, antialias = LATENT_UPSCALE_MODES[hr.upscaler]
            upscaled = torch.nn.functional.interpolate(
                latents.float(),
                size=(height // self.factor, width // self.factor),
                mode=mode,
                antialias=antialias,
            )
        elif hr.upscaler in pixel_upscalers:
            resample = pixel_upscalers[hr.upscaler]
            images = [
                im.resize((width, height), resample=resample) for im in decode_latents(self.model, latents)
            ]
            upscaled = encode_images(self.model, images).float()
        else:
            raise UnsupportedFeature(
                f"hires upscaler {hr.upscaler!r} is not available in this engine; use one of "
                + ", ".join(sorted([*LATENT_UPSCALE_MODES, "Lanczos", "Nearest", "None"])),
                field="payload.hr_upscaler",
            )
        steps = hr.second_pass_steps or req.steps
        if hr.denoising_strength <= 0:
            return PassResult(upscaled, None)
        # The WebUI draws fresh noise at the new size from the same seeds.
        noise = self._noise(width, height, seeds, subseeds)
        start = Img2ImgStart(upscaled, hr.denoising_strength, fixed_steps=True)
        return self._pass(n, hr.sampler or req.sampler, steps, noise, seeds, cond, width, height, start)

    def _pass(
        self,
        n: int,
        sampler: SamplerSpec,
        steps: int,
        noise: ImageNoise,
        seeds: Sequence[int],
        cond: Conditioning,
        width: int,
        height: int,
        start: Img2ImgStart | None,
    ) -> PassResult:
        """One sampling pass, counted as the WebUI's steps for it (real steps, capped at that)."""
        nominal = pass_step_count(steps, start)
        base = self.step

        def poll(i: int) -> str:
            return "continue" if self.control is None else self.control.poll(n)

        def on_step(i: int, prediction: torch.Tensor | None) -> None:
            self.step = base + min(nominal, i + 1)
            if prediction is not None and wants_preview(i + 1, self.request.preview_every_n_steps):
                preview = preview_jpeg(prediction, is_sdxl=self.model.is_sdxl)
                self.on_progress(Progress(self.request.job_id, "sampling", min(self.step, self.total), self.total,
                                          preview=preview, preview_step=self.step))
                return
            self._report("sampling")

        result = run_pass(
            self.pass_model,
            sampler,
            steps=steps,
            noise=noise.noise,
            generators=noise.generators,
            seeds=seeds,
            cond=self._pass_conditioning(cond, len(seeds), width, height),
            cfg_scale=self.request.cfg_scale,
            start=start,
            poll=poll,
            on_step=on_step,
        )
        if result.stopped is None:
            self.step = base + nominal
        return result

    # -- pieces ---------------------------------------------------------------------------------

    def _pass_conditioning(self, cond: Conditioning, batch: int, width: int, height: int) -> PassConditioning:
        device, dtype = self.model.device, self.model.dtype
        rep = cond.repeat(batch)

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, dtype)

        time_ids = None
        if rep.pooled_prompt_embeds is not None:
            # SDXL's size conditioning: original size = target size = the pass's size, no crop.
            time_ids = torch.tensor([[height, width, 0, 0, height, width]], device=device, dtype=dtype).repeat(batch, 1)
        return PassConditioning(
            cond=move(rep.prompt_embeds),
            uncond=move(rep.negative_prompt_embeds),
            pooled=move(rep.pooled_prompt_embeds),
            uncond_pooled=move(rep.negative_pooled_prompt_embeds),
            time_ids=time_ids,
        )

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
            eta_noise_seed_delta=req.eta_noise_seed_delta,
        )

    def _init_latents(self) -> torch.Tensor:
        req = self.request
        images = batch_init_images(req.init_images, req.batch_size)
        if req.resize_mode == RESIZE_LATENT:
            latents = [encode_images(self.model, [im]) for im in images]
            size = (req.height // self.factor, req.width // self.factor)
            return torch.cat(
                [torch.nn.functional.interpolate(lat.float(), size=size, mode="bilinear") for lat in latents]
            )
        resized = [resize_image(req.resize_mode, im, req.width, req.height) for im in images]
        return encode_images(self.model, resized).float()

    def _report(self, phase: str) -> None:
        self.on_progress(Progress(self.request.job_id, phase, min(self.step, self.total), self.total))
