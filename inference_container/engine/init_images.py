"""img2img init images: batch them, flatten transparency, and the WebUI's resize modes."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from inference_container.errors import InvalidRequest

RESIZE_JUST_RESIZE, RESIZE_CROP, RESIZE_FILL, RESIZE_LATENT = 0, 1, 2, 3


def batch_init_images(init_images: Sequence[Image.Image], batch_size: int) -> list[Image.Image]:
    if not init_images:
        raise InvalidRequest("img2img needs at least one init image", field="payload.init_images")
    images = [_flatten(im) for im in init_images]
    if len(images) == 1:
        return images * batch_size
    if len(images) != batch_size:
        raise InvalidRequest(
            f"init_images has {len(images)} images; send one, or exactly batch_size ({batch_size})",
            field="payload.init_images",
        )
    return images


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, transparent areas on white (the WebUI's default img2img background)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def resize_image(mode: int, image: Image.Image, width: int, height: int) -> Image.Image:
    """The WebUI's img2img resize modes 0 (just resize), 1 (crop and resize), 2 (resize and fill)."""
    lanczos = Image.Resampling.LANCZOS
    if mode == RESIZE_JUST_RESIZE:
        return image.resize((width, height), resample=lanczos)
    ratio = width / height
    src_ratio = image.width / image.height
    if mode == RESIZE_CROP:
        src_w = width if ratio > src_ratio else image.width * height // image.height
        src_h = height if ratio <= src_ratio else image.height * width // image.width
        resized = image.resize((src_w, src_h), resample=lanczos)
        out = Image.new("RGB", (width, height))
        out.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        return out
    if mode == RESIZE_FILL:
        src_w = width if ratio < src_ratio else image.width * height // image.height
        src_h = height if ratio >= src_ratio else image.height * width // image.width
        resized = image.resize((src_w, src_h), resample=lanczos)
        out = Image.new("RGB", (width, height))
        out.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        if ratio < src_ratio:
            fill = height // 2 - src_h // 2
            if fill > 0:
                out.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
                out.paste(
                    resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
                    box=(0, fill + src_h),
                )
        elif ratio > src_ratio:
            fill = width // 2 - src_w // 2
            if fill > 0:
                out.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
                out.paste(
                    resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
                    box=(fill + src_w, 0),
                )
        return out
    raise InvalidRequest(f"resize_mode must be 0, 1, 2 or 3 (got {mode})", field="payload.resize_mode")
