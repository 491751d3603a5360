"""The CLIP BPE tokenizer, built offline from the merges file that ships inside CLIP packages.

Stable Diffusion's text encoders all use OpenAI's CLIP vocabulary. Its only source file is
``bpe_simple_vocab_16e6.txt.gz`` (a header line, then BPE merges), which the ``open_clip``
wheel carries. We locate that file without importing ``open_clip`` (its import drags in
torchvision, which does not import beside the CPU torch), rebuild ``vocab.json`` + ``merges.txt``
the way CLIP itself does, cache them in a folder and hand that folder to transformers.

Two flavours exist: OpenAI CLIP (SD 1.x, SDXL's first encoder) pads with ``<|endoftext|>``;
OpenCLIP (SD 2.x, SDXL's second encoder) pads with ``!`` (id 0).
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Literal

from inference_container.settings import ContainerSettings

BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
# Packages known to ship the merges file, as (import name, distribution name).
_PACKAGES = (("open_clip", "open_clip_torch"), ("clip", "openai-clip"), ("clip", "clip-anytorch"))
# CLIP keeps the first 49152 - 256 - 2 merges: 256 byte symbols, 256 end-of-word symbols and
# two special tokens fill the rest of its 49,408-entry vocabulary.
MERGE_COUNT = 49152 - 256 - 2
VOCAB_SIZE = 49408
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
MODEL_MAX_LENGTH = 77

PadFlavour = Literal["clip", "open_clip"]
PAD_TOKENS: dict[str, str] = {"clip": EOS_TOKEN, "open_clip": "!"}

_FOLDER_LOCK = threading.Lock()


class TokenizerUnavailable(RuntimeError):
    """The CLIP merges file cannot be found; the container image lacks the package carrying it."""


def find_bpe_file() -> Path:
    """Path of ``bpe_simple_vocab_16e6.txt.gz`` from an installed CLIP package, never importing it.

    The ``clip_bpe_path`` setting (``SDCLOUD_CLIP_BPE_PATH``) overrides the search, for images
    that ship the file elsewhere.
    """
    path = ContainerSettings.from_env().clip_bpe_path
    if path is not None:
        if path.is_file():
            return path
        raise TokenizerUnavailable(f"SDCLOUD_CLIP_BPE_PATH points to {path}, which is not a file")
    for module_name, dist_name in _PACKAGES:
        for folder in _package_folders(module_name):
            candidate = folder / BPE_FILE_NAME
            if candidate.is_file():
                return candidate
        candidate = _from_distribution(dist_name)
        if candidate is not None:
            return candidate
    raise TokenizerUnavailable(
        f"{BPE_FILE_NAME} not found: install open-clip-torch (pip install --no-deps open-clip-torch) "
        "or set SDCLOUD_CLIP_BPE_PATH to the file"
    )


def _package_folders(module_name: str) -> list[Path]:
    try:
        # For a top-level name, find_spec locates the package without executing it.
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def _from_distribution(dist_name: str) -> Path | None:
    try:
        files = importlib.metadata.files(dist_name) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == BPE_FILE_NAME:
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    return None


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character table, in CLIP's vocabulary order.

    Printable Latin-1 bytes map to themselves; the rest are shifted above U+0100 so that no
    token contains whitespace or control characters.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def read_merges(bpe_path: Path) -> list[str]:
    """The merges CLIP uses, each as ``"left right"``, in rank order."""
    with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1 : MERGE_COUNT + 1]  # line 0 is the "#version" header
    if len(merges) != MERGE_COUNT or any(len(m.split()) != 2 for m in merges):
        raise TokenizerUnavailable(f"{bpe_path} is not a CLIP merges file (expected {MERGE_COUNT} merges)")
    return merges


def build_vocab(merges: list[str]) -> dict[str, int]:
    """CLIP's vocabulary: bytes, bytes + ``</w>``, one entry per merge, then the two specials."""
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise TokenizerUnavailable(f"CLIP vocabulary has {len(vocab)} entries, expected {VOCAB_SIZE}")
    return vocab


def tokenizer_config(flavour: PadFlavour) -> dict:
    return {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MODEL_MAX_LENGTH,
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
        "pad_token": PAD_TOKENS[flavour],
        "do_lower_case": True,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": True,
    }


def default_cache_dir() -> Path:
    """The ``clip_tokenizer_dir`` setting: ``SDCLOUD_TOKENIZER_DIR``, else ``<engine cache>/clip-tokenizer``."""
    return ContainerSettings.from_env().clip_tokenizer_dir


def tokenizer_folder(flavour: PadFlavour = "clip", cache_dir: Path | None = None) -> Path:
    """A folder holding vocab.json, merges.txt and the tokenizer config, built once and reused.

    The folder is written next to its final name and renamed into place, so concurrent
    builders (threads or processes) never see a half-written one.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / flavour
    if (target / "tokenizer_config.json").is_file():
        return target
    with _FOLDER_LOCK:
        if (target / "tokenizer_config.json").is_file():
            return target
        root.mkdir(parents=True, exist_ok=True)
        merges = read_merges(find_bpe_file())
        vocab = build_vocab(merges)
        staging = Path(tempfile.mkdtemp(prefix=f".{flavour}-", dir=root))
        try:
            write_tokenizer_files(staging, vocab, merges, flavour)
            try:
                staging.rename(target)
            except OSError:
                if not (target / "tokenizer_config.json").is_file():
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target


def write_tokenizer_files(
    folder: Path, vocab: dict[str, int], merges: list[str], flavour: PadFlavour
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = tokenizer_config(flavour)
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    specials = {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2), encoding="utf-8")


def copy_tokenizer_into(dest: Path, flavour: PadFlavour = "clip", cache_dir: Path | None = None) -> Path:
    """Fill ``dest`` (e.g. ``<config>/tokenizer``) with the tokenizer files of ``flavour``."""
    source = tokenizer_folder(flavour, cache_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file():
            shutil.copyfile(item, dest / item.name)
    return dest


def load_clip_tokenizer(flavour: PadFlavour = "clip", cache_dir: Path | None = None):
    """A transformers ``CLIPTokenizer`` with CLIP's standard ids, built without the network."""
    from transformers import CLIPTokenizer

    folder = tokenizer_folder(flavour, cache_dir)
    return CLIPTokenizer.from_pretrained(
        str(folder), local_files_only=True, model_max_length=MODEL_MAX_LENGTH
    )
