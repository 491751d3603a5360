"""The container's one settings object: explicit argument, then environment variable, then default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024**3


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer (got {value!r})") from exc


@dataclass(frozen=True)
class ContainerSettings:
    host: str = "0.0.0.0"  # noqa: S104 - SageMaker reaches the container from outside its network namespace
    # SageMaker sets SAGEMAKER_BIND_TO_PORT for multi-container endpoints; 8080 is the contract's default.
    port: int = 8080
    model_cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "sdcloud" / "models")
    model_cache_bytes: int = 200 * GIB
    # Jobs allowed to wait behind the one running on the GPU; beyond that the server answers 429.
    max_waiting: int = 4
    max_body_bytes: int = 64 * 1024 * 1024
    preload_checkpoint: Path | None = None
    # Where outputs go when a job names output.prefix: file:///abs/folder (s3:// comes with the AWS adapters).
    output_store: str | None = None
    allow_pickle: bool = False
    pipelines_in_memory: int = 2
    # CPU runs: torch's intra-op threads (0 = torch's default). On a shared CPU, 1 avoids oversubscription.
    torch_threads: int = 0

    @classmethod
    def from_env(cls, **overrides: object) -> ContainerSettings:
        values: dict[str, object] = {
            "host": _env("SDCLOUD_HOST", cls.host),
            "port": _env_int("SAGEMAKER_BIND_TO_PORT", cls.port),
            "model_cache_bytes": _env_int("SDCLOUD_MODEL_CACHE_BYTES", cls.model_cache_bytes),
            "max_waiting": _env_int("SDCLOUD_MAX_WAITING", cls.max_waiting),
            "max_body_bytes": _env_int("SDCLOUD_MAX_BODY_BYTES", cls.max_body_bytes),
            "output_store": _env("SDCLOUD_OUTPUT_STORE"),
            "allow_pickle": _env("SDCLOUD_ALLOW_PICKLE", "0") in ("1", "true", "yes"),
            "pipelines_in_memory": _env_int("SDCLOUD_PIPELINES_IN_MEMORY", cls.pipelines_in_memory),
            "torch_threads": _env_int("SDCLOUD_TORCH_THREADS", cls.torch_threads),
        }
        cache_dir = _env("SDCLOUD_MODEL_CACHE_DIR")
        if cache_dir:
            values["model_cache_dir"] = Path(cache_dir)
        preload = _env("SDCLOUD_PRELOAD_CHECKPOINT")
        if preload:
            values["preload_checkpoint"] = Path(preload)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
