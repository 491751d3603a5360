"""The GPU instance list and the endpoint spec rules (pure)."""

from __future__ import annotations

import pytest

from middleware.domain.errors import InvalidInput
from middleware.domain.instance_types import (
    INSTANCE_TYPES,
    MAX_INSTANCES,
    instance_type,
    validate_endpoint_spec,
    validate_scale,
)

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sdcloud-engine:1.0"
SPEC = {"name": "sd-async", "instance_type": "ml.g5.xlarge", "kind": "async", "min_instances": 0,
        "max_instances": 2, "image": IMAGE}


def fields(exc: pytest.ExceptionInfo[InvalidInput]) -> dict[str, str]:
    return {e.field: e.message for e in exc.value.errors}


def test_the_list_covers_the_current_gpu_families():
    families = {t.name.split(".")[1] for t in INSTANCE_TYPES}
    assert {"g4dn", "g5", "g6", "g6e", "p4d", "p5"} <= families
    names = [t.name for t in INSTANCE_TYPES]
    assert len(names) == len(set(names))
    assert all(t.name.startswith("ml.") and t.gpus >= 1 and t.gpu_memory_gib >= 16 for t in INSTANCE_TYPES)
    assert all(t.vcpus >= 4 and t.memory_gib >= 16 for t in INSTANCE_TYPES)


@pytest.mark.parametrize(
    ("name", "gpu", "gpus", "gpu_gib", "vcpus", "memory_gib"),
    [
        ("ml.g4dn.xlarge", "NVIDIA T4", 1, 16, 4, 16),
        ("ml.g5.xlarge", "NVIDIA A10G", 1, 24, 4, 16),
        ("ml.g5.12xlarge", "NVIDIA A10G", 4, 24, 48, 192),
        ("ml.g6.2xlarge", "NVIDIA L4", 1, 24, 8, 32),
        ("ml.g6e.xlarge", "NVIDIA L40S", 1, 48, 4, 32),
        ("ml.p4d.24xlarge", "NVIDIA A100", 8, 40, 96, 1152),
        ("ml.p5.48xlarge", "NVIDIA H100", 8, 80, 192, 2048),
    ],
)
def test_known_types_have_their_published_figures(name, gpu, gpus, gpu_gib, vcpus, memory_gib):
    found = instance_type(name)
    assert found is not None
    assert (found.gpu, found.gpus, found.gpu_memory_gib, found.vcpus, found.memory_gib) == (
        gpu, gpus, gpu_gib, vcpus, memory_gib
    )
    assert found.total_gpu_memory_gib == gpus * gpu_gib
    assert found.to_dict()["name"] == name


def test_a_valid_async_spec_may_scale_to_zero():
    spec = validate_endpoint_spec(SPEC)
    assert (spec.name, spec.kind, spec.min_instances, spec.max_instances, spec.image) == (
        "sd-async", "async", 0, 2, IMAGE
    )


def test_defaults_and_the_default_image():
    spec = validate_endpoint_spec({"name": "a", "instance_type": "ml.g6.xlarge"}, default_image=IMAGE)
    assert (spec.kind, spec.min_instances, spec.max_instances, spec.image) == ("async", 0, 1, IMAGE)
    rt = validate_endpoint_spec({"name": "b", "instance_type": "ml.g6.xlarge", "kind": "realtime"}, IMAGE)
    assert (rt.min_instances, rt.max_instances) == (1, 1)


def test_digest_images_are_accepted():
    digest = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/engine@sha256:" + "ab" * 32
    assert validate_endpoint_spec({**SPEC, "image": digest}).image == digest


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"name": ""}, "name", "is required"),
        ({"name": "-bad"}, "name", "letters, digits and hyphens"),
        ({"name": "under_score"}, "name", "not a SageMaker endpoint name"),
        ({"name": "a" * 64}, "name", "at most 63"),
        ({"instance_type": "ml.m5.xlarge"}, "instance_type", "not a GPU instance type"),
        ({"instance_type": 3}, "instance_type", "ml.g5.xlarge"),
        ({"kind": "batch"}, "kind", "async or realtime"),
        ({"kind": "realtime", "min_instances": 0}, "min_instances", "cannot scale to zero"),
        ({"min_instances": -1}, "min_instances", "cannot be negative"),
        ({"min_instances": True}, "min_instances", "whole number"),
        ({"max_instances": 0}, "max_instances", "at least 1"),
        ({"max_instances": MAX_INSTANCES + 1}, "max_instances", f"at most {MAX_INSTANCES}"),
        ({"min_instances": 3, "max_instances": 2}, "max_instances", "at least min_instances (3)"),
        ({"image": "nginx:latest"}, "image", "not an ECR image URI"),
        ({"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/engine"}, "image", "not an ECR image URI"),
        ({"image": None}, "image", "SDCLOUD_SAGEMAKER_IMAGE_URI"),
    ],
)
def test_bad_specs_name_the_field_and_the_fix(change, field, words):
    with pytest.raises(InvalidInput) as exc:
        validate_endpoint_spec({**SPEC, **change})
    found = fields(exc)
    assert field in found and words in found[field], found


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(InvalidInput) as exc:
        validate_endpoint_spec({"name": "_", "instance_type": "x", "kind": "async", "image": "y"})
    assert set(fields(exc)) == {"name", "instance_type", "image"}


def test_scale_rules_follow_the_kind():
    assert validate_scale("async", 0, 0 + 1) == (0, 1)
    assert validate_scale("realtime", 1, 4) == (1, 4)
    with pytest.raises(InvalidInput) as exc:
        validate_scale("realtime", 0, 1)
    assert "cannot scale to zero" in fields(exc)["min_instances"]
    with pytest.raises(InvalidInput) as exc:
        validate_scale("async", 2, 1)
    assert "max_instances" in fields(exc)
