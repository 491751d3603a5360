"""Request and response models: they define the served OpenAPI (operation ids are stable).

Handlers build plain dicts of these shapes (see ``views.py``) and return them directly: the
models document the API; the dicts keep the hot paths free of per-request model validation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from middleware.domain.instance_types import INSTANCE_TYPES


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
    kind: str = Field(description="async, realtime, or local (a configured container)")
    status: str = Field(description="SageMaker's EndpointStatus (InService, Creating, Failed, ...), or Stopped")
    detail: str
    # Null where the deployment does not manage the endpoint (local containers).
    instance_type: str | None = None
    image: str | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    current_instances: int | None = None
    desired_instances: int | None = None
    backlog: float | None = Field(None, description="jobs waiting (CloudWatch ApproximateBacklogSize), best effort")
    failure_reason: str | None = None
    scaling: Literal["applied", "pending", "none"] | None = Field(
        None, description="pending: applied once SageMaker reports the endpoint InService"
    )


class CreateEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=63, description="letters, digits and hyphens (SageMaker's endpoint name rule)"
    )
    instance_type: str = Field(
        description="a GPU instance type, e.g. ml.g5.xlarge",
        json_schema_extra={"enum": [t.name for t in INSTANCE_TYPES]},
    )
    kind: Literal["async", "realtime"] = Field("async", description="async may scale to zero; realtime keeps >= 1")
    min_instances: int | None = Field(None, ge=0, le=20, description="default 0 (async) or 1 (realtime)")
    max_instances: int = Field(1, ge=1, le=20)
    image: str | None = Field(
        None, description="<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>; default: the stack's engine image"
    )


class ScaleEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_instances: int = Field(ge=0, le=20, description="0 only for async endpoints")
    max_instances: int = Field(ge=1, le=20)


class EndpointList(BaseModel):
    items: list[EndpointView]


class ModelView(BaseModel):
    name: str
    type: str
    size: int
    sha256: str
    # The model library's fields (issue 9); operator folder checkpoints have owner "operator".
    id: str | None = None
    owner: str | None = None
    visibility: Literal["private", "public"] | None = None
    created_at: int | None = None
    format: Literal["safetensors", "pickle"] | None = None
    uri: str | None = Field(default=None, description="blob key of the bytes (models/<sha256>)")


class ModelList(BaseModel):
    items: list[ModelView]
    next_cursor: str | None = None


ModelTypeName = Literal["checkpoint", "lora", "embedding", "vae", "controlnet", "upscaler"]


class DeclareUpload(BaseModel):
    name: str = Field(min_length=1, max_length=255, description="file name, e.g. style.safetensors")
    type: ModelTypeName
    size: int = Field(ge=1, description="bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    visibility: Literal["private", "public"] = "private"


class UploadPart(BaseModel):
    number: int
    size: int
    url: str = Field(description="PUT the part's bytes here (exactly `size` bytes); keep the ETag answered")


class ReceivedUploadPart(BaseModel):
    number: int
    size: int
    etag: str


class UploadStatusView(BaseModel):
    status: Literal["uploading", "verifying", "complete", "failed", "aborted"]
    upload_id: str | None
    part_size: int | None = None
    parts: list[UploadPart] = Field(default_factory=list, description="the parts still to send")
    received: list[ReceivedUploadPart] = Field(default_factory=list)
    expires_at: int | None = None
    model: ModelView | None = None
    error: str | None = None


class CompletedPart(BaseModel):
    number: int = Field(ge=1, le=10_000)
    etag: str | None = Field(default=None, max_length=200)


class CompleteUpload(BaseModel):
    parts: list[CompletedPart] = Field(default_factory=list, max_length=10_000)


class CompletedUpload(BaseModel):
    status: Literal["complete", "verifying"] = Field(
        description="verifying (202): the sha256 is being checked elsewhere; follow GET /v1/models/uploads/{id}"
    )
    upload_id: str | None = None
    model: ModelView | None = None


class PartReceived(BaseModel):
    number: int
    size: int
    etag: str


class ChangeVisibility(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visibility: Literal["private", "public"]


class ImportModel(BaseModel):
    url: str = Field(min_length=1, max_length=4096, description="https://... or s3://bucket/key")
    name: str = Field(min_length=1, max_length=255)
    type: ModelTypeName
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="checked when given")
    visibility: Literal["private", "public"] = "private"


class ImportStatusView(BaseModel):
    import_id: str
    status: Literal["importing", "complete", "failed"]
    bytes: int = 0
    url: str | None = None
    model: ModelView | None = None
    error: str | None = None
