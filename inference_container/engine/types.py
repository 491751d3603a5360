"""Value types shared by the engine's modules: what a validated job asks for.

``request.parse_job`` turns a raw job document into a ``GenerationRequest``; the generator,
infotext builder and server only ever see this validated form.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from PIL import Image

from . import policy

Task = Literal["txt2img", "img2img"]


@dataclass(frozen=True)
class ModelRef:
    """A model by reference (DESIGN §4): the name the artist knows, where the bytes are, their hash."""

    name: str
    uri: str
    sha256: str
    size: int

    @property
    def short_hash(self) -> str:
        """A1111's ``Model hash:`` is the first 10 hex digits of the file's sha256."""
        return self.sha256[:10]


@dataclass(frozen=True)
class SamplerSpec:
    """An A1111 sampler + schedule type with its parameters resolved (``samplers.resolve_sampler``)."""

    name: str  # canonical A1111 sampler name, e.g. "DPM++ 2M" (goes into infotext "Sampler")
    scheduler: str  # schedule type in effect, e.g. "karras"; "automatic" = k-diffusion's own (uniform)
    scheduler_label: str  # A1111 label, e.g. "Karras" (goes into infotext "Schedule type")
    kind: str = "kdiffusion"  # "kdiffusion" | "timesteps" | "lcm" (sampling.catalog)
    # Parameters as the sampler uses them: eta None = the sampler takes none; s_tmax 0 = no bound.
    eta: float | None = None
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = 0.0
    s_noise: float = 1.0
    eta_default: float | None = None  # A1111's option default; "Eta"/"Eta DDIM" is written when eta differs
    discard_penultimate_sigma: bool = False
    uses_ensd: bool = False  # A1111 writes ENSD for these samplers when eta_noise_seed_delta != 0


@dataclass(frozen=True)
class HiresFix:
    """txt2img hires fix: first pass at (width, height), second pass at (target_width, target_height)."""

    target_width: int
    target_height: int
    upscaler: str  # A1111 name, e.g. "Latent", "Lanczos"
    second_pass_steps: int  # 0 = same as first pass
    denoising_strength: float
    scale: float
    resize_x: int
    resize_y: int
    sampler: SamplerSpec | None  # None = same as first pass
    prompt: str  # "" = same as first pass
    negative_prompt: str


@dataclass(frozen=True)
class LoraUse:
    """One LoRA applied for a job: the file, the name the tag wrote (A1111's ``mentioned_name``,
    which the infotext keys its hash by) and the two multipliers."""

    ref: ModelRef
    mentioned_name: str
    te_multiplier: float
    unet_multiplier: float

    @property
    def short_hash(self) -> str:
        """A1111's ``Lora hashes`` values: the first 12 hex digits of the file's sha256."""
        return self.ref.sha256[:12]


@dataclass(frozen=True)
class GenerationRequest:
    """A validated txt2img/img2img job. Seeds are resolved (never -1)."""

    job_id: str
    task: Task
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    cfg_scale: float
    sampler: SamplerSpec
    seed: int
    subseed: int
    subseed_strength: float
    seed_resize_from_w: int
    seed_resize_from_h: int
    batch_size: int
    n_iter: int
    clip_skip: int
    eta: float | None
    denoising_strength: float | None
    checkpoint: ModelRef
    vae: ModelRef | None = None
    init_images: tuple[Image.Image, ...] = ()
    resize_mode: int = 0
    hires: HiresFix | None = None
    output_prefix: str | None = None
    preview_every_n_steps: int = 10  # the WebUI's show_progress_every_n_steps; <= 0: no live previews
    eta_noise_seed_delta: int = 0  # A1111's ENSD: per-step noise generators reseeded with seed + ENSD
    # The payload with every A1111 default filled in, echoed back as ``parameters``.
    parameters: dict[str, Any] = field(default_factory=dict)
    # Extra networks, in the order the prompt names them (models.loras / models.embeddings).
    loras: tuple[LoraUse, ...] = ()
    embeddings: tuple[ModelRef, ...] = ()

    @property
    def image_count(self) -> int:
        return self.batch_size * self.n_iter


@dataclass(frozen=True)
class Progress:
    """Where a job is. ``phase`` is one of PHASES; step/steps count sampling steps over the whole job."""

    job_id: str | None
    phase: str
    step: int = 0
    steps: int = 0
    # The latest live preview (a small JPEG, engine/previews.py) and the job step it shows.
    preview: bytes | None = field(default=None, repr=False)
    preview_step: int = 0

    @property
    def fraction(self) -> float:
        return 0.0 if self.steps <= 0 else min(1.0, self.step / self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "phase": self.phase,
            "step": self.step,
            "steps": self.steps,
            "fraction": round(self.fraction, 4),
            "preview_step": self.preview_step,
            "preview": base64.b64encode(self.preview).decode("ascii") if self.preview else None,
        }


PHASES = policy.PHASES

ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    seed: int
    subseed: int
    prompt: str
    negative_prompt: str
    infotext: str = ""


class SamplingControl(Protocol):
    """Asked once before each sampling step; ``iteration`` is the 0-based batch (n_iter) index."""

    def poll(self, iteration: int) -> str: ...  # "continue" | "skip" | "interrupt"


@dataclass(frozen=True)
class GenerationResult:
    """What ``generate`` made: every image sampled, whole or (skipped / interrupted) partial."""

    images: list[GeneratedImage]
    interrupted: bool = False
    skipped_iterations: tuple[int, ...] = ()
