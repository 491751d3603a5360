"""CloudFormation steps of `make deploy` / `make destroy`: change sets, stack events, outputs.

Pure helpers (parameters, event lines, output lines) are apart from the calls, and every call goes
through a boto3 CloudFormation client handed in, so tests drive them with botocore's Stubber.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# SAM's transform (Serverless resources) and the IAM roles the template creates.
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
# CloudFormation takes a template body of at most this many bytes (larger ones go through S3).
MAX_TEMPLATE_BODY = 51_200
_IN_PROGRESS = "_IN_PROGRESS"
# A failed first create leaves a stack that can only be deleted.
_DEAD = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"}
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


class StackError(RuntimeError):
    """A stack operation could not go on; the message says what happened and what to do."""


@dataclass(frozen=True)
class Stack:
    name: str
    status: str
    parameters: tuple[str, ...]
    outputs: dict[str, str]
    stack_id: str = ""


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``["Key=value", ...]`` (make's PARAMS) → dict; a pair without ``=`` or key is refused."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StackError(f"parameter {pair!r} must look like Name=value (e.g. EnableTracing=true)")
        result[key.strip()] = value
    return result


def plan_parameters(template_params: Iterable[str], overrides: dict[str, str],
                    existing: Iterable[str] = ()) -> list[dict[str, Any]]:  # fmt: skip
    """The change set's Parameters: the overrides, and for an upgrade every other parameter the
    stack already has keeps its earlier value (CloudFormation would reset it to the default)."""
    known = list(template_params)
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise StackError(f"unknown template parameter(s) {', '.join(unknown)}; the template has: {', '.join(known)}")
    previous = set(existing)
    params: list[dict[str, Any]] = []
    for name in known:
        if name in overrides:
            params.append({"ParameterKey": name, "ParameterValue": overrides[name]})
        elif name in previous:
            params.append({"ParameterKey": name, "UsePreviousValue": True})
    return params


def format_event(event: dict[str, Any]) -> str:
    """One progress line per stack event: time, status, type, logical id, reason if any."""
    stamp = event["Timestamp"]
    when = stamp.strftime("%H:%M:%S") if isinstance(stamp, datetime) else str(stamp)
    line = f"{when}  {event['ResourceStatus']:<28} {event['ResourceType']:<36} {event['LogicalResourceId']}"
    reason = event.get("ResourceStatusReason")
    return f"{line}  ({reason})" if reason else line


def output_lines(outputs: dict[str, str], region: str) -> list[str]:
    """What the operator needs after a deploy: the API URL and how to read the admin key."""
    lines = []
    if "ApiUrl" in outputs:
        lines.append(f"API URL:        {outputs['ApiUrl']}   (the WebUI extension's API URL)")
    if "AdminKeySecretArn" in outputs:
        arn = outputs["AdminKeySecretArn"]
        lines += [
            f"Admin API key:  in Secrets Manager, secret {arn}",
            "                written on the API's first request; read it with",
            f"                aws secretsmanager get-secret-value --region {region} --secret-id {arn} "
            "--query SecretString --output text",
        ]
    rest = {k: v for k, v in outputs.items() if k not in ("ApiUrl", "AdminKeySecretArn")}
    lines += [f"{key + ':':<28}{value}" for key, value in sorted(rest.items())]
    return lines


def describe(cfn: Any, name: str) -> Stack | None:
    """The stack as it is now, or None when there is none of that name."""
    try:
        (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
    except cfn.exceptions.ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return Stack(
        name=name,
        status=stack["StackStatus"],
        parameters=tuple(p["ParameterKey"] for p in stack.get("Parameters", [])),
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        stack_id=stack.get("StackId", ""),
    )


def change_set_type(stack: Stack | None) -> str:
    """CREATE for a new stack, UPDATE to upgrade one in place; refuses a stack that can't take one."""
    if stack is None:
        return "CREATE"
    if stack.status.endswith(_IN_PROGRESS):
        raise StackError(f"stack {stack.name} is {stack.status}: wait for it to finish, then deploy again")
    if stack.status in _DEAD:
        raise StackError(f"stack {stack.name} is {stack.status} (its first deploy failed): run `make destroy` "
                         "(the tables and the bucket are kept), then deploy again")  # fmt: skip
    return "UPDATE"


