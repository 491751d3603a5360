"""Small PNGs carrying an A1111 infotext in the `parameters` text chunk."""

from __future__ import annotations

import io

from PIL import Image, PngImagePlugin

INFOTEXT = (
    "a red fox in snow\n"
    "Negative prompt: blurry\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 64x64, "
    "Model hash: 0123456789, Model: tiny-sd15, Version: sdcloud-0.1.0"
)


def png_with_infotext(text: str = INFOTEXT, size: tuple[int, int] = (64, 64), color: str = "orange") -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()
