"""Request and response models: they define the served OpenAPI (operation ids are stable).

Handlers build plain dicts of these shapes (see ``views.py``) and return them directly: the
models document the API; the dicts keep the hot paths free of per-request model validation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ProblemFieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    code: str | None = None
    errors: list[ProblemFieldError] | None = None


class Ping(BaseModel):
    status: Literal["ok"]
    version: str
    mode: str


class Me(BaseModel):
    user: str
    role: str


class CreateInference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Literal["txt2img", "img2img"]
    payload: dict[str, Any] = Field(default_factory=dict, description="AUTOMATIC1111 /sdapi/v1 fields")
    checkpoint: str | None = Field(
        default=None,
        description="a model name from GET /v1/models (file name, name without extension, "
        "'name [hash]' or short hash); without it, payload.override_settings.sd_model_checkpoint",
    )
    endpoint: str | None = Field(default=None, description="an endpoint name from GET /v1/endpoints")


class JobProgress(BaseModel):
    phase: str
    step: int
    steps: int
    fraction: float
    iteration: int = Field(0, description="the batch iteration (0-based) being sampled: what a skip ends")
    n_iter: int = 0
    preview_step: int = Field(0, description="the step the live preview shows; 0 = none yet")
    preview_url: str | None = Field(None, description="signed URL of the live preview JPEG; expires")


class JobErrorView(BaseModel):
    code: str
    message: str


class ImageView(BaseModel):
    index: int
    key: str
    url: str = Field(description="absolute signed URL; expires")


class JobResultView(BaseModel):
    images: list[ImageView]
    parameters: dict[str, Any]
    info: str
    infotexts: list[str]
    interrupted: bool = Field(description="sampling was interrupted or skipped: the images are partial")


class JobView(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    task: str
    owner: str
    endpoint: str
    checkpoint: str
    created_at: datetime
    updated_at: datetime
    version: int
    progress: JobProgress
    error: JobErrorView | None
    result: JobResultView | None
    payload: dict[str, Any] = Field(description="a bounded summary of the request (prompt excerpts, sizes)")


class JobList(BaseModel):
    items: list[JobView]
    next_cursor: str | None


class EndpointView(BaseModel):
    name: str
    kind: str
    status: str
    detail: str


class EndpointList(BaseModel):
    items: list[EndpointView]


class ModelView(BaseModel):
    name: str
    type: str
    size: int
    sha256: str


class ModelList(BaseModel):
    items: list[ModelView]
