"""The Generate action without gradio: form values -> A1111 payload -> job -> images + infotext.

`run_generation` is a generator of GenerateOutputs so the gradio tab can stream each change of the
job (long-poll driven) to the page; tests call it directly with a fake client.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image

from .. import limits
from ..client import SDCloudClient, raise_for_job
from ..contract import PayloadRejected, check_payload, field_spec
from ..errors import Conflict, SDCloudError, Timeout
from ..records import Job
from ..samplers import (
    DEFAULT_HIRES_UPSCALER,
    DEFAULT_SAMPLER,
    DEFAULT_SCHEDULE_LABEL,
    SAMPLERS,
    scheduler_name,
)
from .messages import EtaTracker, describe_error, error_html, progress_fraction, progress_text, status_html
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
    subseed: float = -1  # A1111's "Variation seed"; sent only with a subseed strength above 0
    subseed_strength: float = 0
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
    sd_vae: str = ""  # a cloud VAE's name; "" / "Automatic": the checkpoint's own

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
    if not math.isfinite(number) or number != int(number):
        raise InvalidInput(f"{label} must be a whole number (got {value!r})")
    return int(number)


def _seed_bounds(name: str) -> tuple[int, int, tuple[int, ...]]:
    """(minimum, maximum, special values) of a seed field, as the contract states them."""
    spec = field_spec("txt2img", name) or {}
    rng = spec.get("range", {})
    return int(rng["minimum"]), int(rng["maximum"]), tuple(int(v) for v in rng.get("special", ()))


def validate_seed(value: Any, label: str = "Seed", name: str = "seed") -> int:
    """An A1111 seed: -1 (random) or a whole number in the contract's range (0..4294967295).

    Strings of digits (what a pasted infotext gives) are accepted; 1.5, 1e20 or text are not.
    """
    low, high, special = _seed_bounds(name)
    allowed = " or ".join(str(v) for v in special)
    hint = f"{allowed} (random) or a whole number from {low} to {high}" if special else f"{low} to {high}"
    if isinstance(value, bool):
        raise InvalidInput(f"{label} must be {hint} (got {value!r})")
    if isinstance(value, str):
        text = value.strip()
        number: Any = int(text) if text.lstrip("-").isdigit() else text
    else:
        number = value
    if isinstance(number, float) and math.isfinite(number) and number == int(number):
        number = int(number)
    if not isinstance(number, int) or not (number in special or low <= number <= high):
        raise InvalidInput(f"{label} must be {hint} (got {value!r})")
    return number


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
    seed = validate_seed(form.seed, "Seed", "seed")

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
    subseed = validate_seed(form.subseed, "Variation seed", "subseed")
    subseed_strength = _number(form.subseed_strength, "Variation strength")
    _in_range(subseed_strength, limits.field_bounds("subseed_strength"), "Variation strength")
    if subseed_strength > 0:
        payload.update({"subseed": subseed, "subseed_strength": subseed_strength})
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
    vae = vae_override(form.sd_vae)
    if vae:
        payload["override_settings"] = {"sd_vae": vae}
    _check_with_contract(form.task, payload)
    return form.task, payload


def vae_override(value: Any) -> str:
    """The job's ``override_settings.sd_vae`` for a VAE pick: "" (send nothing) for none or for
    A1111's "Automatic" (the checkpoint's own VAE, the engine's default anyway)."""
    text = str(value or "").strip()
    return "" if text in ("", "Automatic") else text


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
    preview: str | None = None  # live preview HTML ("" clears it)
    busy: str = ""  # the Generate button's label while a job is in flight; "" = the job is over

    @property
    def seed(self) -> int | None:
        return self.seeds[0] if self.seeds else None


BUSY_SUBMITTING = "Submitting…"
BUSY_QUEUED = "Queued…"
BUSY_RUNNING = "Running…"


def busy_label(job: Job) -> str:
    return BUSY_QUEUED if job.status == "queued" else BUSY_RUNNING


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


PreviewFetch = Callable[[SDCloudClient, str], bytes]


def _fetch_preview(client: SDCloudClient, url: str) -> bytes:
    return client.fetch_image_bytes(url)


