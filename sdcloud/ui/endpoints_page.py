"""The Cloud tab's Endpoints page: where jobs run and in what state, and (for admins) deploy,
scale, stop and delete. The pure parts (state labels, rows, the spec check, running an action)
come first; the gradio builder is at the end and only wires them.

No `from __future__ import annotations`: gradio reads the handlers' annotations at run time.
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import methodcaller
from typing import Any, Optional

from ..client import SDCloudClient
from ..errors import ApiError, Forbidden, SDCloudError
from ..records import Endpoint
from .history import row_key_for_select
from .messages import describe_error, status_html

log = logging.getLogger("sdcloud.ui")

ENDPOINT_HEADERS = ["Endpoint", "Kind", "State", "Instances", "Instance type", "Detail"]
# SageMaker's rule for endpoint names, checked here so a typo is named before anything is sent.
_NAME = re.compile(r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$")
KINDS = ["async", "realtime"]
# A starting list (the server has the authoritative one and refuses others with a reason).
INSTANCE_TYPES = ["ml.g4dn.xlarge", "ml.g5.xlarge", "ml.g5.2xlarge", "ml.g6.xlarge", "ml.g6e.xlarge"]
_STARTING = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Starting"}


def is_scaled_to_zero(endpoint: Endpoint) -> bool:
    return endpoint.status == "InService" and (
        endpoint.current_instances == 0 or "scaled to zero" in endpoint.detail.lower()
    )


def state_label(endpoint: Endpoint) -> str:
    """What an artist needs to know about an endpoint, in words (with the reason when it is down)."""
    status = endpoint.status
    reason = (endpoint.failure_reason or endpoint.detail).strip()
    if status == "InService":
        return "scaled to zero (wakes on the next job)" if is_scaled_to_zero(endpoint) else "in service"
    if status in _STARTING:
        return "starting"
    if status == "Failed":
        return f"failed: {reason or 'no reason given'}"
    if status == "OutOfService":
        return f"out of service: {reason}" if reason else "out of service"
    if status == "Deleting":
        return "being deleted"
    if status == "Stopped":
        return "stopped (no instances until scaled up)"
    return status.lower() or "unknown"


def _instances(endpoint: Endpoint) -> str:
    if endpoint.current_instances is None and endpoint.desired_instances is None:
        return ""
    text = f"{endpoint.current_instances if endpoint.current_instances is not None else '?'}"
    if endpoint.desired_instances is not None and endpoint.desired_instances != endpoint.current_instances:
        text += f" → {endpoint.desired_instances}"
    if endpoint.min_instances is not None and endpoint.max_instances is not None:
        text += f" ({endpoint.min_instances}–{endpoint.max_instances})"
    return text


def endpoint_row(endpoint: Endpoint) -> list[str]:
    state = state_label(endpoint)
    detail = "" if endpoint.detail and endpoint.detail in state else endpoint.detail
    return [endpoint.name, endpoint.kind, state, _instances(endpoint), endpoint.instance_type, detail]


def endpoint_rows(endpoints: list[Endpoint]) -> list[list[str]]:
    return [endpoint_row(e) for e in endpoints]


def check_name(name: Any) -> str:
    text = str(name or "").strip()
    if not text:
        raise ValueError("Endpoint name: enter the name of the endpoint")
    if not _NAME.match(text):
        raise ValueError(
            f"Endpoint name {text!r}: use letters, digits and single hyphens (at most 63), starting "
            "and ending with a letter or digit"
        )
    return text


def _count(label: str, value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label}: enter a whole number (got {value!r})") from None
    if not number.is_integer() or number < 0:
        raise ValueError(f"{label}: enter a whole number of 0 or more (got {value!r})")
    return int(number)


def check_counts(kind: str, min_instances: Any, max_instances: Any) -> tuple[int, int]:
    low, high = _count("Min instances", min_instances), _count("Max instances", max_instances)
    if high < 1:
        raise ValueError("Max instances: at least 1 (use Stop to scale an endpoint down to nothing)")
    if low > high:
        raise ValueError(f"Min instances ({low}) is more than Max instances ({high})")
    if low == 0 and kind == "realtime":
        raise ValueError("Min instances: a real-time endpoint cannot scale to zero; use async, or at least 1")
    return low, high


def endpoint_spec(name: Any, instance_type: Any, kind: Any, min_instances: Any, max_instances: Any,
                  image: Any = "") -> dict[str, Any]:
    """The create request, checked; ValueError names the field to fix."""
    kind_text = str(kind or "").strip() or "async"
    if kind_text not in KINDS:
        raise ValueError(f"Kind: choose {' or '.join(KINDS)} (got {kind_text!r})")
    instance = str(instance_type or "").strip()
    if not instance.startswith("ml."):
        raise ValueError(f"Instance type: a SageMaker instance type such as ml.g5.xlarge (got {instance!r})")
    low, high = check_counts(kind_text, min_instances, max_instances)
    spec: dict[str, Any] = {"name": check_name(name), "instance_type": instance, "kind": kind_text,
                            "min_instances": low, "max_instances": high}
    if str(image or "").strip():
        spec["image"] = str(image).strip()
    return spec


def refusal_text(exc: BaseException) -> str:
    """The server's own words when it refuses an admin action (403 for non-admins, local mode...)."""
    if isinstance(exc, Forbidden):
        return f"Only an admin can change endpoints (HTTP 403): {exc.detail or exc.title or 'not allowed'}"
    if isinstance(exc, ApiError) and exc.status in (405, 409, 501):
        return f"The server refused (HTTP {exc.status}): {exc.detail or exc.title}"
    return describe_error(exc)


