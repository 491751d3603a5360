"""The Jobs tab without gradio: history pages (cursor-paginated, newest first), thumbnails, which
job a click on a (possibly sorted) table row means, and reopening a job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..client import SDCloudClient
from ..errors import SDCloudError
from ..records import Job
from ..webui_job import with_cloud_choice
from .messages import error_html, progress_text, status_html
from .results import fetch_result_images

log = logging.getLogger("sdcloud.ui")

HISTORY_HEADERS = ["Created", "Status", "Task", "Checkpoint", "Prompt", "Size", "Steps", "Job ID"]
ID_COLUMN = HISTORY_HEADERS.index("Job ID")
PAGE_SIZE = 20
PROMPT_CHARS = 80
THUMB_PX = 256
CAPTION_CHARS = 40


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
    jobs: list[Job] = field(default_factory=list)


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
    return HistoryView([job_row(job) for job in page.items], pager, status_html(text, "idle"), list(page.items))


def job_id_at(state: Any, row: int) -> str | None:
    """The job id in row `row` of the current page as the server sent it (before any sorting)."""
    ids = Pager.from_state(state).job_ids
    return ids[row] if 0 <= row < len(ids) else None


def _cell(index: Any) -> tuple[int | None, int | None]:
    if isinstance(index, (list, tuple)) and len(index) == 2 and all(isinstance(i, int) for i in index):
        return index[0], index[1]
    return (index, None) if isinstance(index, int) else (None, None)


def _same(a: Any, b: Any) -> bool:
    return str(a if a is not None else "") == str(b if b is not None else "")


def row_key_for_select(
    rows: Any, index: Any, value: Any, row_value: Any = None, *, key_column: int, rows_as_shown: bool = True
) -> str | None:
    """The key cell (`key_column`) of the row the artist clicked, whatever order the table is
    sorted in.

    The click's index is the row's position on screen, which sorting changes, so it is never looked
    up in the server's order. In turn: the clicked row's own cells (`row_value`, gradio >= 4.42);
    the clicked cell itself when it is the key; the one row of `rows` holding the clicked value in
    that column; and, when that value is not unique, the row at `index` of `rows` only if `rows` is
    the table as shown (gradio 3 sends the sorted table; gradio 4 sends it unsorted).
    None when the click cannot be told apart: the caller asks for a click on the key cell.
    """
    if isinstance(row_value, (list, tuple)) and len(row_value) > key_column and row_value[key_column]:
        return str(row_value[key_column])
    row, col = _cell(index)
    if col == key_column and value:
        return str(value)
    table = [list(r) for r in rows] if isinstance(rows, (list, tuple)) else []
    table = [r for r in table if len(r) > max(key_column, col or 0)]
    if col is None or not table:
        return None
    matches = {str(r[key_column]) for r in table if _same(r[col], value)}
    if len(matches) == 1:
        return matches.pop()
    if rows_as_shown and row is not None and 0 <= row < len(table) and _same(table[row][col], value):
        return str(table[row][key_column])
    return None


def job_id_for_select(
    rows: Any, index: Any, value: Any, row_value: Any = None, *, rows_as_shown: bool = True
) -> str | None:
    """The job id of the history row the artist clicked (see row_key_for_select)."""
    return row_key_for_select(rows, index, value, row_value, key_column=ID_COLUMN, rows_as_shown=rows_as_shown)


@dataclass(frozen=True)
class Thumbnail:
    job_id: str
    path: str
    caption: str


def _caption(job: Job) -> str:
    prompt = job.prompt.replace("\n", " ").strip()
    if len(prompt) > CAPTION_CHARS:
        prompt = prompt[: CAPTION_CHARS - 1] + "…"
    # the prompt first: a gallery caption is cut short, and the prompt is what an artist looks for
    if job.status == "succeeded":
        return prompt or job.id
    return f"{prompt} ({job.status})" if prompt else job.status


def thumbnail_for(client: SDCloudClient, job: Job, outputs_dir: str | Path) -> Thumbnail | None:
    """A small JPEG of the job's first image, made once: the full PNG is downloaded into
    outputs_dir (where reopening the job finds it) and shrunk into outputs_dir/thumbs."""
    if not job.images:
        return None
    first = job.images[0]
    folder = Path(outputs_dir)
    thumb = folder / "thumbs" / (Path(first.filename).stem + ".jpg")
    if not thumb.is_file():
        source = folder / first.filename
        if not source.is_file():
            source = client.download_image(first, folder)
        thumb.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as image:
            small = image.convert("RGB")
            small.thumbnail((THUMB_PX, THUMB_PX))
            partial = thumb.with_name(f".{thumb.name}.part")
            small.save(partial, format="JPEG", quality=85)
            partial.replace(thumb)  # never a half-written thumbnail under the real name
    return Thumbnail(job.id, str(thumb), _caption(job))


def thumbnails(get_client: Callable[[], SDCloudClient], jobs: list[Job], outputs_dir: str | Path) -> list[Thumbnail]:
    """Thumbnails of the jobs that have images, in the jobs' order; one that fails is left out
    (a thumbnail is a nicety: the table still lists the job)."""
    found: list[Thumbnail] = []
    if not any(job.images for job in jobs):
        return found
    client = get_client()
    for job in jobs:
        try:
            thumb = thumbnail_for(client, job, outputs_dir)
        except Exception:
            log.warning("no thumbnail for job %s", job.id, exc_info=True)
            continue
        if thumb is not None:
            found.append(thumb)
    return found


@dataclass(frozen=True)
class OpenedJob:
    status: str
    job_id: str = ""
    images: list[str] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    endpoint: str = ""
    checkpoint: str = ""

    @property
    def infotext(self) -> str:
        return self.infotexts[0] if self.infotexts else ""

    @property
    def paste_text(self) -> str:
        """What "Send to txt2img" pastes: the infotext (as in the PNG) plus the job's Cloud choice."""
        return with_cloud_choice(self.infotext, self.endpoint, self.checkpoint)


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
            return OpenedJob(status_html(text, "done"), job.id, paths, job.infotexts, job.endpoint, job.checkpoint)
        if job.status == "failed":
            reason = job.error.message if job.error else "no reason given"
            return OpenedJob(status_html(f"Job {job.id} failed: {reason}", "error"), job.id)
        return OpenedJob(status_html(f"Job {job.id}: {job.status} ({progress_text(job)})", "idle"), job.id)
    except Exception as exc:
        if not isinstance(exc, (SDCloudError, ValueError)):
            log.exception("opening a job failed unexpectedly")
        return OpenedJob(error_html(exc), job_id)
