"""Property-based run over the served OpenAPI: no 500s, and every response conforms to it.

Each operation gets a bounded Hypothesis run (30 examples) with a valid bearer key. The cases
are driven directly rather than through schemathesis' lazy pytest loader, which does not run
under this pytest version.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from middleware.bootstrap import build_local, provision_admin
from tests.api.conftest import CHECKPOINT, make_settings
from tests.fakes.fake_container import FakeContainer

TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAADElEQVR4nGNgGB4AAADIAAGtQHYiAAAAAElFTkSuQmCC"
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATIONS = [
    "ping",
    "get_me",
    "create_inference",
    "get_inference",
    "list_inferences",
    "cancel_inference",
    "skip_inference",
    "get_contract",
    "list_endpoints",
    "create_endpoint",
    "get_endpoint",
    "scale_endpoint",
    "stop_endpoint",
    "delete_endpoint",
    "list_models",
    "declare_model_upload",
    "get_model_upload",
    "complete_model_upload",
    "abort_model_upload",
    "put_upload_part",
    "import_model",
    "get_model_import",
    "get_model",
    "update_model",
    "delete_model",
    "get_blob",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with FakeContainer() as fake:
        runtime = build_local(make_settings(tmp_path_factory.mktemp("schemathesis"), fake.url))
        key = provision_admin(runtime).read_text().strip()
        runtime.start()
        try:
            yield schemathesis.openapi.from_asgi("/v1/openapi.json", runtime.app), key
        finally:
            runtime.stop()


def test_every_operation_is_covered(served):
    schema, _key = served
    ids = sorted(result.ok().definition.raw["operationId"] for result in schema.get_all_operations())
    assert ids == sorted(OPERATIONS)


# Operations with inputs to get wrong also get a negative run (data that violates the schema).
WITH_INPUTS = [
    "create_inference",
    "get_inference",
    "list_inferences",
    "cancel_inference",
    "skip_inference",
    "create_endpoint",
    "scale_endpoint",
    "list_models",
    "declare_model_upload",
    "complete_model_upload",
    "put_upload_part",
    "import_model",
    "update_model",
    "get_blob",
]
RUNS = [(op, GenerationMode.POSITIVE) for op in OPERATIONS] + [
    (op, GenerationMode.NEGATIVE) for op in WITH_INPUTS
]


@pytest.mark.parametrize(("operation_id", "mode"), RUNS, ids=[f"{op}-{mode.value}" for op, mode in RUNS])
def test_openapi_conformance(served, operation_id, mode):
    schema, key = served
    operation = schema.find_operation_by_id(operation_id)
    calls = []

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
        calls.append(response.status_code)

    run()
    assert calls and all(status < 500 for status in calls)


# Rules across fields that JSON Schema cannot state; the schema's descriptions say them, and these
# are the only refusals a schema-valid job may get: (field, words of the refusal).
CROSS_FIELD_RULES = (
    ("payload.eta", "does not use eta"),
    ("payload.s_churn", "does not use s_churn"),
    ("payload.s_tmin", "does not use s_tmin"),
    ("payload.s_tmax", "does not use s_tmax"),
    ("payload.s_noise", "does not use s_noise"),
    ("payload.scheduler", "cannot be used with sampler"),
    ("payload.hr_scale", "hires fix"),
    ("payload.hr_resize_x", "hires fix"),
    # Names the schema cannot enumerate: what the model library holds is known only at submit.
    ("payload.override_settings.sd_vae", "unknown VAE"),
    ("payload.prompt", "unknown LoRA"),
)


def test_every_schema_valid_job_is_accepted(served):
    """A request valid by the served schema is one the API accepts: payloads are drawn from the
    schema (the contract's), the checkpoint is one that exists, and each is queued unless it
    breaks one of the cross-field rules above."""
    schema, key = served
    operation = schema.find_operation_by_id("create_inference")
    refused = []
    accepted = []

    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        case.body["checkpoint"] = CHECKPOINT
        case.body["endpoint"] = None
        # Keys drawn twice for different bodies are rightly refused (422): not what this tests.
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "idempotency-key"}
        if case.body["task"] == "img2img":
            # Image bytes are beyond JSON Schema: the images drawn are random base64 strings.
            payload = case.body["payload"]
            payload["init_images"] = [TINY_PNG] * len(payload["init_images"])
            # A rule across fields JSON Schema cannot state: several init images set the batch.
            if len(payload["init_images"]) > 1:
                payload["batch_size"] = max(payload.get("batch_size") or 1, len(payload["init_images"]))
        response = case.call(headers={"Authorization": f"Bearer {key}"})
        if response.status_code in (200, 202):
            accepted.append(response.status_code)
            return
        errors = response.json().get("errors") or [{"field": "", "message": response.text[:200]}]
        for error in errors:
            if not any(error["field"] == f and words in error["message"] for f, words in CROSS_FIELD_RULES):
                refused.append((response.status_code, error["field"], error["message"][:160]))

    run()
    assert refused == [], sorted(set(refused))
    assert accepted
