"""The Cloud tab's Models page: the models the cloud holds (name, type, size, short hash),
filtered by type; "Sync my local models" (the WebUI's folders, or a folder typed in
the standalone app), the upload of one file, and delete / visibility for the artist's own models.
Pure parts first, the gradio builder at the end.

Uploads read files on this machine by path (the WebUI runs where the models are): a multi-GB
checkpoint never goes through the browser's upload and a temp copy.

No `from __future__ import annotations`: gradio reads the handlers' annotations at run time.
"""

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

from ..client import SDCloudClient
from ..errors import SDCloudError
from ..models.local_folders import ModelFolders, webui_folders
from ..records import ModelInfo
from .messages import describe_error, status_html

log = logging.getLogger("sdcloud.ui")

MODEL_HEADERS = ["Name", "Type", "Size", "Model hash"]
ALL_TYPES = "All"
MODEL_TYPES = [ALL_TYPES, "checkpoint", "lora", "embedding", "vae", "controlnet", "upscaler"]
UPLOAD_TYPES = MODEL_TYPES[1:]
STATUS_EVERY_S = 0.5  # how often a running sync / upload refreshes its status line


def human_size(size: int) -> str:
    """1536 -> '1.5 KB', as a file manager shows it (powers of 1024)."""
    if size <= 0:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover - the loop always returns


def model_row(model: ModelInfo) -> list[str]:
    return [model.name, model.type, human_size(model.size), model.short_hash]


def model_rows(models: list[ModelInfo], type_filter: str = ALL_TYPES) -> list[list[str]]:
    """Rows sorted by type then name (case-insensitive), only `type_filter` unless All."""
    wanted = [m for m in models if type_filter in ("", ALL_TYPES, None) or m.type == type_filter]
    return [model_row(m) for m in sorted(wanted, key=lambda m: (m.type, m.name.lower()))]


@dataclass(frozen=True)
class ModelsView:
    rows: Optional[list[list[str]]]  # None: keep the table as it is
    status: str


def list_models(get_client: Callable[[], SDCloudClient], type_filter: str = ALL_TYPES) -> ModelsView:
    wanted = None if type_filter in ("", ALL_TYPES, None) else type_filter
    try:
        models = get_client().list_models(wanted)
    except Exception as exc:
        if not isinstance(exc, (SDCloudError, ValueError)):
            log.exception("listing models failed unexpectedly")
        return ModelsView(None, status_html(describe_error(exc), "error"))
    rows = model_rows(models, type_filter or ALL_TYPES)
    what = "model" if wanted is None else wanted
    text = f"{len(rows)} {what}(s) in the cloud" if rows else f"No {what} in the cloud yet"
    return ModelsView(rows, status_html(text, "idle"))


# ---- own models: delete and visibility -------------------------------------------------------


def own_model_choices(models: list[ModelInfo], me: str) -> list[tuple[str, str]]:
    """(label, id) of the models this user may change: their own (operator folder models have no id)."""
    own = [m for m in models if m.id and m.owner and m.owner == me]
    return [(f"{m.name} ({m.type}, {m.visibility or 'private'})", m.id)
            for m in sorted(own, key=lambda m: (m.type, m.name.lower()))]


def change_model(get_client: Callable[[], SDCloudClient], model_id: str, action: str) -> str:
    """action: public | private | delete. Returns the status line."""
    if not model_id:
        return status_html("Choose one of your models first", "error")
    try:
        client = get_client()
        if action == "delete":
            client.delete_model(model_id)
            return status_html("Model deleted", "done")
        model = client.set_model_visibility(model_id, action)
    except Exception as exc:
        if not isinstance(exc, (SDCloudError, ValueError)):
            log.exception("changing a model failed unexpectedly")
        return status_html(describe_error(exc), "error")
    return status_html(f"{model.name} is now {model.visibility or action}", "done")


def own_models(get_client: Callable[[], SDCloudClient]) -> tuple[list[tuple[str, str]], str]:
    """The picker's choices and a status line."""
    try:
        client = get_client()
        me = client.me().user
        choices = own_model_choices(client.list_models(None), me)
    except Exception as exc:
        if not isinstance(exc, (SDCloudError, ValueError)):
            log.exception("listing own models failed unexpectedly")
        return [], status_html(describe_error(exc), "error")
    return choices, status_html(f"{len(choices)} model(s) of yours", "idle")


# ---- sync and upload: run in a thread, the handler yields status lines ---------------------------