@dataclass(frozen=True)
class EndpointsView:
    rows: Optional[list[list[str]]]  # None: keep the table as it is (an error must not wipe it)
    status: str
    names: list[str]


def list_endpoints(get_client: Callable[[], SDCloudClient]) -> EndpointsView:
    try:
        endpoints = get_client().list_endpoints()
    except Exception as exc:
        if not isinstance(exc, (SDCloudError, ValueError)):
            log.exception("listing endpoints failed unexpectedly")
        return EndpointsView(None, status_html(describe_error(exc), "error"), [])
    serving = sum(1 for e in endpoints if e.status == "InService")
    text = f"{len(endpoints)} endpoint(s), {serving} in service" if endpoints else "No endpoints configured"
    return EndpointsView(endpoint_rows(endpoints), status_html(text, "idle"), [e.name for e in endpoints])


def run_action(get_client: Callable[[], SDCloudClient], action: str, name: Any, *, instance_type: Any = "",
               kind: Any = "async", min_instances: Any = 0, max_instances: Any = 1, image: Any = "",
               confirm_delete: bool = False) -> EndpointsView:
    """create | scale | stop | delete, then the list again; a refusal keeps the table and says why."""
    try:
        if action == "create":
            spec = endpoint_spec(name, instance_type, kind, min_instances, max_instances, image)
            verb, call = f"Creating {spec['name']}", methodcaller("create_endpoint", spec)
        elif action == "scale":
            target = check_name(name)
            low, high = check_counts(str(kind or "async"), min_instances, max_instances)
            verb = f"Scaling {target} to {low}–{high} instance(s)"
            call = methodcaller("scale_endpoint", target, low, high)
        elif action == "stop":
            target = check_name(name)
            verb = f"Stopping {target} (no instances until scaled up)"
            call = methodcaller("stop_endpoint", target)
        elif action == "delete":
            target = check_name(name)
            if not confirm_delete:
                raise ValueError(f"Tick “Yes, delete” to delete {target}: it cannot be undone")
            verb, call = f"Deleted {target}", methodcaller("delete_endpoint", target)
        else:
            raise ValueError(f"unknown endpoint action {action!r}")
    except ValueError as exc:
        return EndpointsView(None, status_html(str(exc), "error"), [])
    try:
        call(get_client())
    except Exception as exc:
        if not isinstance(exc, (SDCloudError, ValueError)):
            log.exception("endpoint %s failed unexpectedly", action)
        return EndpointsView(None, status_html(refusal_text(exc), "error"), [])
    listed = list_endpoints(get_client)
    return EndpointsView(listed.rows, status_html(verb, "done"), listed.names)


