"""Saving images the WebUI's way: numbered file names in the outputs folder, the infotext in the
PNG `parameters` chunk, the before/after-save callbacks; and the grid."""

from __future__ import annotations

import datetime
import math
import os
import re

from PIL import Image, PngImagePlugin

from modules import script_callbacks
from modules.shared import opts


def image_grid(imgs, batch_size=1, rows=None):
    if rows is None:
        if opts.n_rows > 0:
            rows = opts.n_rows
        elif opts.n_rows == 0:
            rows = batch_size
        else:
            rows = math.sqrt(len(imgs))
            rows = round(rows)
    if rows > len(imgs):
        rows = len(imgs)
    cols = math.ceil(len(imgs) / rows)
    params = script_callbacks.ImageGridLoopParams(imgs, cols, rows)
    script_callbacks.image_grid_callback(params)
    w, h = map(max, zip(*(img.size for img in imgs), strict=False))
    grid = Image.new('RGB', size=(params.cols * w, params.rows * h), color='black')
    for i, img in enumerate(params.imgs):
        grid.paste(img, box=(i % params.cols * w, i // params.cols * h))
    return grid


invalid_filename_chars = '#<>:"/\\|?*\n\r\t'
max_filename_part_length = 128


def sanitize_filename_part(text, replace_spaces=True):
    if text is None:
        return None
    if replace_spaces:
        text = text.replace(' ', '_')
    text = text.translate({ord(x): '_' for x in invalid_filename_chars})
    text = text.lstrip()[:max_filename_part_length]
    return text.rstrip()


class FilenameGenerator:
    """The [seed], [prompt_spaces], [prompt_words], [date] patterns (the ones the defaults use)."""

    def __init__(self, p, seed, prompt, image, basename=""):
        self.p = p
        self.seed = seed
        self.prompt = prompt
        self.image = image

    def apply(self, x):
        def replace(match):
            key = match.group(1).lower()
            if key == "seed":
                return str(self.seed)
            if key == "prompt_spaces":
                return sanitize_filename_part(self.prompt, replace_spaces=False) or ""
            if key == "prompt_words":
                words = [w for w in re.split(r"[\s,]+", self.prompt or "") if w]
                return sanitize_filename_part(" ".join(words[:8]), replace_spaces=False) or "empty"
            if key == "date":
                return datetime.date.today().isoformat()
            return match.group(0)

        return re.sub(r"\[(\w+)]", replace, x)


def get_next_sequence_number(path, basename):
    result = -1
    if basename != '':
        basename = f"{basename}-"
    prefix_length = len(basename)
    for p in os.listdir(path):
        if p.startswith(basename):
            parts = os.path.splitext(p[prefix_length:])[0].split('-')
            try:
                result = max(int(parts[0]), result)
            except ValueError:
                pass
    return result + 1


def save_image_with_geninfo(image, geninfo, filename, extension=None, existing_pnginfo=None,
                            pnginfo_section_name='parameters'):
    if extension is None:
        extension = os.path.splitext(filename)[1]
    image_format = Image.registered_extensions()[extension]
    if extension.lower() == '.png':
        existing_pnginfo = existing_pnginfo or {}
        if opts.enable_pnginfo:
            existing_pnginfo[pnginfo_section_name] = geninfo
        pnginfo_data = PngImagePlugin.PngInfo()
        for k, v in (existing_pnginfo or {}).items():
            pnginfo_data.add_text(k, str(v))
        image.save(filename, format=image_format, pnginfo=pnginfo_data)
    else:
        image.save(filename, format=image_format)


def save_image(image, path, basename, seed=None, prompt=None, extension='png', info=None, short_filename=False,
               no_prompt=False, grid=False, pnginfo_section_name='parameters', p=None, existing_info=None,
               forced_filename=None, suffix="", save_to_dirs=None):
    namegen = FilenameGenerator(p, seed, prompt, image, basename=basename)
    if save_to_dirs is None:
        save_to_dirs = (grid and opts.grid_save_to_dirs) or (not grid and opts.save_to_dirs and not no_prompt)
    if save_to_dirs:
        dirname = namegen.apply(opts.directories_filename_pattern or "[prompt_words]").lstrip(' ').rstrip('\\ /')
        path = os.path.join(path, dirname)
    os.makedirs(path, exist_ok=True)

    if forced_filename is None:
        if short_filename or seed is None:
            file_decoration = ""
        elif opts.save_to_dirs:
            file_decoration = opts.samples_filename_pattern or "[seed]"
        else:
            file_decoration = opts.samples_filename_pattern or "[seed]-[prompt_spaces]"
        file_decoration = namegen.apply(file_decoration) + suffix
        add_number = opts.save_images_add_number or file_decoration == ''
        if file_decoration != "" and add_number:
            file_decoration = f"-{file_decoration}"
        if add_number:
            basecount = get_next_sequence_number(path, basename)
            fullfn = None
            for i in range(500):
                fn = f"{basecount + i:05}" if basename == '' else f"{basename}-{basecount + i:04}"
                fullfn = os.path.join(path, f"{fn}{file_decoration}.{extension}")
                if not os.path.exists(fullfn):
                    break
        else:
            fullfn = os.path.join(path, f"{file_decoration}.{extension}")
    else:
        fullfn = os.path.join(path, f"{forced_filename}.{extension}")

    pnginfo = existing_info or {}
    if info is not None:
        pnginfo[pnginfo_section_name] = info
    params = script_callbacks.ImageSaveParams(image, p, fullfn, pnginfo)
    script_callbacks.before_image_saved_callback(params)
    image = params.image
    fullfn = params.filename
    info = params.pnginfo.get(pnginfo_section_name, None)

    fullfn_without_extension, extension = os.path.splitext(params.filename)
    temp_file_path = f"{fullfn_without_extension}.tmp"
    save_image_with_geninfo(image, info, temp_file_path, extension, existing_pnginfo=params.pnginfo,
                            pnginfo_section_name=pnginfo_section_name)
    os.replace(temp_file_path, fullfn_without_extension + extension)
    image.already_saved_as = fullfn
    script_callbacks.image_saved_callback(params)
    return fullfn, None