class PreviewCache:
    """The live preview as an <img> with the JPEG inline (a data: URL, so the browser asks no other
    host), fetched once per preview step."""

    def __init__(self, fetch: PreviewFetch = _fetch_preview) -> None:
        self._fetch = fetch
        self._step = 0
        self.html = ""

    def update(self, client: SDCloudClient, job: Job) -> str | None:
        """New HTML when a newer preview is there, else None (leave the page's as it is)."""
        p = job.progress
        if job.is_terminal or p.phase != "sampling":
            return None
        if not p.preview_url or p.preview_step <= 0 or p.preview_step == self._step:
            return None
        try:
            data = self._fetch(client, p.preview_url)
        except Exception:  # a preview is a nicety: never let it break the generation
            log.debug("live preview not fetched", exc_info=True)
            return None
        self._step = p.preview_step
        encoded = base64.b64encode(data).decode("ascii")
        self.html = (
            f'<img class="sdcloud-preview-img" alt="Live preview, step {p.preview_step}" '
            f'title="Live preview (step {p.preview_step})" src="data:image/jpeg;base64,{encoded}">'
        )
        return self.html


def _stream_job(
    client: SDCloudClient,
    jobs: Iterator[Job],
    outputs_dir: str | Path,
    progress: ProgressFn | None,
    clock: Callable[[], float],
) -> Iterator[GenerateOutputs]:
    """Follow a job (its views as ``jobs`` yields them) to its end: the one status line with the
    ETA and the live preview while it runs, then the images. Raises what the job's end means."""
    eta = EtaTracker()
    previews = PreviewCache()
    job: Job | None = None
    for job in jobs:
        text = progress_text(job)
        _report(progress, progress_fraction(job), text)
        if not job.is_terminal:
            line = f"{text}{eta.text(job, clock())} · job {job.id}"
            yield GenerateOutputs(
                status_html(line, "running", job.progress.phase, job_id=job.id),
                job_id=job.id,
                preview=previews.update(client, job),
                busy=busy_label(job),
            )
    assert job is not None  # watch_inference / follow_job always yield at least once
    _report(progress, 1.0, "Downloading images")
    yield final_outputs(client, job, outputs_dir)


