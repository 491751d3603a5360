"""The few gradio calls that differ between 3.41 (A1111) and 4.x (Forge); everything else in
sdcloud.ui uses only the API the two share.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

GRADIO_MAJOR = int(str(gr.__version__).split(".", 1)[0])


def image_upload(**kwargs: Any) -> gr.Image:
    """An image input fed by file upload only, giving a PIL image to the handler."""
    if GRADIO_MAJOR >= 4:
        return gr.Image(sources=["upload"], type="pil", **kwargs)
    return gr.Image(source="upload", type="pil", **kwargs)


def enable_queue(blocks: gr.Blocks, concurrency: int = 4) -> gr.Blocks:
    """Turn the queue on (needed for generators and gr.Progress) with `concurrency` workers."""
    if GRADIO_MAJOR >= 4:
        blocks.queue(default_concurrency_limit=concurrency)
    else:
        blocks.queue(concurrency_count=concurrency)
    return blocks


def update(**kwargs: Any) -> Any:
    """A property update for an output component (value, choices, visible, ...)."""
    return gr.update(**kwargs)


def no_change() -> Any:
    """An output value that leaves the component as it is."""
    return gr.update()
