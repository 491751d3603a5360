"""The few gradio calls that differ between 3.41 (A1111) and 4.x (Forge); everything else in
sdcloud.ui uses only the API the two share.
"""

from __future__ import annotations

from collections.abc import Sequence
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


# Our own status / ETA line is the one progress display: no gradio overlay (spinner, timer that is
# not an ETA, gr.Progress bar) stacked over the outputs. Both 3.41 and 4.x take this literal.
HIDE_PROGRESS = "hidden"


def js(source: str | None) -> dict[str, Any]:
    """The keyword that runs `source` in the browser before an event's Python function
    (3.41: `_js`, 4.x: `js`); its return value becomes the function's inputs."""
    if source is None:
        return {}
    return {"js": source} if GRADIO_MAJOR >= 4 else {"_js": source}


SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
SYSTEM_MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Consolas", "Liberation Mono", "monospace"]


def local_theme() -> Any:
    """gradio's default theme with the fonts the system has: the stock themes ask
    fonts.googleapis.com for theirs, and the page should reach no host but its own."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)


def launch_kwargs(allowed_paths: list[str], middleware: Sequence[Any] = ()) -> dict[str, Any]:
    """launch() options: the folders outside the temp dir and cwd whose files handlers may return
    (4.x refuses others), and ASGI middleware classes for gradio's FastAPI app (both versions
    pass app_kwargs to FastAPI())."""
    from starlette.middleware import Middleware

    kwargs: dict[str, Any] = {"allowed_paths": allowed_paths}
    if middleware:
        kwargs["app_kwargs"] = {"middleware": [Middleware(cls) for cls in middleware]}
    return kwargs
