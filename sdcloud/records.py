"""Typed views of the middleware's JSON (the contract's job view, endpoints, models, pages).

Builders are tolerant: unknown fields are ignored (kept in `raw`), missing ones get defaults, so a
newer middleware does not break an older extension.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _opt_int(value: Any) -> int | None:
    return None if value is None or isinstance(value, bool) else _int(value)


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _str(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def parse_timestamp(text: str) -> datetime | None:
    """ISO 8601 to datetime; Python 3.10's fromisoformat does not accept a trailing 'Z'."""
    if not text:
        return None
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Progress:
    phase: str = "queued"
    step: int = 0
    steps: int = 0
    fraction: float = 0.0
    iteration: int = 0  # the batch iteration being sampled (0-based) of n_iter
    n_iter: int = 0
    preview_step: int = 0  # the step the live preview shows; 0 = none yet
    preview_url: str = ""  # signed URL of the live preview JPEG (expires)

    @classmethod
    def from_json(cls, data: Any) -> Progress:
        d = _dict(data)
        return cls(
            phase=_str(d.get("phase"), "queued"),
            step=_int(d.get("step")),
            steps=_int(d.get("steps")),
            fraction=_float(d.get("fraction")),
            iteration=_int(d.get("iteration")),
            n_iter=_int(d.get("n_iter")),
            preview_step=_int(d.get("preview_step")),
            preview_url=_str(d.get("preview_url"), ""),
        )


@dataclass(frozen=True)
class JobError:
    code: str = ""
    message: str = ""

    @classmethod
    def from_json(cls, data: Any) -> JobError | None:
        if data is None:
            return None
        if isinstance(data, str):
            return cls("", data)
        d = _dict(data)
        return cls(code=_str(d.get("code")), message=_str(d.get("message") or d.get("detail")))


@dataclass(frozen=True)
class ResultImage:
    index: int
    key: str
    url: str
    job_id: str = ""

    @classmethod
    def from_json(cls, data: Any, job_id: str = "") -> ResultImage:
        d = _dict(data)
        return cls(index=_int(d.get("index")), key=_str(d.get("key")), url=_str(d.get("url")), job_id=job_id)

    @property
    def filename(self) -> str:
        """A stable file name: '<job id>-<index>.png' (the key's last part as a fallback)."""
        if self.job_id:
            return f"{self.job_id}-{self.index}.png"
        tail = self.key.rsplit("/", 1)[-1] if self.key else ""
        return tail or f"image-{self.index}.png"


@dataclass(frozen=True)
class JobResult:
    images: list[ResultImage] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    info: str = ""
    infotexts: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any, job_id: str = "") -> JobResult | None:
        if data is None:
            return None
        d = _dict(data)
        info = d.get("info")
        if isinstance(info, dict):
            info = json.dumps(info)
        images = [ResultImage.from_json(i, job_id) for i in _list(d.get("images"))]
        images.sort(key=lambda i: i.index)
        return cls(
            images=images,
            parameters=_dict(d.get("parameters")),
            info=_str(info),
            infotexts=[_str(t) for t in _list(d.get("infotexts"))],
        )

    @property
    def info_dict(self) -> dict[str, Any]:
        """The container's A1111-shaped info, decoded; {} when absent or unreadable."""
        try:
            value = json.loads(self.info) if self.info else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def infotext(self, index: int = 0) -> str:
        """The infotext for image `index` (falls back to the first, then to info's infotexts)."""
        texts = self.infotexts or [_str(t) for t in _list(self.info_dict.get("infotexts"))]
        if not texts:
            return ""
        return texts[index] if 0 <= index < len(texts) else texts[0]

    def seed(self, index: int = 0) -> int | None:
        """The seed of image `index`, from info (all_seeds, then seed), then from parameters."""
        info = self.info_dict
        seeds = _list(info.get("all_seeds"))
        if 0 <= index < len(seeds):
            return _int(seeds[index], -1)
        for source in (info, self.parameters):
            if "seed" in source:
                return _int(source["seed"], -1)
        return None


