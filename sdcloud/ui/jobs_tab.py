"""The Jobs tab: history table (newest first, cursor pages) with thumbnails, reopen a job, download
its files, and (where the host wires it) send its parameters to txt2img.

No `from __future__ import annotations`: gradio reads the handlers' annotations at run time.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from ..client import SDCloudClient
from . import compat
from .generate_tab import default_outputs_dir
from .generation import cancel_generation
from .history import (
    HISTORY_HEADERS,
    PAGE_SIZE,
    OpenedJob,
    job_id_for_select,
    open_job,
    show_history,
    thumbnails,
)
from .messages import status_html

# How the host wires "Send to txt2img": given the button and the infotext textbox it sends from.
SendTo = Callable[[Any, Any], None]


@dataclass
class JobsTab:
    table: Any
    status: Any
    job_id: Any
    gallery: Any
    infotext: Any
    files: Any
    thumbs: Any = None
    send_button: Any = None
    page_fn: Callable[..., Any] | None = None
    load_events: list[tuple[Callable[..., Any], list[Any], list[Any]]] = field(default_factory=list)

    def attach_load(self, blocks: gr.Blocks) -> None:
        """Show the first history page when the page opens."""
        for fn, inputs, outputs in self.load_events:
            blocks.load(fn, inputs=inputs, outputs=outputs)


def build_jobs_tab(
    get_client: Callable[[], SDCloudClient],
    outputs_dir: str | Path | None = None,
    elem_prefix: str = "sdcloud_jobs",
    page_size: int = PAGE_SIZE,
    send_to_txt2img: SendTo | None = None,
) -> JobsTab:
    """Build the tab's components in the current gradio context and wire their events.

    With `send_to_txt2img`, a "Send to txt2img" button is made and handed to it with the infotext
    box (the WebUI registers it with its own paste mechanism); without, there is no such button."""
    out_dir = Path(outputs_dir) if outputs_dir else default_outputs_dir()

    def eid(name: str) -> str:
        return f"{elem_prefix}_{name}"

    with gr.Row():
        refresh = gr.Button("Refresh", elem_id=eid("refresh"), size="sm", scale=0, min_width=90)
        newer = gr.Button("Newer", elem_id=eid("newer"), size="sm", scale=0, min_width=90)
        older = gr.Button("Older", elem_id=eid("older"), size="sm", scale=0, min_width=90)
        status = gr.HTML(status_html("", "idle"), elem_id=eid("status"))
    thumbs = gr.Gallery(
        label="Recent images",
        show_label=False,
        columns=8,
        height=200,
        object_fit="cover",
        elem_id=eid("thumbs"),
    )
    table = gr.Dataframe(
        headers=list(HISTORY_HEADERS),
        datatype=["str"] * len(HISTORY_HEADERS),
        interactive=False,
        wrap=True,
        type="array",  # the handlers get rows as lists (gradio 3 defaults to pandas)
        elem_id=eid("table"),
    )
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                job_id = gr.Textbox(
                    label="Job ID",
                    placeholder="select a row, or paste a job ID",
                    elem_id=eid("job_id"),
                    scale=4,
                )
                open_button = gr.Button("Open", variant="primary", elem_id=eid("open"), scale=0, min_width=80)
                cancel_button = gr.Button(
                    "Cancel job", variant="stop", elem_id=eid("cancel"), scale=0, min_width=110
                )
            infotext = gr.Textbox(
                label="Generation info",
                lines=5,
                interactive=False,
                show_copy_button=True,
                elem_id=eid("infotext"),
            )
            with gr.Row():
                download = gr.Button("Download images", elem_id=eid("download"))
                send_button = (
                    gr.Button("Send to txt2img", elem_id=eid("send_txt2img")) if send_to_txt2img else None
                )
            files = gr.File(label="Files", file_count="multiple", interactive=False, elem_id=eid("files"))
        with gr.Column(scale=1):
            gallery = gr.Gallery(
                label="Images",
                show_label=False,
                columns=2,
                height=420,
                object_fit="contain",
                elem_id=eid("gallery"),
            )

    # the text "Send to txt2img" pastes (hidden): the infotext plus the job's Cloud choice
    paste_text = gr.Textbox(value="", visible=False, elem_id=eid("paste_text"))
    pager_state = gr.State({})
    opened_state = gr.State({})
    thumbs_state = gr.State([])  # the job id of each thumbnail, in the gallery's order

    def page(direction: str) -> Callable[..., Any]:
        def handler(state):
            view = show_history(get_client, state, direction, limit=page_size)
            if view.rows is None:
                return compat.no_change(), view.pager.to_state(), view.status, compat.no_change(), compat.no_change()
            shown = thumbnails(get_client, view.jobs, out_dir)
            gallery_value = [(t.path, t.caption) for t in shown]
            return view.rows, view.pager.to_state(), view.status, gallery_value, [t.job_id for t in shown]

        return handler

    page_outputs = [table, pager_state, status, thumbs, thumbs_state]
    refresh.click(page("first"), inputs=[pager_state], outputs=page_outputs)
    older.click(page("older"), inputs=[pager_state], outputs=page_outputs)
    newer.click(page("newer"), inputs=[pager_state], outputs=page_outputs)

    def opened_outputs(opened: OpenedJob) -> tuple[Any, ...]:
        state = {"job_id": opened.job_id, "paths": opened.images, "infotexts": opened.infotexts}
        return opened.images, opened.infotext, opened.status, state, compat.update(value=None), opened.paste_text

    open_outputs = [gallery, infotext, status, opened_state, files, paste_text]

    def on_open(value):
        return opened_outputs(open_job(get_client, value, out_dir))

    def on_row(rows, evt: gr.SelectData):
        # the clicked row's own Job ID, not the row's position: sorting the table moves rows
        picked = job_id_for_select(rows, evt.index, evt.value, getattr(evt, "row_value", None),
                                   rows_as_shown=compat.GRADIO_MAJOR < 4)
        if not picked:
            unchanged = (compat.no_change(),) * len(open_outputs)
            hint = status_html("Several jobs match that cell: click the row's Job ID to open it", "idle")
            return (*unchanged[:2], hint, *unchanged[3:], compat.no_change())
        return (*opened_outputs(open_job(get_client, picked, out_dir)), picked)

    def on_thumb(ids, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else -1
        picked = ids[index] if isinstance(ids, list) and 0 <= index < len(ids) else None
        if not picked:
            return (compat.no_change(),) * (len(open_outputs) + 1)
        return (*opened_outputs(open_job(get_client, picked, out_dir)), picked)

    open_button.click(on_open, inputs=[job_id], outputs=open_outputs)
    job_id.submit(on_open, inputs=[job_id], outputs=open_outputs)
    table.select(on_row, inputs=[table], outputs=[*open_outputs, job_id])
    thumbs.select(on_thumb, inputs=[thumbs_state], outputs=[*open_outputs, job_id])
    if send_to_txt2img is not None and send_button is not None:
        send_to_txt2img(send_button, paste_text)

    def on_select_image(opened, evt: gr.SelectData):
        texts = (opened or {}).get("infotexts") or []
        index = evt.index if isinstance(evt.index, int) else 0
        return texts[index] if 0 <= index < len(texts) else compat.no_change()

    gallery.select(on_select_image, inputs=[opened_state], outputs=[infotext])

    def on_download(opened):
        paths = (opened or {}).get("paths") or []
        if not paths:
            return compat.no_change(), status_html("Open a succeeded job first", "idle")
        return paths, status_html(
            f"{len(paths)} file{'s' if len(paths) != 1 else ''} ready to download", "done"
        )

    download.click(on_download, inputs=[opened_state], outputs=[files, status])

    def on_cancel(value):
        job = (value or "").strip() or None
        outcome, problem = cancel_generation(get_client, job)
        if outcome == "finished":
            return status_html(f"Job {job} had already finished", "idle")
        if outcome == "requested":
            return status_html(f"Cancelled job {job}", "cancelled")
        return problem

    cancel_button.click(on_cancel, inputs=[job_id], outputs=[status])

    tab = JobsTab(table=table, status=status, job_id=job_id, gallery=gallery, infotext=infotext, files=files,
                  thumbs=thumbs, send_button=send_button, page_fn=page("first"))
    tab.load_events.append((page("first"), [pager_state], page_outputs))
    return tab
