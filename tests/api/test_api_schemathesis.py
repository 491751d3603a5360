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
from tests.api.conftest import make_settings
from tests.fakes.fake_container import FakeContainer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATIONS = [
    "ping",
    "get_me",
    "create_inference",
    "get_inference",
    "list_inferences",
    "cancel_inference",
    "list_endpoints",
    "list_models",
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
    "list_models",
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
