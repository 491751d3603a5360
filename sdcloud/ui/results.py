"""Result images on local disk, bytes unchanged (the PNG `parameters` infotext chunk included)."""

from __future__ import annotations

from pathlib import Path

from ..client import SDCloudClient
from ..models import Job


def fetch_result_images(client: SDCloudClient, job: Job, outputs_dir: str | Path) -> list[str]:
    """Paths of the job's images under outputs_dir, downloading those not there yet.

    File names carry the job id and image index, so a file already there is that very image.
    """
    folder = Path(outputs_dir)
    paths: list[str] = []
    for image in job.images:
        target = folder / image.filename
        if not target.is_file():
            target = client.download_image(image, folder)
        paths.append(str(target))
    return paths