# ---- the gradio page -------------------------------------------------------------------------


@dataclass
class EndpointsPage:
    table: Any
    status: Any
    refresh: Any
    refresh_fn: Callable[[], tuple[Any, Any]]


def build_endpoints_page(get_client: Callable[[], SDCloudClient],
                         elem_prefix: str = "sdcloud_endpoints") -> EndpointsPage:
    """Build the page in the current gradio context and wire its events."""
    import gradio as gr

    from . import compat

    def eid(name: str) -> str:
        return f"{elem_prefix}_{name}"

    with gr.Row():
        refresh = gr.Button("Refresh", elem_id=eid("refresh"), size="sm", scale=0, min_width=90)
        status = gr.HTML(status_html("", "idle"), elem_id=eid("status"))
    table = gr.Dataframe(headers=list(ENDPOINT_HEADERS), datatype=["str"] * len(ENDPOINT_HEADERS),
                         interactive=False, wrap=True, type="array", elem_id=eid("table"))
    with gr.Accordion("Manage endpoints (admins)", open=False, elem_id=eid("admin")):
        with gr.Row():
            name = gr.Textbox(label="Endpoint name", placeholder="sdcloud-sd15", elem_id=eid("name"))
            instance_type = gr.Dropdown(label="Instance type", choices=list(INSTANCE_TYPES),
                                        value=INSTANCE_TYPES[0], allow_custom_value=True,
                                        elem_id=eid("instance_type"))
            kind = gr.Radio(label="Kind", choices=list(KINDS), value="async", elem_id=eid("kind"))
        with gr.Row():
            min_instances = gr.Number(label="Min instances (0: scale to zero)", value=0, precision=0,
                                      elem_id=eid("min"))
            max_instances = gr.Number(label="Max instances", value=1, precision=0, elem_id=eid("max"))
            image = gr.Textbox(label="Engine image (empty: the server's default)", elem_id=eid("image"))
        with gr.Row():
            create = gr.Button("Create", variant="primary", elem_id=eid("create"))
            scale = gr.Button("Scale", elem_id=eid("scale"))
            stop = gr.Button("Stop", elem_id=eid("stop"))
            confirm = gr.Checkbox(label="Yes, delete", value=False, elem_id=eid("confirm_delete"))
            delete = gr.Button("Delete", variant="stop", elem_id=eid("delete"))

    def shown(view: EndpointsView) -> tuple[Any, Any]:
        return (compat.no_change() if view.rows is None else view.rows), view.status

    def on_refresh():
        return shown(list_endpoints(get_client))

    def action(verb: str) -> Callable[..., Any]:
        def handler(name_value, instance_value, kind_value, low, high, image_value, confirmed):
            view = run_action(get_client, verb, name_value, instance_type=instance_value, kind=kind_value,
                              min_instances=low, max_instances=high, image=image_value,
                              confirm_delete=bool(confirmed))
            return (*shown(view), compat.update(value=False))

        return handler

    refresh.click(on_refresh, outputs=[table, status])
    inputs = [name, instance_type, kind, min_instances, max_instances, image, confirm]
    for button, verb in ((create, "create"), (scale, "scale"), (stop, "stop"), (delete, "delete")):
        button.click(action(verb), inputs=inputs, outputs=[table, status, confirm])

    def on_row(rows, evt: gr.SelectData):
        # the clicked row's own name (sorting changes a row's position, never its cells)
        picked = row_key_for_select(rows, evt.index, evt.value, getattr(evt, "row_value", None), key_column=0,
                                    rows_as_shown=compat.GRADIO_MAJOR < 4)
        return picked if picked else compat.no_change()

    table.select(on_row, inputs=[table], outputs=[name])
    return EndpointsPage(table, status, refresh, on_refresh)