def run_generation(
    get_client: Callable[[], SDCloudClient],
    values: Mapping[str, Any],
    outputs_dir: str | Path,
    progress: ProgressFn | None = None,
    timeout: float = DEFAULT_GENERATION_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[GenerateOutputs]:
    """Submit, follow the job by long-polling, then fetch the images. Never raises: errors become
    a readable status line, and the last output always has ``busy == ""``."""
    job_id: str | None = None
    try:
        form = GenerateForm.from_values(values)
        task, payload = build_payload(form)
        if not form.checkpoint:
            raise InvalidInput("Checkpoint: pick a checkpoint (press Refresh to load the list)")
        client = get_client()
        _report(progress, 0.0, "Submitting")
        yield GenerateOutputs(
            status_html("Submitting…", "running", "submitting"), images=[], infotext="", preview="",
            busy=BUSY_SUBMITTING,
        )
        for out in _stream_job(
            client,
            follow_job(client, task, payload, form.checkpoint, form.endpoint or None, timeout=timeout),
            outputs_dir,
            progress,
            clock,
        ):
            job_id = out.job_id
            yield out
    except Exception as exc:
        yield _error_outputs(exc, job_id)


def resume_generation(
    get_client: Callable[[], SDCloudClient],
    job_id: str | None,
    outputs_dir: str | Path,
    timeout: float = DEFAULT_GENERATION_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[GenerateOutputs]:
    """Re-attach to a job the page was following before a reload: its progress from where it is,
    then its images, as if the page had never left. Yields nothing without a job id."""
    job_id = (job_id or "").strip()
    if not job_id:
        return
    try:
        client = get_client()
        first = client.get_inference(job_id)
        yield GenerateOutputs(
            status_html(f"Re-attached to job {job_id}", "running", first.progress.phase, job_id=job_id),
            images=[], infotext="", job_id=job_id, preview="", busy=busy_label(first),
        )
        yield from _stream_job(
            client, client.watch_inference(job_id, timeout=timeout, first=first), outputs_dir, None, clock
        )
    except Exception as exc:
        yield _error_outputs(exc, job_id)


def _error_outputs(exc: BaseException, job_id: str | None) -> GenerateOutputs:
    if not isinstance(exc, (SDCloudError, ValueError)):
        log.exception("generation failed unexpectedly")
    # data-job on the error line too: the page then forgets the job (no re-attach after a reload)
    return GenerateOutputs(status_html(describe_error(exc), "error", job_id=job_id or ""), job_id=job_id, preview="")


def final_outputs(client: SDCloudClient, job: Job, outputs_dir: str | Path) -> GenerateOutputs:
    """The tab after a terminal job: its images (a cancelled job's partial ones too, like the
    WebUI's Interrupt), or why there are none."""
    try:
        if job.status == "succeeded":
            return _image_outputs(client, job, outputs_dir, "Done: {count} image{s}", "done", "done")
        if job.status == "cancelled":
            if job.result is None or not job.result.images:
                return GenerateOutputs(
                    status_html(f"Cancelled · job {job.id}", "cancelled", job_id=job.id), job_id=job.id, preview=""
                )
            return _image_outputs(client, job, outputs_dir, "Interrupted: {count} partial image{s}", "cancelled")
        raise_for_job(job)  # failed: JobFailed with the reason
        raise SDCloudError(f"job {job.id} ended as {job.status!r}")
    except Exception as exc:
        return _error_outputs(exc, job.id)


def final_status(job: Job) -> str:
    """The status line a terminal job ends with, the same words ``final_outputs`` uses (so whichever
    of the generation and the Interrupt handler writes last, the page says the same)."""
    count = len(job.images)
    s = "s" if count != 1 else ""
    if job.status == "succeeded":
        return status_html(f"Done: {count} image{s} · job {job.id}", "done", "done", job_id=job.id)
    if job.status == "cancelled":
        if count:
            return status_html(
                f"Interrupted: {count} partial image{s} · job {job.id}", "cancelled", job_id=job.id
            )
        return status_html(f"Cancelled · job {job.id}", "cancelled", job_id=job.id)
    try:
        raise_for_job(job)
    except Exception as exc:
        return error_html(exc)
    return status_html(f"Job {job.id}: {progress_text(job)}", "idle", job_id=job.id)


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
        status_html(f"{text} · job {job.id}", state, phase, job_id=job.id),
        images=paths,
        infotext=infotexts[0] if infotexts else "",
        job_id=job.id,
        infotexts=infotexts,
        seeds=_seeds(job, count),
        preview="",
    )


def cancelling_status(job_id: str | None) -> str:
    """What the status line says the moment Interrupt is pressed, before the request goes out."""
    if not job_id:
        return status_html("Nothing to cancel", "idle")
    return status_html(f"Cancelling job {job_id}…", "running", "cancelling", job_id=job_id)


def cancel_generation(get_client: Callable[[], SDCloudClient], job_id: str | None) -> tuple[str, str | None]:
    """Ask the server to cancel ``job_id``: ("requested" | "finished" | "failed", error HTML).

    "finished" means the job had already ended (409). Kept for the Jobs tab; the Generate tab uses
    ``interrupt_job``, which also tells how the job really ended.
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


# How long Interrupt waits for the job to reach its end before it says where it stands instead.
INTERRUPT_WAIT_S = 60.0


def interrupt_job(
    get_client: Callable[[], SDCloudClient], job_id: str | None, wait: float = INTERRUPT_WAIT_S
) -> str:
    """Cancel ``job_id`` and return the status line of how it really ended, asked from the server:
    "Cancelled" / "Interrupted: n partial images" when the cancel won, "Done" / "failed" when the job
    had already ended. Never leaves "Cancelling…" behind."""
    outcome, problem = cancel_generation(get_client, job_id)
    if outcome == "failed":
        return problem or status_html("Nothing to cancel", "idle")
    assert job_id is not None
    try:
        job = _wait_terminal(get_client(), job_id, wait)
    except Exception as exc:
        return error_html(exc)
    if job.is_terminal:
        return final_status(job)
    return status_html(
        f"Cancel requested; job {job_id} is still {job.status} ({progress_text(job)})", "idle", job_id=job_id
    )


def _wait_terminal(client: SDCloudClient, job_id: str, wait: float) -> Job:
    """The job once terminal, or as it is when ``wait`` seconds of long-polling have passed."""
    job = client.get_inference(job_id)
    deadline = time.monotonic() + wait
    while not job.is_terminal:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        job = client.get_inference(job_id, wait=max(1.0, min(10.0, remaining)), version=job.version)
    return job
