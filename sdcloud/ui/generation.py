"""The Generate action without gradio: form values -> A1111 payload -> job -> images + infotext.

`run_generation` is a generator of GenerateOutputs so the gradio tab can stream each change of the
job (long-poll driven) to the page; tests call it directly with a fake client.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image

from .. import limits
from ..client import SDCloudClient, raise_for_job
from ..contract import PayloadRejected, check_payload
from ..errors import Conflict, JobCancelled, SDCloudError, Timeout
from ..models import Job
from ..samplers import (
    DEFAULT_HIRES_UPSCALER,
    DEFAULT_SAMPLER,
    DEFAULT_SCHEDULE_LABEL,
    SAMPLERS,
    scheduler_name,
)
from .messages import error_html, progress_fraction, progress_text, status_html
from .results import fetch_result_images

log = logging.getLogger("sdcloud.ui")

# Cold GPUs (scale from zero) can take minutes; past this the job keeps running and stays in history.
DEFAULT_GENERATION_TIMEOUT_S = 1800.0

ProgressFn = Callable[..., Any]


class InvalidInput(ValueError):
    """A form value the server would refuse; the message names the control to fix."""


@dataclass(frozen=True)
class GenerateForm:
    """The Generate tab's controls, with A1111's UI defaults."""

    task: str = "txt2img"
    prompt: str = ""
    negative_prompt: str = ""
    sampler_name: str = DEFAULT_SAMPLER
    schedule_type: str = DEFAULT_SCHEDULE_LABEL
    steps: float = 20
    cfg_scale: float = 7.0
    width: float = 512
    height: float = 512
    seed: float = -1
    n_iter: float = 1
    batch_size: float = 1
    enable_hr: bool = False
    hr_upscaler: str = DEFAULT_HIRES_UPSCALER
    hr_second_pass_steps: float = 0
    hr_denoising_strength: float = 0.7
    hr_scale: float = 2.0
    hr_resize_x: float = 0
    hr_resize_y: float = 0
    init_image: Any = None
    denoising_strength: float = 0.75
    checkpoint: str = ""
    endpoint: str = ""

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> GenerateForm:
        """From a {field: value} mapping; missing or None values take the defaults."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known and v is not None})