def create_change_set(cfn: Any, name: str, kind: str, template: dict[str, str], parameters: list[dict[str, Any]],
                      change_set_name: str) -> str:  # fmt: skip
    """``template`` is ``{"TemplateBody": ...}`` or ``{"TemplateURL": ...}`` (see template_source)."""
    response = cfn.create_change_set(
        StackName=name, ChangeSetName=change_set_name, ChangeSetType=kind, Parameters=parameters,
        Capabilities=CAPABILITIES, Description="SD Cloud deploy (tools/aws_deploy.py)", **template,
    )  # fmt: skip
    return response["Id"]


def artifact_bucket(packaged_template: str) -> str:
    """The bucket ``sam package`` uploaded the code to (its first ``s3://bucket/...`` URI)."""
    match = re.search(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/", packaged_template)
    if match is None:
        raise StackError("the packaged template names no s3:// artifact: did `sam package` run?")
    return match.group(1)


def template_source(packaged_template: str, upload: Callable[[str, str, bytes], str]) -> dict[str, str]:
    """The template inline when CloudFormation takes it so, else uploaded beside the code
    (``upload(bucket, key, data)`` returns the object's https URL)."""
    data = packaged_template.encode()
    if len(data) <= MAX_TEMPLATE_BODY:
        return {"TemplateBody": packaged_template}
    key = f"sdcloud-templates/{hashlib.sha256(data).hexdigest()}.yaml"
    return {"TemplateURL": upload(artifact_bucket(packaged_template), key, data)}


def wait_for_change_set(cfn: Any, change_set_id: str, *, sleep: Callable[[float], None] = time.sleep,
                        interval_s: float = 3.0) -> bool:  # fmt: skip
    """True once the change set is ready to execute, False when it holds no change at all."""
    while True:
        change_set = cfn.describe_change_set(ChangeSetName=change_set_id)
        status = change_set["Status"]
        if status == "CREATE_COMPLETE":
            return True
        if status == "FAILED":
            reason = change_set.get("StatusReason", "")
            if any(marker in reason for marker in _NO_CHANGES):
                cfn.delete_change_set(ChangeSetName=change_set_id)
                return False
            raise StackError(f"CloudFormation refused the change set: {reason}")
        sleep(interval_s)


def stack_events(cfn: Any, name: str, since: datetime, seen: set[str]) -> list[dict[str, Any]]:
    """The stack's events after ``since`` not in ``seen``, oldest first (the API pages newest first)."""
    fresh: list[dict[str, Any]] = []
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=name):
        older = False
        for event in page["StackEvents"]:
            if event["Timestamp"] < since:
                older = True
                break
            if event["EventId"] not in seen:
                fresh.append(event)
        if older:
            break
    fresh.reverse()
    seen.update(e["EventId"] for e in fresh)
    return fresh


def follow(cfn: Any, name: str, since: datetime, *, sleep: Callable[[float], None] = time.sleep,
           interval_s: float = 5.0, stack_id: str | None = None) -> Iterator[str]:  # fmt: skip
    """Yields a line per stack event until the stack stops changing; its final status comes last.

    ``stack_id`` follows a stack being deleted (by name it vanishes once deleted)."""
    seen: set[str] = set()
    target = stack_id or name
    while True:
        for event in stack_events(cfn, target, since, seen):
            yield format_event(event)
        stack = describe(cfn, target)
        status = stack.status if stack else "DELETE_COMPLETE"
        if not status.endswith(_IN_PROGRESS):
            for event in stack_events(cfn, target, since, seen) if stack else ():
                yield format_event(event)
            yield status
            return
        sleep(interval_s)


def succeeded(final_status: str, kind: str) -> bool:
    wanted = {"CREATE": "CREATE_COMPLETE", "UPDATE": "UPDATE_COMPLETE", "DELETE": "DELETE_COMPLETE"}[kind]
    return final_status == wanted