@dataclass(frozen=True)
class Job:
    id: str
    status: str = "queued"
    task: str = ""
    owner: str = ""
    endpoint: str = ""
    checkpoint: str = ""
    created_at: str = ""
    updated_at: str = ""
    version: int = 0
    progress: Progress = field(default_factory=Progress)
    error: JobError | None = None
    result: JobResult | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> Job:
        d = _dict(data)
        job_id = _str(d.get("id"))
        return cls(
            id=job_id,
            status=_str(d.get("status"), "queued"),
            task=_str(d.get("task")),
            owner=_str(d.get("owner")),
            endpoint=_str(d.get("endpoint")),
            checkpoint=_str(d.get("checkpoint")),
            created_at=_str(d.get("created_at")),
            updated_at=_str(d.get("updated_at")),
            version=_int(d.get("version")),
            progress=Progress.from_json(d.get("progress")),
            error=JobError.from_json(d.get("error")),
            result=JobResult.from_json(d.get("result"), job_id),
            payload=_dict(d.get("payload")),
            raw=d,
        )

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def images(self) -> list[ResultImage]:
        return list(self.result.images) if self.result else []

    @property
    def infotexts(self) -> list[str]:
        if not self.result:
            return []
        return [self.result.infotext(i) for i in range(max(len(self.result.images), 1))]

    @property
    def prompt(self) -> str:
        return _str(self.payload.get("prompt"))

    @property
    def created(self) -> datetime | None:
        return parse_timestamp(self.created_at)


@dataclass(frozen=True)
class Endpoint:
    name: str
    kind: str = ""
    status: str = ""
    detail: str = ""
    # Filled by servers that manage endpoints (AWS mode); None where the server does not say.
    instance_type: str = ""
    current_instances: int | None = None
    desired_instances: int | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    failure_reason: str = ""

    @classmethod
    def from_json(cls, data: Any) -> Endpoint:
        d = _dict(data)
        return cls(
            name=_str(d.get("name")),
            kind=_str(d.get("kind")),
            status=_str(d.get("status")),
            detail=_str(d.get("detail")),
            failure_reason=_str(d.get("failure_reason")),
            instance_type=_str(d.get("instance_type")),
            current_instances=_opt_int(d.get("current_instances")),
            desired_instances=_opt_int(d.get("desired_instances")),
            min_instances=_opt_int(d.get("min_instances")),
            max_instances=_opt_int(d.get("max_instances")),
        )

    @property
    def in_service(self) -> bool:
        return self.status == "InService"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    type: str = "checkpoint"
    size: int = 0
    sha256: str = ""
    # the model library's fields (issue 9); an older middleware sends only the four above
    id: str = ""
    owner: str = ""
    visibility: str = ""
    created_at: float = 0.0
    format: str = ""

    @classmethod
    def from_json(cls, data: Any) -> ModelInfo:
        d = _dict(data)
        return cls(
            name=_str(d.get("name")),
            type=_str(d.get("type"), "checkpoint"),
            size=_int(d.get("size")),
            sha256=_str(d.get("sha256")),
            id=_str(d.get("id")),
            owner=_str(d.get("owner")),
            visibility=_str(d.get("visibility")),
            created_at=_float(d.get("created_at")),
            format=_str(d.get("format")),
        )

    @property
    def short_hash(self) -> str:
        """A1111's 'Model hash' is the first 10 hex digits of the sha256."""
        return self.sha256[:10]


@dataclass(frozen=True)
class ServerInfo:
    status: str = ""
    version: str = ""
    mode: str = ""

    @classmethod
    def from_json(cls, data: Any) -> ServerInfo:
        d = _dict(data)
        return cls(status=_str(d.get("status")), version=_str(d.get("version")), mode=_str(d.get("mode")))


@dataclass(frozen=True)
class User:
    user: str = ""
    role: str = ""

    @classmethod
    def from_json(cls, data: Any) -> User:
        d = _dict(data)
        return cls(user=_str(d.get("user") or d.get("name")), role=_str(d.get("role")))


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None

    @classmethod
    def from_json(cls, data: Any, item: Callable[[Any], T]) -> Page[T]:
        d = _dict(data)
        cursor = d.get("next_cursor")
        return cls(
            items=[item(i) for i in _list(d.get("items"))], next_cursor=str(cursor) if cursor else None
        )