def _whole(value: Any, label: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{label} must be a number (got {value!r})") from None
    if number != int(number):
        raise InvalidInput(f"{label} must be a whole number (got {value!r})")
    return int(number)


def _number(value: Any, label: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{label} must be a number (got {value!r})") from None


def _in_range(value: float, bounds: tuple[float, float], label: str) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidInput(f"{label} must be between {low:g} and {high:g} (got {value:g})")


def _check_side(value: int, label: str) -> None:
    if value % limits.SIZE_MULTIPLE:
        raise InvalidInput(f"{label} must be a multiple of {limits.SIZE_MULTIPLE} (got {value})")
    _in_range(value, (limits.MIN_SIDE, limits.MAX_SIDE), label)


def _check_area(width: int, height: int, what: str) -> None:
    if width * height > limits.MAX_PIXELS:
        raise InvalidInput(
            f"{what} {width}x{height} is too large: width x height must be at most {limits.MAX_PIXELS} pixels"
        )


def hires_target(width: int, height: int, scale: float, resize_x: int, resize_y: int) -> tuple[int, int]:
    """The hires-fix output size the way A1111 computes it (resize-to wins over scale)."""
    if resize_x == 0 and resize_y == 0:
        return int(width * scale), int(height * scale)
    if resize_y == 0:
        return resize_x, resize_x * height // width
    if resize_x == 0:
        return resize_y * width // height, resize_y
    return resize_x, resize_y


def encode_init_image(image: Any) -> str:
    """A PIL image (or a path) as base64 PNG, within the request-size and pixel limits."""
    if isinstance(image, (str, Path)):
        image = Image.open(image)
    if not isinstance(image, Image.Image):
        raise InvalidInput("Init image: upload an image file")
    w, h = image.size
    if w * h > limits.MAX_INIT_IMAGE_PIXELS:
        raise InvalidInput(
            f"Init image is {w}x{h}: at most {limits.MAX_INIT_IMAGE_PIXELS} pixels; downscale it"
        )
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    encoded = base64.b64encode(buf.getvalue()).decode("ascii")
    # keep headroom under the body limit for the rest of the JSON
    budget = limits.MAX_REQUEST_BYTES - 64 * 1024
    if len(encoded) > budget:
        raise InvalidInput(
            f"Init image is too large to send ({len(encoded) / 2**20:.1f} MiB encoded; "
            f"the limit is {limits.MAX_REQUEST_BYTES / 2**20:.0f} MiB): downscale it"
        )
    return encoded


def build_payload(form: GenerateForm) -> tuple[str, dict[str, Any]]:
    """(task, A1111 payload) from the form, or InvalidInput naming the control to fix."""
    if form.task not in ("txt2img", "img2img"):
        raise InvalidInput(f"Task must be txt2img or img2img (got {form.task!r})")
    if form.sampler_name not in SAMPLERS:
        raise InvalidInput(f"Sampling method {form.sampler_name!r} is not supported; pick one from the list")
    try:
        scheduler = scheduler_name(form.schedule_type)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    steps = _whole(form.steps, "Sampling steps")
    _in_range(steps, limits.STEPS, "Sampling steps")
    cfg = _number(form.cfg_scale, "CFG Scale")
    _in_range(cfg, limits.CFG_SCALE, "CFG Scale")
    width = _whole(form.width, "Width")
    height = _whole(form.height, "Height")
    _check_side(width, "Width")
    _check_side(height, "Height")
    _check_area(width, height, "Size")
    n_iter = _whole(form.n_iter, "Batch count")
    _in_range(n_iter, limits.N_ITER, "Batch count")
    batch_size = _whole(form.batch_size, "Batch size")
    _in_range(batch_size, limits.BATCH_SIZE, "Batch size")
    seed = _whole(form.seed, "Seed")

    payload: dict[str, Any] = {
        "prompt": form.prompt or "",
        "negative_prompt": form.negative_prompt or "",
        "sampler_name": form.sampler_name,
        "scheduler": scheduler,
        "steps": steps,
        "cfg_scale": cfg,
        "width": width,
        "height": height,
        "seed": seed,
        "n_iter": n_iter,
        "batch_size": batch_size,
    }
    if form.task == "img2img":
        if form.init_image is None:
            raise InvalidInput("Init image: upload an image for img2img")
        strength = _number(form.denoising_strength, "Denoising strength")
        _in_range(strength, limits.DENOISING_STRENGTH, "Denoising strength")
        payload["init_images"] = [encode_init_image(form.init_image)]
        payload["denoising_strength"] = strength
    elif form.enable_hr:
        strength = _number(form.hr_denoising_strength, "Denoising strength")
        _in_range(strength, limits.DENOISING_STRENGTH, "Denoising strength")
        hr_steps = _whole(form.hr_second_pass_steps, "Hires steps")
        _in_range(hr_steps, limits.HR_SECOND_PASS_STEPS, "Hires steps")
        scale = _number(form.hr_scale, "Upscale by")
        if scale <= 0:
            raise InvalidInput(f"Upscale by must be above 0 (got {scale:g})")
        resize_x = _whole(form.hr_resize_x, "Resize width to")
        resize_y = _whole(form.hr_resize_y, "Resize height to")
        _in_range(resize_x, (0, limits.MAX_SIDE), "Resize width to")
        _in_range(resize_y, (0, limits.MAX_SIDE), "Resize height to")
        tw, th = hires_target(width, height, scale, resize_x, resize_y)
        if tw > limits.MAX_SIDE or th > limits.MAX_SIDE:
            raise InvalidInput(
                f"Hires. fix target {tw}x{th} is too large: each side must be at most {limits.MAX_SIDE}"
            )
        _check_area(tw, th, "Hires. fix target")
        payload.update(
            {
                "enable_hr": True,
                "hr_upscaler": form.hr_upscaler or DEFAULT_HIRES_UPSCALER,
                "hr_second_pass_steps": hr_steps,
                "denoising_strength": strength,
                "hr_scale": scale,
                "hr_resize_x": resize_x,
                "hr_resize_y": resize_y,
            }
        )
    _check_with_contract(form.task, payload)
    return form.task, payload


def _check_with_contract(task: str, payload: dict[str, Any]) -> None:
    """The last word before anything is sent: the same rules, in the same words, as the
    middleware and the engine."""
    try:
        check_payload(task, payload, decode_images=False)
    except PayloadRejected as rejected:
        first = rejected.problems[0]
        raise InvalidInput(f"{first.field.removeprefix('payload.')}: {first.message}") from None


@dataclass(frozen=True)
class GenerateOutputs:
    """One update of the Generate tab; None means "leave that output as it is"."""

    status: str
    images: list[str] | None = None
    infotext: str | None = None
    job_id: str | None = None
    infotexts: list[str] | None = None
    seeds: list[int] | None = None  # per image, for the reuse-seed button

    @property
    def seed(self) -> int | None:
        return self.seeds[0] if self.seeds else None


def _seeds(job: Job, count: int) -> list[int]:
    if job.result is None:
        return []
    seeds = [job.result.seed(i) for i in range(count)]
    return [s for s in seeds if s is not None]


def _report(progress: ProgressFn | None, fraction: float, text: str) -> None:
    if progress is None:
        return
    try:
        progress(fraction, desc=text)
    except Exception:  # a broken progress bar must not fail the generation
        log.debug("progress callback failed", exc_info=True)


@dataclass(frozen=True)
class JobControl:
    """What the caller's Interrupt / Skip buttons say, asked between polls of a running job.

    ``skip_requested`` is consumed: it answers True once per press (the caller resets its flag).
    """

    cancel_requested: Callable[[], bool]
    skip_requested: Callable[[], bool] = lambda: False


# How long one poll may wait for a change while buttons must stay responsive.
CONTROL_POLL_S = 1.0


def follow_job(
    client: SDCloudClient,
    task: str,
    payload: dict[str, Any],
    checkpoint: str,
    endpoint: str | None = None,
    *,
    timeout: float = DEFAULT_GENERATION_TIMEOUT_S,
    control: JobControl | None = None,
    on_submitted: Callable[[Job], None] | None = None,
) -> Iterator[Job]:
    """Submit ``(task, payload)`` and yield the job as submitted, then at each change, until it
    ends (the last one yielded is terminal). With ``control``, polls at most CONTROL_POLL_S apart
    and passes Interrupt (cancel; the images sampled so far come back) and Skip to the server.

    The one submit -> watch implementation the standalone form and the WebUI share.
    """
    submitted = client.submit_inference(task, payload, checkpoint, endpoint=endpoint or None)
    if on_submitted is not None:
        on_submitted(submitted)
    if control is None:
        yield from client.watch_inference(submitted.id, timeout=timeout, first=submitted)
        return
    job = submitted
    yield job
    deadline = time.monotonic() + timeout
    cancel_sent = False
    while not job.is_terminal:
        if not cancel_sent and control.cancel_requested():
            cancel_sent = True
            try:
                client.cancel_inference(job.id)
            except Conflict:  # it ended meanwhile: the next poll shows how
                pass
        elif not cancel_sent and control.skip_requested():
            try:
                client.skip_inference(job.id)
            except Conflict:  # not sampling (queued, finishing): nothing to skip
                log.debug("skip of job %s refused: not running", job.id)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout(
                f"job {job.id} did not finish within {timeout:g} s (last status: {job.status}); "
                "it may still finish: look in the job history"
            )
        latest = client.get_inference(job.id, wait=min(CONTROL_POLL_S, remaining), version=job.version)
        changed = latest.version != job.version or latest.status != job.status
        job = latest
        if changed:
            yield job


def run_generation(
    get_client: Callable[[], SDCloudClient],
    values: Mapping[str, Any],
    outputs_dir: str | Path,
    progress: ProgressFn | None = None,
    timeout: float = DEFAULT_GENERATION_TIMEOUT_S,
) -> Iterator[GenerateOutputs]:
    """Submit, follow the job by long-polling, then fetch the images. Never raises: errors become
    a readable status line."""
    job_id: str | None = None
    try:
        form = GenerateForm.from_values(values)
        task, payload = build_payload(form)
        if not form.checkpoint:
            raise InvalidInput("Checkpoint: pick a checkpoint (press 🔄 to load the list)")
        client = get_client()
        _report(progress, 0.0, "Submitting")
        yield GenerateOutputs(status_html("Submitting…", "running", "submitting"), images=[], infotext="")
        job: Job | None = None
        for job in follow_job(client, task, payload, form.checkpoint, form.endpoint or None, timeout=timeout):
            job_id = job.id
            text = progress_text(job)
            _report(progress, progress_fraction(job), text)
            if not job.is_terminal:
                yield GenerateOutputs(
                    status_html(f"{text} · job {job.id}", "running", job.progress.phase), job_id=job.id
                )
        assert job is not None  # follow_job always yields the submitted job
        raise_for_job(job)
        _report(progress, 1.0, "Downloading images")
        yield _image_outputs(client, job, outputs_dir, "Done: {count} image{s}", "done", "done")
    except JobCancelled as exc:
        yield _cancelled_outputs(client, exc.job, outputs_dir)
    except Exception as exc:
        if not isinstance(exc, (SDCloudError, ValueError)):
            log.exception("generation failed unexpectedly")
        yield GenerateOutputs(error_html(exc), job_id=job_id)


def _cancelled_outputs(client: SDCloudClient, job: Job, outputs_dir: str | Path) -> GenerateOutputs:
    """Like the WebUI's Interrupt: the images sampled before the cancel reached the GPU, if any."""
    if job.result is None or not job.result.images:
        return GenerateOutputs(status_html(f"Cancelled · job {job.id}", "cancelled"), job_id=job.id)
    try:
        return _image_outputs(client, job, outputs_dir, "Interrupted: {count} partial image{s}", "cancelled")
    except SDCloudError as exc:
        return GenerateOutputs(error_html(exc), job_id=job.id)


def _image_outputs(
    client: SDCloudClient, job: Job, outputs_dir: str | Path, label: str, state: str, phase: str = ""
) -> GenerateOutputs:
    """The job's images downloaded, with their infotexts and seeds, under a status line made from
    ``label`` (``{count}`` and ``{s}``, the plural ending, filled in)."""
    paths = fetch_result_images(client, job, outputs_dir)
    infotexts = job.infotexts
    count = len(paths)
    text = label.format(count=count, s="s" if count != 1 else "")
    return GenerateOutputs(
        status_html(f"{text} · job {job.id}", state, phase),
        images=paths,
        infotext=infotexts[0] if infotexts else "",
        job_id=job.id,
        infotexts=infotexts,
        seeds=_seeds(job, count),
    )


def cancelling_status(job_id: str | None) -> str:
    """What the status line says the moment Interrupt is pressed, before the request goes out."""
    if not job_id:
        return status_html("Nothing to cancel", "idle")
    return status_html(f"Cancelling job {job_id}…", "running", "cancelling")


def cancel_generation(get_client: Callable[[], SDCloudClient], job_id: str | None) -> tuple[str, str | None]:
    """Ask the server to cancel ``job_id``: ("requested" | "finished" | "failed", error HTML).

    "finished" means the job had already ended (409). Callers with a running generation show
    nothing on success: the generation reports "Cancelled" itself, and the status line was set
    before the request (``cancelling_status``), because once the server has cancelled, the
    generation's own "Cancelled" may reach the page first and must not be overwritten.
    """
    if not job_id:
        return "failed", status_html("Nothing to cancel", "idle")
    try:
        get_client().cancel_inference(job_id)
    except Conflict:
        return "finished", None
    except Exception as exc:
        return "failed", error_html(exc)
    return "requested", None
