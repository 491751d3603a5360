"""PNG files carrying the WebUI's infotext in their ``parameters`` text chunk.

The WebUI writes ``PngInfo.add_text("parameters", infotext)``: a tEXt chunk when the text is
Latin-1, an iTXt (UTF-8) chunk otherwise. Its "PNG Info" tab and every image browser read it
from there, so ours must be the same.
"""

from __future__ import annotations

import io

from PIL import Image, PngImagePlugin

PARAMETERS_KEY = "parameters"


def encode_png(image: Image.Image, infotext: str | None) -> bytes:
    """The image as PNG bytes with ``infotext`` in the ``parameters`` chunk (none when empty)."""
    info = PngImagePlugin.PngInfo()
    if infotext:
        info.add_text(PARAMETERS_KEY, infotext)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_parameters(png_bytes: bytes) -> str | None:
    """The ``parameters`` text of a PNG, or None when it has none. Raises ValueError if not a PNG."""
    try:
        with Image.open(io.BytesIO(png_bytes), formats=("PNG",)) as image:
            value = image.info.get(PARAMETERS_KEY)
            if value is None and hasattr(image, "text"):
                # Text chunks after the image data are only read on demand.
                value = image.text.get(PARAMETERS_KEY)
    except (OSError, SyntaxError) as error:
        raise ValueError(f"not a readable PNG: {error}") from None
    return None if value is None else str(value)
