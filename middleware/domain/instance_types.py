"""SageMaker GPU instance types and the rules an endpoint spec must follow (pure: no I/O).

The list is ours and kept current by hand: stand-ins such as moto only know older families
(g4dn, p3), so nothing here is read from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from middleware.domain.errors import FieldError, InvalidInput

ASYNC = "async"
REALTIME = "realtime"
KINDS = (ASYNC, REALTIME)

# A deliberate ceiling: SageMaker's default per-account quotas are far lower for GPU instances,
# and a typo such as 100 instead of 10 should be refused, not billed.
MAX_INSTANCES = 20

# SageMaker's pattern for endpoint, endpoint-config and model names (63 characters at most).
_NAME = re.compile(r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$")
# <account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>(:<tag>|@sha256:<digest>)
_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z]{2}(-[a-z]+)+-\d)\.amazonaws\.com(\.cn)?"
    r"/(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@sha256:(?P<digest>[0-9a-f]{64}))$"
)


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpu: str
    gpus: int
    gpu_memory_gib: int  # per GPU
    vcpus: int
    memory_gib: int

    @property
    def total_gpu_memory_gib(self) -> int:
        return self.gpus * self.gpu_memory_gib

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gpu": self.gpu,
            "gpus": self.gpus,
            "gpu_memory_gib": self.gpu_memory_gib,
            "vcpus": self.vcpus,
            "memory_gib": self.memory_gib,
        }


def _family(prefix: str, gpu: str, gpu_gib: int, sizes: list[tuple[str, int, int, int]]) -> list[InstanceType]:
    return [InstanceType(f"ml.{prefix}.{size}", gpu, gpus, gpu_gib, vcpus, mem) for size, gpus, vcpus, mem in sizes]


# (size, GPUs, vCPUs, memory GiB): g5 and g6 share one layout.
_G5_G6_SIZES = [
    ("xlarge", 1, 4, 16),
    ("2xlarge", 1, 8, 32),
    ("4xlarge", 1, 16, 64),
    ("8xlarge", 1, 32, 128),
    ("12xlarge", 4, 48, 192),
    ("16xlarge", 1, 64, 256),
    ("24xlarge", 4, 96, 384),
    ("48xlarge", 8, 192, 768),
]

INSTANCE_TYPES: tuple[InstanceType, ...] = tuple(
    _family(
        "g4dn",
        "NVIDIA T4",
        16,
        [
            ("xlarge", 1, 4, 16),
            ("2xlarge", 1, 8, 32),
            ("4xlarge", 1, 16, 64),
            ("8xlarge", 1, 32, 128),
            ("12xlarge", 4, 48, 192),
            ("16xlarge", 1, 64, 256),
        ],
    )
    + _family("g5", "NVIDIA A10G", 24, _G5_G6_SIZES)
    + _family("g6", "NVIDIA L4", 24, _G5_G6_SIZES)
    + _family(
        "g6e",
        "NVIDIA L40S",
        48,
        [
            ("xlarge", 1, 4, 32),
            ("2xlarge", 1, 8, 64),
            ("4xlarge", 1, 16, 128),
            ("8xlarge", 1, 32, 256),
            ("12xlarge", 4, 48, 384),
            ("16xlarge", 1, 64, 512),
            ("24xlarge", 4, 96, 768),
            ("48xlarge", 8, 192, 1536),
        ],
    )
    + _family("p4d", "NVIDIA A100", 40, [("24xlarge", 8, 96, 1152)])
    + _family("p4de", "NVIDIA A100", 80, [("24xlarge", 8, 96, 1152)])
    + _family("p5", "NVIDIA H100", 80, [("48xlarge", 8, 192, 2048)])
    + _family("p5e", "NVIDIA H200", 141, [("48xlarge", 8, 192, 2048)])
)
_BY_NAME = {t.name: t for t in INSTANCE_TYPES}


def instance_type(name: str) -> InstanceType | None:
    return _BY_NAME.get(name)


@dataclass(frozen=True)
class EndpointSpec:
    """A checked request for a SageMaker endpoint (one variant, one model container)."""

    name: str
    instance_type: str
    kind: str
    min_instances: int
    max_instances: int
    image: str


def name_problem(value: Any) -> str | None:
    """Why ``value`` is not a name SageMaker accepts for an endpoint, or None when it is."""
    if not isinstance(value, str) or not value:
        return "is required: 1-63 letters, digits and hyphens"
    if len(value) > 63:
        return f"is {len(value)} characters long; SageMaker allows at most 63"
    if not _NAME.match(value):
        return (
            f"{value!r} is not a SageMaker endpoint name: use letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return None


def image_problem(value: Any) -> str | None:
    """Why ``value`` is not an ECR image URI, or None when it is."""
    if not isinstance(value, str) or not value:
        return "is required: <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>"
    if not _IMAGE.match(value):
        return (
            f"{value[:200]!r} is not an ECR image URI: use "
            "<12-digit account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> or ...@sha256:<64 hex digits>"
        )
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def count_problems(kind: str, min_instances: Any, max_instances: Any) -> list[FieldError]:
    """The instance-count rules: async may scale to zero, real-time keeps at least one."""
    errors: list[FieldError] = []
    lowest = 0 if kind == ASYNC else 1
    for field, value in (("min_instances", min_instances), ("max_instances", max_instances)):
        if not _is_count(value):
            errors.append(FieldError(field, f"must be a whole number from {lowest} to {MAX_INSTANCES}"))
    if errors:
        return errors
    if min_instances < lowest:
        reason = (
            "a real-time endpoint cannot scale to zero: use at least 1, or kind 'async'"
            if kind == REALTIME
            else "cannot be negative"
        )
        errors.append(FieldError("min_instances", reason))
    if max_instances < 1:
        errors.append(FieldError("max_instances", "must be at least 1 (stop an endpoint to run no instances)"))
    if max_instances > MAX_INSTANCES:
        errors.append(FieldError("max_instances", f"must be at most {MAX_INSTANCES} (got {max_instances})"))
    if min_instances > max_instances:
        errors.append(
            FieldError("max_instances", f"must be at least min_instances ({min_instances}); got {max_instances}")
        )
    return errors


def validate_endpoint_spec(raw: dict[str, Any], default_image: str | None = None) -> EndpointSpec:
    """``raw`` (the request body) as an EndpointSpec, or InvalidInput naming every bad field."""
    errors: list[FieldError] = []
    name = raw.get("name")
    if (problem := name_problem(name)) is not None:
        errors.append(FieldError("name", problem))
    type_name = raw.get("instance_type")
    if not isinstance(type_name, str) or instance_type(type_name) is None:
        families = sorted({t.name.split(".")[1] for t in INSTANCE_TYPES})
        errors.append(
            FieldError(
                "instance_type",
                f"{str(type_name)[:60]!r} is not a GPU instance type SD Cloud knows; choose one such as "
                f"ml.g5.xlarge (families: {', '.join(families)})",
            )
        )
    kind = raw.get("kind", ASYNC)
    if kind not in KINDS:
        errors.append(FieldError("kind", f"choose {' or '.join(KINDS)} (got {str(kind)[:40]!r})"))
    min_instances = raw.get("min_instances", 0 if kind == ASYNC else 1)
    max_instances = raw.get("max_instances", 1)
    if kind in KINDS:
        errors.extend(count_problems(kind, min_instances, max_instances))
    image = raw.get("image") or default_image
    if image is None:
        errors.append(
            FieldError("image", "is required here: no default engine image is configured (SDCLOUD_SAGEMAKER_IMAGE_URI)")
        )
    elif (problem := image_problem(image)) is not None:
        errors.append(FieldError("image", problem))
    if errors:
        raise InvalidInput(errors)
    return EndpointSpec(
        name=name,  # type: ignore[arg-type] - checked above
        instance_type=type_name,  # type: ignore[arg-type]
        kind=kind,
        min_instances=min_instances,
        max_instances=max_instances,
        image=image,
    )


def validate_scale(kind: str, min_instances: Any, max_instances: Any) -> tuple[int, int]:
    """New bounds for an endpoint of ``kind``, or InvalidInput naming what to fix."""
    errors = count_problems(kind, min_instances, max_instances)
    if errors:
        raise InvalidInput(errors)
    return min_instances, max_instances
