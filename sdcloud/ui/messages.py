"""What the UI says: status lines and readable error messages (pure; HTML-escaped)."""

from __future__ import annotations

import html

from ..errors import (
    ApiError,
    AuthError,
    ConnectionFailed,
    Forbidden,
    JobCancelled,
    JobFailed,
    NotConfigured,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    SDCloudError,
    ServerError,
    Timeout,
    ValidationFailed,
)
from ..records import Job

# Payload field -> the label an A1111 user sees, so a server error points at the right control.
FIELD_LABELS = {
    "prompt": "Prompt",
    "negative_prompt": "Negative prompt",
    "sampler_name": "Sampling method",
    "sampler_index": "Sampling method",
    "scheduler": "Schedule type",
    "steps": "Sampling steps",
    "cfg_scale": "CFG Scale",
    "width": "Width",
    "height": "Height",
    "seed": "Seed",
    "n_iter": "Batch count",
    "batch_size": "Batch size",
    "enable_hr": "Hires. fix",
    "hr_upscaler": "Upscaler",
    "hr_second_pass_steps": "Hires steps",
    "hr_scale": "Upscale by",
    "hr_resize_x": "Resize width to",
    "hr_resize_y": "Resize height to",
    "denoising_strength": "Denoising strength",
    "init_images": "Init image",
    "checkpoint": "Checkpoint",
    "endpoint": "Endpoint",
    "task": "Task",
}

PHASE_LABELS = {
    "queued": "Queued",
    "starting": "Starting GPU",
    "starting_gpu": "Starting GPU",
    "loading_model": "Loading model",
    "sampling": "Sampling",
    "decoding": "Decoding",
    "uploading": "Uploading images",
    "done": "Finishing",
    "failed": "Failed",
}


def field_label(field: str) -> str:
    """'payload.width' -> 'Width'; unknown fields are shown as given."""
    tail = field.split(".")[-1] if field else ""
    if tail.isdigit() and "." in field:
        tail = field.split(".")[-2]
    label = FIELD_LABELS.get(tail)
    return f"{label} ({field})" if label else field


def progress_text(job: Job) -> str:
    """One line a person can read: 'Sampling: step 7/20 (35%)'."""
    if job.status == "succeeded":
        return "Done"
    if job.status == "failed":
        return "Failed"
    if job.status == "cancelled":
        return "Cancelled"
    p = job.progress
    label = PHASE_LABELS.get(p.phase, p.phase.replace("_", " ").capitalize() or "Working")
    if p.phase == "sampling" and p.steps > 0:
        return f"{label}: step {p.step}/{p.steps} ({int(round(progress_fraction(job) * 100))}%)"
    return label


def progress_fraction(job: Job) -> float:
    """Overall completion in [0, 1] from the job's progress."""
    p = job.progress
    fraction = p.fraction
    if fraction <= 0 and p.steps > 0:
        fraction = p.step / p.steps
    if job.status == "succeeded":
        fraction = 1.0
    return min(1.0, max(0.0, fraction))


def describe_error(exc: BaseException) -> str:
    """A readable sentence for any error the UI meets (never a traceback)."""
    if isinstance(exc, ValidationFailed):
        fields = [f"{field_label(e.field)}: {e.message or exc.detail}" for e in exc.errors if e.field]
        if fields:
            return "The request was refused — " + "; ".join(fields)
        return f"The request was refused: {exc.detail or exc.title or 'invalid input'}"
    if isinstance(exc, AuthError):
        return "The API key was refused (HTTP 401): check the key in the Settings tab."
    if isinstance(exc, Forbidden):
        return f"Not allowed (HTTP 403): {exc.detail or 'your user may not do this'}"
    if isinstance(exc, NotFound):
        return f"Not found (HTTP 404): {exc.detail or 'no such record'}"
    if isinstance(exc, PayloadTooLarge):
        return f"The request is too large (HTTP 413): {exc.detail or 'use a smaller init image'}"
    if isinstance(exc, RateLimited):
        hint = f" Retry in {exc.retry_after:g} s." if exc.retry_after else ""
        return f"The server is busy (HTTP 429).{hint}"
    if isinstance(exc, ServerError):
        return f"The server failed (HTTP {exc.status}): {exc.detail or exc.title or 'try again later'}"
    if isinstance(exc, ApiError):
        return f"The server said no (HTTP {exc.status}): {exc.detail or exc.title}"
    if isinstance(exc, JobFailed):
        return f"Generation failed: {exc.job.error.message if exc.job.error else 'no reason given'}"
    if isinstance(exc, JobCancelled):
        return "The job was cancelled."
    if isinstance(exc, ConnectionFailed):
        return f"Cannot reach the SD Cloud API: {exc}. Check the API URL in Settings."
    if isinstance(exc, Timeout):
        return f"Timed out: {exc}"
    if isinstance(exc, (NotConfigured, SDCloudError)):
        return str(exc)
    if isinstance(exc, ValueError):
        return str(exc)
    return f"Unexpected error ({type(exc).__name__}); see the server log."


def status_html(text: str, state: str = "running", phase: str = "", job_id: str = "") -> str:
    """The status line. `state` is running | done | error | cancelled | idle (a CSS class and a data
    attribute). No glyph in the text: the state's marker is drawn by CSS, so nothing here needs an
    emoji font. ``job_id`` (data-job) lets the page remember a running job across a reload."""
    attrs = f'class="sdcloud-status sdcloud-status-{html.escape(state)}" data-state="{html.escape(state)}"'
    if phase:
        attrs += f' data-phase="{html.escape(phase)}"'
    if job_id:
        attrs += f' data-job="{html.escape(job_id)}"'
    return f"<div {attrs}>{html.escape(text)}</div>"


def format_duration(seconds: float) -> str:
    """'8 s', '1 min 05 s', '1 h 02 min': short enough for the status line."""
    total = max(0, int(round(seconds)))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def steps_done(job: Job) -> tuple[int, int]:
    """(steps sampled, steps in all) over the whole batch count, from the server's progress."""
    p = job.progress
    if p.steps <= 0:
        return 0, 0
    n_iter = max(1, p.n_iter)
    iteration = min(max(0, p.iteration), n_iter - 1)
    return iteration * p.steps + min(p.step, p.steps), n_iter * p.steps


class EtaTracker:
    """Time left while sampling, from the rate steps were done at since the first sampling update
    this tracker saw (steps per second measured, not guessed). Pure: the caller passes the clock."""

    def __init__(self) -> None:
        self._start: tuple[float, int, int] | None = None  # (time, steps done, steps in all)

    def eta_seconds(self, job: Job, now: float) -> float | None:
        if job.is_terminal or job.progress.phase != "sampling":
            return None
        done, total = steps_done(job)
        if total <= 0:
            return None
        if self._start is None or self._start[2] != total or done < self._start[1]:
            self._start = (now, done, total)  # first sight, or a new pass (hires fix): start over
            return None
        started, done_then, _ = self._start
        elapsed = now - started
        if elapsed <= 0 or done <= done_then:
            return None
        rate = (done - done_then) / elapsed
        return (total - done) / rate

    def text(self, job: Job, now: float) -> str:
        """' · ETA 12 s' or '' when it cannot be told yet."""
        eta = self.eta_seconds(job, now)
        return "" if eta is None else f" · ETA {format_duration(eta)}"


def error_html(exc: BaseException) -> str:
    return status_html(describe_error(exc), "error")
