"""Reads middleware/template.yaml (CloudFormation short-form tags included) and turns its table
definitions into ``create_table`` arguments, so tests build their tables from the template itself."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "middleware" / "template.yaml"

_TAGS = ("Ref", "Sub", "GetAtt", "Join", "Select", "Split", "If", "Equals", "Not", "And", "Or",
         "FindInMap", "ImportValue", "Base64", "GetAZs", "Condition", "Cidr", "Transform")  # fmt: skip


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads ``!Ref x`` as ``{"Ref": "x"}`` and ``!GetAtt a.b`` as
    ``{"Fn::GetAtt": ["a", "b"]}``, like CloudFormation does."""


def _construct(tag: str):
    def construct(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        name = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"
        return {name: value}

    return construct


for _tag in _TAGS:
    CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


@lru_cache(maxsize=1)
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in load_template()["Resources"].items() if r["Type"] == kind}


def table_properties(logical_id: str) -> dict[str, Any]:
    return resources("AWS::DynamoDB::Table")[logical_id]["Properties"]


def create_table_kwargs(logical_id: str, table_name: str) -> dict[str, Any]:
    """``create_table`` arguments for the template's table ``logical_id`` (schema as written;
    PITR, SSE and retention are deployment properties moto's create_table does not take)."""
    props = table_properties(logical_id)
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props["BillingMode"],
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return kwargs