@dataclass
class _Run:
    """What a background sync / upload reports to the handler that polls it."""

    label: str = "starting"
    done: int = 0
    total: int = 0
    result: Any = None
    error: Optional[BaseException] = None
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, label: str, done: int, total: int) -> None:
        self.label, self.done, self.total = label, done, total

    def line(self) -> str:
        if self.total:
            return f"{self.label}: {human_size(self.done) or '0 B'} of {human_size(self.total)} ({self.done * 100 // self.total} %)"
        return self.label


def run_in_background(work: Callable[[_Run], Any], every_s: float = STATUS_EVERY_S) -> Iterator[_Run]:
    """Start `work(run)` in a thread; yield the run every `every_s` seconds and once at the end."""
    run = _Run()

    def target() -> None:
        try:
            run.result = work(run)
        except BaseException as exc:  # handed to the handler, shown as a status line
            run.error = exc
        finally:
            run.finished.set()

    threading.Thread(target=target, name="sdcloud-models", daemon=True).start()
    while not run.finished.wait(every_s):
        yield run
    yield run


def resolve_folders(local_folders: Optional[Callable[[], ModelFolders]], folder_text: str) -> ModelFolders:
    """The WebUI's folders when the host gives them, else the WebUI folder typed in (standalone)."""
    if local_folders is not None:
        return local_folders()
    text = (folder_text or "").strip()
    if not text:
        raise ValueError("Type the WebUI's folder (the one holding models/ and embeddings/)")
    return webui_folders(text)


def sync_report_text(report: Any) -> str:
    lines = report.lines()
    head = (f"{len(report.uploaded)} uploaded, {len(report.plan.skipped)} skipped (already in the cloud), "
            f"{len(report.failed)} failed")
    return "\n".join([head, *lines])


def sync_models(
    get_client: Callable[[], SDCloudClient],
    local_folders: Optional[Callable[[], ModelFolders]],
    folder_text: str,
    types: list[str],
    dry_run: bool,
    every_s: float = STATUS_EVERY_S,
) -> Iterator[tuple[str, str]]:
    """Yields (status line, report text) while the sync runs, then the result."""
    from ..models.sync import run_sync

    try:
        folders = resolve_folders(local_folders, folder_text)
        if types:
            folders = folders.only(types)
        client = get_client()
    except (SDCloudError, ValueError) as exc:
        yield status_html(describe_error(exc), "error"), ""
        return
    for run in run_in_background(lambda r: run_sync(client, folders, dry_run=dry_run, progress=r.progress),
                                 every_s):
        if not run.finished.is_set():
            yield status_html(run.line(), "running"), ""
    if run.error is not None:
        if not isinstance(run.error, (SDCloudError, ValueError, OSError)):
            log.error("sync failed unexpectedly: %r", run.error)
        yield status_html(describe_error(run.error), "error"), ""
        return
    report = run.result
    if dry_run:
        text = "\n".join(f"would upload {p.model.type:<10} {p.model.name}" for p in report.plan.uploads)
        text += "".join(f"\nskipped {p.model.type:<10} {p.model.name}: {p.reason}" for p in report.plan.skipped)
        yield status_html(f"{len(report.plan.uploads)} to upload, {len(report.plan.skipped)} already in the cloud "
                          "(nothing sent)", "done"), text
        return
    yield status_html(sync_report_text(report).split("\n", 1)[0], "error" if report.failed else "done"), \
        sync_report_text(report)


def upload_model(
    get_client: Callable[[], SDCloudClient],
    path: str,
    type_: str,
    public: bool,
    name: str = "",
    every_s: float = STATUS_EVERY_S,
) -> Iterator[str]:
    """Yields status lines while one file uploads (resumes an interrupted upload of it)."""
    from ..models.uploader import Uploader

    if not (path or "").strip():
        yield status_html("Type the path of a model file on this machine", "error")
        return
    try:
        client = get_client()
    except (SDCloudError, ValueError) as exc:
        yield status_html(describe_error(exc), "error")
        return

    def work(run: _Run) -> Any:
        return Uploader(client).upload(path.strip(), type_, name=(name or "").strip() or None,
                                       visibility="public" if public else "private", progress=run.progress)

    for run in run_in_background(work, every_s):
        if not run.finished.is_set():
            yield status_html(run.line(), "running")
    if run.error is not None:
        yield status_html(describe_error(run.error), "error")
        return
    result = run.result
    how = "already in the cloud, nothing sent" if result.deduplicated else f"{human_size(result.bytes_sent)} sent"
    yield status_html(f"Uploaded {result.model.name} ({result.model.type}): {how}", "done")


