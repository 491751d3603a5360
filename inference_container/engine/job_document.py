"""The job document's envelope (DESIGN §4): ``id``, ``task``, ``models`` by reference, ``output``.

The payload inside it is the generation contract's business (``inference_container/contract``);
this module checks only what the middleware wraps around it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..contract import describe
from ..errors import InvalidRequest
from .types import ModelRef

TASKS = ("txt2img", "img2img")
JOB_KEYS = ("id", "task", "payload", "models", "output")
MODEL_KEYS = ("checkpoint", "vae", "loras", "embeddings")
REF_KEYS = ("name", "uri", "sha256", "size")
MAX_NETWORKS = 32  # LoRAs or embeddings in one job; each is a file fetched and applied

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PREFIX = re.compile(r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Envelope:
    job_id: str
    task: str
    payload: Any
    checkpoint: ModelRef
    vae: ModelRef | None
    output_prefix: str | None
    loras: tuple[ModelRef, ...] = ()
    embeddings: tuple[ModelRef, ...] = ()


def read_envelope(job: Any) -> Envelope:
    """Check the envelope; raises InvalidRequest / UnsupportedFeature naming the field."""
    if not isinstance(job, dict):
        raise InvalidRequest(f"the job must be a JSON object (got {describe(job)})")
    _reject_unknown_keys(job, JOB_KEYS, "")
    job_id = _job_id(job.get("id"))
    task = job.get("task")
    if task not in TASKS:
        raise InvalidRequest(f"unknown task {describe(task)}; expected one of: {', '.join(TASKS)}", field="task")
    if "payload" not in job:
        raise InvalidRequest("payload is required (an object of WebUI fields; {} for all defaults)", field="payload")
    checkpoint, vae, loras, embeddings = _models(job.get("models"))
    return Envelope(
        job_id, task, job["payload"], checkpoint, vae, _output_prefix(job.get("output")), loras, embeddings
    )


def _reject_unknown_keys(obj: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            shown = key if isinstance(key, str) and key.isprintable() and len(key) <= 64 else ascii(key)[:66]
            path = f"{prefix}.{shown}" if prefix else shown
            raise InvalidRequest(f"unknown field {shown!r}; expected one of: {', '.join(allowed)}", field=path)


def _job_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"job id is required and must be a string (got {describe(value)})", field="id")
    if not _JOB_ID.match(value):
        raise InvalidRequest(
            "job id must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="id",
        )
    return value


def model_ref(value: Any, path: str) -> ModelRef:
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"must be a model reference object {{name, uri, sha256, size}} (got {describe(value)})", field=path
        )
    _reject_unknown_keys(value, REF_KEYS, path)
    for key in REF_KEYS:
        if key not in value:
            raise InvalidRequest(f"model reference is missing {key!r}", field=f"{path}.{key}")

    name = value["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 255 or not name.isprintable():
        raise InvalidRequest("model name must be a non-empty printable string of at most 255 characters", field=f"{path}.name")
    if name.startswith("/") or ".." in name.replace("\\", "/").split("/"):
        raise InvalidRequest("model name must be a plain file name (no absolute path or '..')", field=f"{path}.name")

    uri = value["uri"]
    if not isinstance(uri, str) or not uri.isprintable():
        raise InvalidRequest(f"model uri must be a printable string (got {describe(uri)})", field=f"{path}.uri")
    if uri.startswith("file://"):
        if not uri[len("file://"):].startswith("/"):
            raise InvalidRequest("file:// model uri must hold an absolute path (file:///abs/path)", field=f"{path}.uri")
    elif uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://"):].partition("/")
        if not bucket or not key:
            raise InvalidRequest("s3:// model uri must look like s3://bucket/key", field=f"{path}.uri")
    else:
        raise InvalidRequest("model uri must start with file:// or s3://", field=f"{path}.uri")
    if _CONTROL.search(uri):
        raise InvalidRequest("model uri must not contain control characters", field=f"{path}.uri")

    sha256 = value["sha256"]
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise InvalidRequest("sha256 must be 64 lowercase hexadecimal characters", field=f"{path}.sha256")
    size = value["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise InvalidRequest(f"size must be a positive integer number of bytes (got {describe(size)})", field=f"{path}.size")
    return ModelRef(name=name, uri=uri, sha256=sha256, size=size)


def _models(value: Any) -> tuple[ModelRef, ModelRef | None, tuple[ModelRef, ...], tuple[ModelRef, ...]]:
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"models is required: an object with a checkpoint reference (got {describe(value)})", field="models"
        )
    _reject_unknown_keys(value, MODEL_KEYS, "models")
    if value.get("checkpoint") is None:
        raise InvalidRequest("a checkpoint reference is required", field="models.checkpoint")
    checkpoint = model_ref(value["checkpoint"], "models.checkpoint")
    vae = None if value.get("vae") is None else model_ref(value["vae"], "models.vae")
    lists: dict[str, tuple[ModelRef, ...]] = {}
    for kind in ("loras", "embeddings"):
        listed = value.get(kind)
        if listed is None:
            lists[kind] = ()
            continue
        if not isinstance(listed, list):
            raise InvalidRequest(f"must be a list of model references (got {describe(listed)})", field=f"models.{kind}")
        if len(listed) > MAX_NETWORKS:
            raise InvalidRequest(f"at most {MAX_NETWORKS} {kind} per job (got {len(listed)})", field=f"models.{kind}")
        refs = tuple(model_ref(item, f"models.{kind}[{i}]") for i, item in enumerate(listed))
        names = [_stem(ref.name) for ref in refs]
        for i, name in enumerate(names):
            if name in names[:i]:
                # Tags and prompt words name a network by its stem: two files with one stem are ambiguous.
                raise InvalidRequest(f"two {kind} are named {name!r}", field=f"models.{kind}[{i}].name")
        lists[kind] = refs
    return checkpoint, vae, lists["loras"], lists["embeddings"]


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def _output_prefix(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f'must be an object {{"prefix": "jobs/<id>/"}} (got {describe(value)})', field="output")
    _reject_unknown_keys(value, ("prefix",), "output")
    prefix = value.get("prefix")
    if prefix is None:
        return None
    if not isinstance(prefix, str) or len(prefix) > 512:
        raise InvalidRequest("output prefix must be a string of at most 512 characters", field="output.prefix")
    segments = prefix.split("/")[:-1]
    if not _PREFIX.match(prefix) or any(s in (".", "..") for s in segments):
        raise InvalidRequest(
            "output prefix must be a relative path of letters, digits, '.', '_', '-' segments ending "
            "with '/' (e.g. jobs/<id>/), without '..'",
            field="output.prefix",
        )
    return prefix
