"""The container's one settings object: explicit argument, then environment variable, then default.

Every setting the container reads is a field here, parsed once by one set of rules (integers,
one truthy/falsy vocabulary, colon-separated folder lists). Engine modules that need a setting
when no explicit argument was given call ``ContainerSettings.from_env()`` rather than reading
``os.environ`` themselves. README.md's container section lists the same settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024**3
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """An environment variable holds a value the container cannot use; the message names it."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer (got {value!r})") from None


def _env_float(name: str, default: float) -> float:
    value = _env(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number (got {value!r})") from None
    if number < 0:
        raise SettingsError(f"{name} must not be negative (got {value!r})")
    return number


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise SettingsError(f"{name} must be one of {'/'.join(_TRUE)} or {'/'.join(_FALSE)} (got {value!r})")


def _env_path(name: str) -> Path | None:
    value = _env(name)
    return Path(value).expanduser() if value else None


def _env_folders(name: str) -> tuple[Path, ...] | None:
    value = _env(name)
    if value is None:
        return None
    folders = tuple(Path(part) for part in value.split(":") if part)
    relative = [str(p) for p in folders if not p.is_absolute()]
    if relative:
        raise SettingsError(f"{name} must list absolute folders separated by ':' (got {', '.join(relative)})")
    return folders


def _env_buckets(name: str) -> tuple[str, ...] | None:
    value = _env(name)
    if value is None:
        return None
    buckets = tuple(part.strip() for part in value.split(",") if part.strip())
    bad = [b for b in buckets if "/" in b or ":" in b or b != b.lower()]
    if bad:
        raise SettingsError(f"{name} must list bucket names separated by ',' (got {', '.join(bad)})")
    return buckets


def _home_cache() -> Path:
    return Path.home() / ".cache" / "sdcloud"


@dataclass(frozen=True)
class ContainerSettings:
    host: str = "0.0.0.0"  # noqa: S104 - SageMaker reaches the container from outside its network namespace
    # SageMaker sets SAGEMAKER_BIND_TO_PORT for multi-container endpoints; 8080 is the contract's default.
    port: int = 8080
    model_cache_dir: Path = field(default_factory=lambda: _home_cache() / "models")
    model_cache_bytes: int = 200 * GIB
    # Folders file:// model URIs may point into (symlinks resolved first). Empty: the preload
    # checkpoint's folder only, see ``file_model_roots``.
    model_roots: tuple[Path, ...] = ()
    # Jobs allowed to wait behind the one running on the GPU; beyond that the server answers 429.
    max_waiting: int = 4
    max_body_bytes: int = 64 * 1024 * 1024
    preload_checkpoint: Path | None = None
    # Where outputs go when a job names output.prefix: file:///abs/folder or s3://bucket[/prefix].
    output_store: str | None = None
    # Buckets s3:// model URIs may point into; empty: any bucket the container's role can read.
    model_buckets: tuple[str, ...] = ()
    # An S3 stand-in (moto) for tests; boto3 also honours AWS_ENDPOINT_URL_S3 by itself.
    s3_endpoint_url: str | None = None
    # A job's progress.json/preview.jpg in the output store: at most this often (and on every phase change).
    progress_publish_s: float = 1.0
    # Cancel/skip markers live in the output store: read them at most this often while sampling,
    # so an object store's GET latency never slows the steps down.
    marker_poll_s: float = 0.5
    allow_pickle: bool = False
    pipelines_in_memory: int = 2
    # CPU runs: torch's intra-op threads (0 = torch's default). On a shared CPU, 1 avoids oversubscription.
    torch_threads: int = 0
    # Prepared diffusers config folders (configs + tokenizer files) are built here once per version.
    engine_cache_dir: Path = field(default_factory=_home_cache)
    # The CLIP tokenizer files built from the BPE merges; None: <engine_cache_dir>/clip-tokenizer.
    tokenizer_dir: Path | None = None
    # The CLIP merges file when the image ships it outside an installed CLIP package.
    clip_bpe_path: Path | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> ContainerSettings:
        """Explicit ``overrides`` (None means "not given"), then the environment, then the defaults."""
        values: dict[str, object] = {
            "host": _env("SDCLOUD_HOST", cls.host),
            "port": _env_int("SAGEMAKER_BIND_TO_PORT", cls.port),
            "model_cache_bytes": _env_int("SDCLOUD_MODEL_CACHE_BYTES", cls.model_cache_bytes),
            "max_waiting": _env_int("SDCLOUD_MAX_WAITING", cls.max_waiting),
            "max_body_bytes": _env_int("SDCLOUD_MAX_BODY_BYTES", cls.max_body_bytes),
            "output_store": _env("SDCLOUD_OUTPUT_STORE"),
            "model_buckets": _env_buckets("SDCLOUD_MODEL_BUCKETS"),
            "s3_endpoint_url": _env("SDCLOUD_S3_ENDPOINT_URL"),
            "progress_publish_s": _env_float("SDCLOUD_PROGRESS_PUBLISH_S", cls.progress_publish_s),
            "marker_poll_s": _env_float("SDCLOUD_MARKER_POLL_S", cls.marker_poll_s),
            "allow_pickle": _env_bool("SDCLOUD_ALLOW_PICKLE", cls.allow_pickle),
            "pipelines_in_memory": _env_int("SDCLOUD_PIPELINES_IN_MEMORY", cls.pipelines_in_memory),
            "torch_threads": _env_int("SDCLOUD_TORCH_THREADS", cls.torch_threads),
            "model_cache_dir": _env_path("SDCLOUD_MODEL_CACHE_DIR"),
            "model_roots": _env_folders("SDCLOUD_MODEL_ROOTS"),
            "preload_checkpoint": _env_path("SDCLOUD_PRELOAD_CHECKPOINT"),
            "engine_cache_dir": _env_path("SDCLOUD_ENGINE_CACHE_DIR"),
            "tokenizer_dir": _env_path("SDCLOUD_TOKENIZER_DIR"),
            "clip_bpe_path": _env_path("SDCLOUD_CLIP_BPE_PATH"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]

    @property
    def clip_tokenizer_dir(self) -> Path:
        return self.tokenizer_dir or self.engine_cache_dir / "clip-tokenizer"

    @property
    def file_model_roots(self) -> tuple[Path, ...]:
        """Where file:// models may come from: the configured roots plus the preload checkpoint's
        folder (the operator named that file, so its folder is theirs too)."""
        roots = list(self.model_roots)
        if self.preload_checkpoint is not None:
            roots.append(Path(self.preload_checkpoint).expanduser().resolve().parent)
        return tuple(dict.fromkeys(roots))