def import_model(
    get_client: Callable[[], SDCloudClient],
    url: str,
    type_: str,
    public: bool,
    name: str = "",
    sha256: str = "",
    every_s: float = STATUS_EVERY_S,
) -> Iterator[str]:
    """Yields status lines while the cloud downloads a model from ``url``."""
    from ..models.imports import follow_import, name_from_url
    from ..models.uploader import validate_name

    url = (url or "").strip()
    if not url:
        yield status_html("Paste the https:// (or s3://) URL of a model file", "error")
        return
    sha = (sha256 or "").strip().lower() or None
    try:
        model_name = validate_name((name or "").strip() or name_from_url(url))
        client = get_client()
        state: dict = {}
        for state in follow_import(client, client.start_import(url, model_name, type_, sha,
                                                                "public" if public else "private"), every_s):
            if state.get("status") == "importing":
                got = human_size(int(state.get("bytes") or 0)) or "0 B"
                yield status_html(f"The cloud is downloading {model_name}: {got} so far", "running")
    except (SDCloudError, ValueError) as exc:
        yield status_html(describe_error(exc), "error")
        return
    if state.get("status") != "complete":
        yield status_html(f"Import of {model_name} failed: {state.get('error') or state.get('status')}", "error")
        return
    model = ModelInfo.from_json(state.get("model"))
    yield status_html(f"Imported {model.name} ({model.type}, {human_size(model.size)})", "done")


# ---- the gradio page -------------------------------------------------------------------------


@dataclass
class ModelsPage:
    table: Any
    status: Any
    type_filter: Any
    refresh: Any
    refresh_fn: Callable[[str], tuple[Any, Any]]
    sync_button: Any = None
    sync_report: Any = None
    upload_button: Any = None
    own_picker: Any = None


