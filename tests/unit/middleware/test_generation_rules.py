"""The middleware's rules are its copy of the generation contract (tests/unit/contract checks the
rules themselves); here: they come back as domain FieldErrors, every problem listed."""

from middleware.domain.errors import FieldError
from middleware.domain.generation_rules import validate_generation


def test_a_valid_payload_has_no_errors():
    assert validate_generation("txt2img", {"prompt": "a cat", "steps": 20}) == []


def test_problems_come_back_as_field_errors_in_the_contracts_words():
    errors = validate_generation("txt2img", {"width": 500, "restore_faces": True})
    assert all(isinstance(e, FieldError) for e in errors)
    assert [e.field for e in errors] == ["payload.restore_faces", "payload.width"]
    assert errors[1].message == "width must be a multiple of 8 (got 500)"


def test_the_prefix_names_where_the_payload_sits():
    errors = validate_generation("txt2img", {"steps": 0}, prefix="body.payload")
    assert errors[0].field == "body.payload.steps"


def test_unknown_task():
    assert [e.field for e in validate_generation("paint", {})] == ["task"]
