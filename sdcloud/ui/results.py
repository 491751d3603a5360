"""Result images on local disk, bytes unchanged (the PNG `parameters` infotext chunk included), in
A1111's outputs layout and naming: ``<outputs>/txt2img-images/<YYYY-MM-DD>/<nnnnn>-<seed>.png``.

A1111's defaults (``save_to_dirs`` on, ``directories_filename_pattern`` "[date]",
``samples_filename_pattern`` "[seed]", ``save_images_add_number`` on): the number continues from the
highest one already in that folder, as ``images.get_next_sequence_number`` counts it. A small index
at the outputs root remembers which job image went to which file, so reopening a job from the Jobs
tab shows the same files instead of saving copies.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
import uuid
from pathlib import Path

from ..client import SDCloudClient
from ..records import Job

log = logging.getLogger("sdcloud.ui")

TASK_FOLDERS = {"txt2img": "txt2img-images", "img2img": "img2img-images"}
INDEX_NAME = ".sdcloud-saved.json"
_MAX_TRIES = 500  # as images.save_image: give up on a folder this crowded with races

_lock = threading.Lock()  # one writer of the index and of the numbering at a time in this process


def task_folder(task: str) -> str:
    """The A1111 samples folder of a task; anything else is saved as txt2img would be."""
    return TASK_FOLDERS.get(task, TASK_FOLDERS["txt2img"])


def day_folder(outputs_dir: str | Path, task: str, day: _dt.date) -> Path:
    """``<outputs>/<task>-images/<YYYY-MM-DD>`` ("[date]" is the ISO date in A1111)."""
    return Path(outputs_dir) / task_folder(task) / day.isoformat()


def next_sequence_number(folder: str | Path) -> int:
    """One more than the highest leading number of the file names in ``folder`` (0 when none),
    counted like A1111: the digits before the first '-' of the name without its extension."""
    highest = -1
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    for name in names:
        head = os.path.splitext(name)[0].split("-", 1)[0]
        if head.isdigit():
            highest = max(highest, int(head))
    return highest + 1


def image_name(number: int, seed: int | None, extension: str = "png") -> str:
    """``00012-1234.png``; without a seed A1111 writes the number alone."""
    return f"{number:05}-{seed}.{extension}" if seed is not None else f"{number:05}.{extension}"


def reserve_path(folder: Path, seed: int | None) -> Path:
    """Create (empty, exclusively) the next numbered file in ``folder`` and return it: a second
    save running at the same time gets the number after."""
    folder.mkdir(parents=True, exist_ok=True)
    start = next_sequence_number(folder)
    for number in range(start, start + _MAX_TRIES):
        target = folder / image_name(number, seed)
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return target
    raise OSError(f"no free file number in {folder} after {_MAX_TRIES} tries")


class SavedIndex:
    """``{"<job id>/<image index>": "<path relative to the outputs root>"}`` in a JSON file."""

    def __init__(self, outputs_dir: str | Path) -> None:
        self.root = Path(outputs_dir)
        self.path = self.root / INDEX_NAME

    def load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("ignoring unreadable outputs index %s", self.path)
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def find(self, entries: dict[str, str], key: str) -> Path | None:
        relative = entries.get(key)
        if not relative:
            return None
        path = self.root / relative
        return path if path.is_file() and path.stat().st_size > 0 else None

    def store(self, entries: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{INDEX_NAME}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


def _save_one(client: SDCloudClient, job: Job, position: int, folder: Path) -> Path:
    image = job.images[position]
    seed = job.result.seed(position) if job.result is not None else None
    target = reserve_path(folder, seed)
    try:
        # download beside the target, then move it in: the numbered file is never half-written
        temp = client.download_image(image, folder, filename=f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        os.replace(temp, target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def fetch_result_images(
    client: SDCloudClient, job: Job, outputs_dir: str | Path, today: _dt.date | None = None
) -> list[str]:
    """Paths of the job's images under outputs_dir, downloading (and numbering) those not saved yet."""
    index = SavedIndex(outputs_dir)
    folder = day_folder(outputs_dir, job.task, today or _dt.date.today())
    paths: list[str] = []
    with _lock:
        entries = index.load()
        changed = False
        for position, image in enumerate(job.images):
            key = f"{job.id}/{image.index}"
            found = index.find(entries, key)
            if found is None:
                found = _save_one(client, job, position, folder)
                entries[key] = found.relative_to(index.root).as_posix()
                changed = True
            paths.append(str(found))
        if changed:
            index.store(entries)
    return paths