def build_models_page(
    get_client: Callable[[], SDCloudClient],
    elem_prefix: str = "sdcloud_models",
    local_folders: Optional[Callable[[], ModelFolders]] = None,
) -> ModelsPage:
    """Build the page in the current gradio context and wire its events. `local_folders` gives the
    WebUI's model folders (inside the WebUI); without it the page asks for a folder."""
    import gradio as gr

    from . import compat

    def eid(name: str) -> str:
        return f"{elem_prefix}_{name}"

    with gr.Row():
        type_filter = gr.Dropdown(label="Type", choices=list(MODEL_TYPES), value=ALL_TYPES,
                                  elem_id=eid("type"), scale=0, min_width=160)
        refresh = gr.Button("Refresh", elem_id=eid("refresh"), size="sm", scale=0, min_width=90)
        status = gr.HTML(status_html("", "idle"), elem_id=eid("status"))
    table = gr.Dataframe(headers=list(MODEL_HEADERS), datatype=["str"] * len(MODEL_HEADERS),
                         interactive=False, wrap=True, type="array", elem_id=eid("table"))

    with gr.Accordion("Sync my local models", open=False, elem_id=eid("sync_box")):
        folder = gr.Textbox(label="WebUI folder (holding models/ and embeddings/)", visible=local_folders is None,
                            elem_id=eid("sync_folder"))
        with gr.Row():
            sync_types = gr.CheckboxGroup(label="Types", choices=list(UPLOAD_TYPES[:5]),
                                          value=list(UPLOAD_TYPES[:5]), elem_id=eid("sync_types"))
            dry_run = gr.Checkbox(label="Only show what would be uploaded", value=False, elem_id=eid("sync_dry"))
            sync_button = gr.Button("Sync my local models", variant="primary", elem_id=eid("sync"), scale=0)
        sync_status = gr.HTML(status_html("", "idle"), elem_id=eid("sync_status"))
        sync_report = gr.Textbox(label="Uploaded / skipped", lines=8, interactive=False, elem_id=eid("sync_report"))

    with gr.Accordion("Upload one file", open=False, elem_id=eid("upload_box")):
        with gr.Row():
            upload_path = gr.Textbox(label="Path of the model file on this machine", elem_id=eid("upload_path"))
            upload_name = gr.Textbox(label="Name in the cloud (default: the file's name)", elem_id=eid("upload_name"))
        with gr.Row():
            upload_type = gr.Dropdown(label="Type", choices=list(UPLOAD_TYPES), value="lora",
                                      elem_id=eid("upload_type"), scale=0, min_width=160)
            upload_public = gr.Checkbox(label="Public (every user may use it)", value=False,
                                        elem_id=eid("upload_public"))
            upload_button = gr.Button("Upload", variant="primary", elem_id=eid("upload"), scale=0)
        upload_status = gr.HTML(status_html("", "idle"), elem_id=eid("upload_status"))

    with gr.Accordion("Import from a URL", open=False, elem_id=eid("import_box")):
        with gr.Row():
            import_url = gr.Textbox(label="URL of the model file (https://, e.g. Hugging Face or Civitai; s3://)",
                                    elem_id=eid("import_url"))
            import_name = gr.Textbox(label="Name in the cloud (default: the URL's file name)",
                                     elem_id=eid("import_name"))
        with gr.Row():
            import_type = gr.Dropdown(label="Type", choices=list(UPLOAD_TYPES), value="lora",
                                      elem_id=eid("import_type"), scale=0, min_width=160)
            import_sha = gr.Textbox(label="sha256 (optional: the import fails on other bytes)",
                                    elem_id=eid("import_sha256"))
            import_public = gr.Checkbox(label="Public (every user may use it)", value=False,
                                        elem_id=eid("import_public"))
            import_button = gr.Button("Import", variant="primary", elem_id=eid("import"), scale=0)
        import_status = gr.HTML(status_html("", "idle"), elem_id=eid("import_status"))

    with gr.Accordion("My models", open=False, elem_id=eid("own_box")):
        with gr.Row():
            own_picker = gr.Dropdown(label="Model", choices=[], value=None, elem_id=eid("own"))
            own_ids = gr.State({})  # label -> model id (gradio 3.41 has no (label, value) choices)
            own_refresh = gr.Button("Refresh", size="sm", elem_id=eid("own_refresh"), scale=0, min_width=90)
        with gr.Row():
            make_public = gr.Button("Make public", elem_id=eid("make_public"), scale=0)
            make_private = gr.Button("Make private", elem_id=eid("make_private"), scale=0)
            delete = gr.Button("Delete", variant="stop", elem_id=eid("delete"), scale=0)
        own_status = gr.HTML(status_html("", "idle"), elem_id=eid("own_status"))

    def on_refresh(type_value):
        view = list_models(get_client, type_value or ALL_TYPES)
        return (compat.no_change() if view.rows is None else view.rows), view.status

    def on_sync(folder_text, types, dry):
        yield from sync_models(get_client, local_folders, folder_text, list(types or []), bool(dry))

    def on_upload(path, name, type_value, public):
        yield from upload_model(get_client, path, type_value, bool(public), name)

    def on_import(url, name, type_value, sha, public):
        yield from import_model(get_client, url, type_value, bool(public), name, sha)

    def on_own_refresh():
        choices, line = own_models(get_client)
        return compat.update(choices=[label for label, _ in choices], value=None), dict(choices), line

    def changer(action: str) -> Callable[[Any, Any], str]:
        return lambda label, ids: change_model(get_client, (ids or {}).get(label or "", ""), action)

    hidden = compat.HIDE_PROGRESS
    refresh.click(on_refresh, inputs=[type_filter], outputs=[table, status])
    type_filter.change(on_refresh, inputs=[type_filter], outputs=[table, status])
    sync_button.click(on_sync, inputs=[folder, sync_types, dry_run], outputs=[sync_status, sync_report],
                      show_progress=hidden).then(on_refresh, inputs=[type_filter], outputs=[table, status])
    upload_button.click(on_upload, inputs=[upload_path, upload_name, upload_type, upload_public],
                        outputs=[upload_status], show_progress=hidden
                        ).then(on_refresh, inputs=[type_filter], outputs=[table, status])
    import_button.click(on_import, inputs=[import_url, import_name, import_type, import_sha, import_public],
                        outputs=[import_status], show_progress=hidden
                        ).then(on_refresh, inputs=[type_filter], outputs=[table, status])
    own_refresh.click(on_own_refresh, outputs=[own_picker, own_ids, own_status])
    for button, action in ((make_public, "public"), (make_private, "private"), (delete, "delete")):
        button.click(changer(action), inputs=[own_picker, own_ids], outputs=[own_status]
                     ).then(on_own_refresh, outputs=[own_picker, own_ids, own_status]
                            ).then(on_refresh, inputs=[type_filter], outputs=[table, status])
    return ModelsPage(table, status, type_filter, refresh, on_refresh, sync_button, sync_report, upload_button,
                      own_picker)
