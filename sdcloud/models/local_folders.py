"""The WebUI's model folders and the files in them that the cloud library can hold.

A1111 and Forge keep the same layout under their root (models/Stable-diffusion, models/Lora, ...);
command-line options may move a folder (--ckpt-dir, --lora-dir, ...): inside the WebUI,
sdcloud/webui.py reads those and builds a ModelFolders, here only paths are handled.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# relative to the WebUI's root; LyCORIS files are LoRA to the cloud (diffusers loads both)
WEBUI_LAYOUT: dict[str, tuple[str, ...]] = {
    "checkpoint": ("models/Stable-diffusion",),
    "lora": ("models/Lora", "models/LyCORIS"),
    "embedding": ("embeddings",),
    "vae": ("models/VAE",),
    "controlnet": ("models/ControlNet",),
}

# the file kinds the WebUI itself loads from each folder
EXTENSIONS: dict[str, frozenset[str]] = {
    "checkpoint": frozenset({".safetensors", ".ckpt"}),
    "lora": frozenset({".safetensors", ".pt", ".ckpt"}),
    "embedding": frozenset({".safetensors", ".pt", ".bin"}),
    "vae": frozenset({".safetensors", ".pt", ".ckpt"}),
    "controlnet": frozenset({".safetensors", ".pth", ".pt", ".ckpt"}),
}

SYNC_TYPES = tuple(WEBUI_LAYOUT)


@dataclass(frozen=True)
class LocalModel:
    path: Path
    type: str
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class ModelFolders:
    """type -> the folders holding that type (the first existing ones win on duplicates)."""

    folders: dict[str, tuple[Path, ...]] = field(default_factory=dict)

    def only(self, types: Iterable[str]) -> ModelFolders:
        wanted = set(types)
        unknown = wanted - set(SYNC_TYPES)
        if unknown:
            raise ValueError(f"unknown model type(s) {', '.join(sorted(unknown))}; use {', '.join(SYNC_TYPES)}")
        return ModelFolders({t: dirs for t, dirs in self.folders.items() if t in wanted})

    def describe(self) -> list[str]:
        return [f"{t}: {', '.join(str(d) for d in dirs)}" for t, dirs in self.folders.items()]


def webui_folders(webui_dir: str | os.PathLike[str]) -> ModelFolders:
    """The default layout under a WebUI root; refuses a folder that does not look like one."""
    root = Path(webui_dir).expanduser()
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; give the WebUI's folder (the one holding models/)")
    if not (root / "models").is_dir() and not (root / "embeddings").is_dir():
        raise ValueError(f"{root} has no models/ or embeddings/ folder; is it the WebUI's folder?")
    return ModelFolders({t: tuple(root / rel for rel in rels) for t, rels in WEBUI_LAYOUT.items()})


def _walk(folder: Path) -> Iterator[Path]:
    # followlinks: artists often link a shared model drive into the WebUI's folders
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def scan(folders: ModelFolders) -> list[LocalModel]:
    """Every model file in the folders, by type then path; a file seen twice (linked) once."""
    found: list[LocalModel] = []
    seen: set[str] = set()
    for type_, dirs in folders.folders.items():
        for folder in dirs:
            if not folder.is_dir():
                continue
            for path in _walk(folder):
                if path.suffix.lower() not in EXTENSIONS[type_]:
                    continue
                real = os.path.realpath(path)
                if real in seen:
                    continue
                try:
                    stat = path.stat()
                except OSError:
                    continue  # vanished or unreadable: not ours to report as a model
                if stat.st_size <= 0:
                    continue
                seen.add(real)
                found.append(LocalModel(path, type_, stat.st_size, stat.st_mtime_ns))
    return found
