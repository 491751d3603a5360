"""The Jobs tab without gradio: history pages (cursor-paginated, newest first) and reopening a job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import SDCloudClient
from ..errors import SDCloudError
from ..models import Job
from .messages import error_html, progress_text, status_html
from .results import fetch_result_images

log = logging.getLogger("sdcloud.ui")

HISTORY_HEADERS = ["Created", "Status", "Task", "Checkpoint", "Prompt", "Size", "Steps", "Job ID"]
PAGE_SIZE = 20
PROMPT_CHARS = 80


def _created(job: Job) -> str:
    when = job.created
    if when is None:
        return job.created_at
    if when.tzinfo is not None:
        when = when.astimezone()  # the artist's local time
    return when.strftime("%Y-%m-%d %H:%M:%S")


def job_row(job: Job) -> list[str]:
    """One history table row."""
    p = job.payload
    prompt = job.prompt.replace("\n", " ")
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    size = f"{p.get('width', '?')}x{p.get('height', '?')}" if p else ""
    return [
        _created(job),
        job.status,
        job.task,
        job.checkpoint,
        prompt,
        size,
        str(p.get("steps", "")) if p else "",
        job.id,
    ]


@dataclass
class Pager:
    """Where the history view is: the cursor of each page seen so far, and the next page's cursor.

    Kept as a plain dict in gradio state (to_state / from_state) since cursors go forward only.
    """

    cursors: list[str | None] = field(default_factory=lambda: [None])
    index: int = 0
    next_cursor: str | None = None
    job_ids: list[str] = field(default_factory=list)

    def to_state(self) -> dict[str, Any]:
        return {
            "cursors": list(self.cursors),
            "index": self.index,
            "next": self.next_cursor,
            "ids": list(self.job_ids),
        }

    @classmethod
    def from_state(cls, state: Any) -> Pager:
        if not isinstance(state, dict) or not state.get("cursors"):
            return cls()
        return cls(
            cursors=list(state["cursors"]),
            index=int(state.get("index", 0)),
            next_cursor=state.get("next"),
            job_ids=list(state.get("ids") or []),
        )


@dataclass(frozen=True)
class HistoryView:
    rows: list[list[str]] | None  # None: keep the table as it is (an error must not wipe it)
    pager: Pager
    status: str


def show_history(
    get_client: Callable[[], SDCloudClient], state: Any, direction: str = "first", limit: int = PAGE_SIZE
) -> HistoryView:
    """The page `direction` of the current one: first | older | newer | same."""
    pager = Pager.from_state(state)
    if direction == "first":
        pager = Pager()
    elif direction == "older":
        if not pager.next_cursor:
            return HistoryView(None, pager, status_html("No older jobs", "idle"))
        pager.cursors = pager.cursors[: pager.index + 1] + [pager.next_cursor]
        pager.index += 1
    elif direction == "newer":
        pager.index = max(0, pager.index - 1)
    try:
        page = get_client().list_inferences(limit=limit, cursor=pager.cursors[pager.index])
    except Exception as exc:
        if not isinstance(exc, (SDCloudError, ValueError)):
            log.exception("listing jobs failed unexpectedly")
        return HistoryView(None, Pager.from_state(state), error_html(exc))
    pager.next_cursor = page.next_cursor
    pager.job_ids = [job.id for job in page.items]
    first = pager.index * limit + 1
    if page.items:
        text = f"Jobs {first}–{first + len(page.items) - 1}" + ("" if page.next_cursor else " (oldest)")
    else:
        text = "No jobs yet" if pager.index == 0 else "No older jobs"
    return HistoryView([job_row(job) for job in page.items], pager, status_html(text, "idle"))


def job_id_at(state: Any, row: int) -> str | None:
    """The job id shown in table row `row` of the current page."""
    ids = Pager.from_state(state).job_ids
    return ids[row] if 0 <= row < len(ids) else None


@dataclass(frozen=True)
class OpenedJob:
    status: str
    job_id: str = ""
    images: list[str] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)

    @property
    def infotext(self) -> str:
        return self.infotexts[0] if self.infotexts else ""


def open_job(get_client: Callable[[], SDCloudClient], job_id: str, outputs_dir: str | Path) -> OpenedJob:
    """A job's images (downloaded, infotext preserved) and infotexts, or why there are none."""
    job_id = (job_id or "").strip()
    if not job_id:
        return OpenedJob(status_html("Pick a job in the table (or paste a job ID)", "idle"))
    try:
        client = get_client()
        job = client.get_inference(job_id)
        if job.status == "succeeded":
            paths = fetch_result_images(client, job, outputs_dir)
            count = len(paths)
            text = f"Job {job.id}: succeeded, {count} image{'s' if count != 1 else ''}"
            return OpenedJob(status_html(text, "done"), job.id, paths, job.infotexts)
        if job.status == "failed":
            reason = job.error.message if job.error else "no reason given"
            return OpenedJob(status_html(f"Job {job.id} failed: {reason}", "error"), job.id)
        return OpenedJob(status_html(f"Job {job.id}: {job.status} ({progress_text(job)})", "idle"), job.id)
    except Exception as exc:
        if not isinstance(exc, (SDCloudError, ValueError)):
            log.exception("opening a job failed unexpectedly")
        return OpenedJob(error_html(exc), job_id)
