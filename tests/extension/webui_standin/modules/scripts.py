"""Scripts: the Script base class extensions subclass, the loader and the ScriptRunner that calls
them. Like the WebUI, hook errors are reported and swallowed (an exception raised in
`before_process` does not stop generation)."""

from __future__ import annotations

import inspect  # noqa: F401
import os
import re  # noqa: F401
import sys
from collections import namedtuple
from dataclasses import dataclass

import gradio as gr

from modules import errors, extensions, paths, script_callbacks, script_loading, shared  # noqa: F401
from modules._standin import FORGE

AlwaysVisible = object()


class MaskBlendArgs:
    def __init__(self, current_latent, nmask, init_latent, mask, blended_latent, denoiser=None, sigma=None):
        self.current_latent = current_latent
        self.nmask = nmask
        self.init_latent = init_latent
        self.mask = mask
        self.blended_latent = blended_latent
        self.denoiser = denoiser
        self.is_final_blend = denoiser is None
        self.sigma = sigma


class PostSampleArgs:
    def __init__(self, samples):
        self.samples = samples


if FORGE:
    class PostprocessImageArgs:
        def __init__(self, image, index):
            self.image = image
            self.index = index
else:
    class PostprocessImageArgs:
        def __init__(self, image):
            self.image = image


class PostProcessMaskOverlayArgs:
    def __init__(self, index, mask_for_overlay, overlay_image):
        self.index = index
        self.mask_for_overlay = mask_for_overlay
        self.overlay_image = overlay_image


class PostprocessBatchListArgs:
    def __init__(self, images):
        self.images = images


@dataclass
class OnComponent:
    component: gr.blocks.Block


class Script:
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None
    on_before_component_elem_id = None
    on_after_component_elem_id = None
    setup_for_ui_only = False
    controls = None
    if FORGE:
        sorting_priority = 0

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def after_extra_networks_activate(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs):
        pass

    def on_mask_blend(self, p, mba: MaskBlendArgs, *args):
        pass

    def post_sample(self, p, ps: PostSampleArgs, *args):
        pass

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs, *args):
        pass

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_component(self, component, **kwargs):
        pass

    def after_component(self, component, **kwargs):
        pass

    def on_before_component(self, callback, *, elem_id):
        pass

    def on_after_component(self, callback, *, elem_id):
        pass

    def describe(self):
        return ""

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabkind = 'img2img' if self.is_img2img else 'txt2img'
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r'[^a-z_0-9]', '', re.sub(r'\s', '_', self.title().lower()))
        return f'script_{tabname}{title}_{item_id}'

    def before_hr(self, p, *args):
        pass


class ScriptBuiltinUI(Script):
    setup_for_ui_only = True

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabname = ('img2img' if self.is_img2img else 'txt2img') + "_" if need_tabname else ""
        return f'{tabname}{item_id}'

    def show(self, is_img2img):
        return AlwaysVisible


current_basedir = paths.script_path


def basedir():
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])

scripts_data = []
postprocessing_scripts_data = []
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])


def list_scripts(scriptdirname, extension, *, include_extensions=True):
    scripts_list = []
    basedir = os.path.join(paths.script_path, scriptdirname)
    if os.path.exists(basedir):
        for filename in sorted(os.listdir(basedir)):
            scripts_list.append(ScriptFile(paths.script_path, filename, os.path.join(basedir, filename)))
    if include_extensions:
        for ext in extensions.active():
            for path in ext.list_files(scriptdirname, extension):
                scripts_list.append(ScriptFile(ext.path, os.path.basename(path), path))
    return [x for x in scripts_list if os.path.splitext(x.path)[1].lower() == extension and os.path.isfile(x.path)]


def load_scripts():
    """Every scripts/*.py of every extension, with the extension's root on sys.path only while its
    file loads (then sys.path is restored)."""
    global current_basedir
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    script_callbacks.clear_callbacks()

    scripts_list = list_scripts("scripts", ".py") + list_scripts("modules/processing_scripts", ".py",
                                                                  include_extensions=False)
    syspath = sys.path

    def register_scripts_from_module(module):
        for script_class in module.__dict__.values():
            if not inspect.isclass(script_class):
                continue
            if issubclass(script_class, Script):
                scripts_data.append(ScriptClassData(script_class, scriptfile.path, scriptfile.basedir, module))

    for scriptfile in scripts_list:
        try:
            if scriptfile.basedir != paths.script_path:
                sys.path = [scriptfile.basedir] + sys.path
            current_basedir = scriptfile.basedir
            script_module = script_loading.load_module(scriptfile.path)
            register_scripts_from_module(script_module)
        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)
        finally:
            sys.path = syspath
            current_basedir = paths.script_path


def wrap_call(func, filename, funcname, *args, default=None, **kwargs):
    try:
        return func(*args, **kwargs)
    except Exception:
        errors.report(f"Error calling: {filename}/{funcname}", exc_info=True)
    return default


class ScriptRunner:
    def __init__(self):
        self.scripts = []
        self.selectable_scripts = []
        self.alwayson_scripts = []
        self.titles = []
        self.title_map = {}
        self.infotext_fields = []
        self.paste_field_names = []
        self.inputs = [None]
        self.callback_map = {}
        self.callback_names = ['before_process', 'process', 'postprocess']
        self.on_before_component_elem_id = {}
        self.on_after_component_elem_id = {}

    def initialize_scripts(self, is_img2img):
        self.scripts.clear()
        self.alwayson_scripts.clear()
        self.selectable_scripts.clear()
        for script_data in scripts_data:
            try:
                script = script_data.script_class()
            except Exception:
                errors.report(f"Error instantiating {script_data.path}", exc_info=True)
                continue
            script.filename = script_data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            visibility = script.show(script.is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)
        self.callback_map.clear()

    def create_script_ui(self, script):
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        try:
            self.create_script_ui_inner(script)
        except Exception:
            errors.report(f"Error creating UI for {script.name}: ", exc_info=True)

    def create_script_ui_inner(self, script):
        controls = wrap_call(script.ui, script.filename, "ui", script.is_img2img)
        script.controls = controls
        if controls is None:
            return
        script.name = wrap_call(script.title, script.filename, "title", default=script.filename).lower()
        api_args = []
        for control in controls:
            control.custom_script_source = os.path.basename(script.filename)
            api_args.append({"label": getattr(control, "label", None) or "", "value": getattr(control, "value", None)})
        script.api_info = {"name": script.name, "is_img2img": script.is_img2img, "is_alwayson": script.alwayson,
                           "args": api_args}
        if script.infotext_fields is not None:
            self.infotext_fields += script.infotext_fields
        if script.paste_field_names is not None:
            self.paste_field_names += script.paste_field_names
        self.inputs += controls
        script.args_to = len(self.inputs)

    def setup_ui_for_section(self, section, scriptlist=None):
        if scriptlist is None:
            scriptlist = self.alwayson_scripts
        for script in scriptlist:
            if script.alwayson and script.section != section:
                continue
            if script.create_group:
                with gr.Group(visible=script.alwayson) as group:
                    self.create_script_ui(script)
                script.group = group
            else:
                self.create_script_ui(script)

    def prepare_ui(self):
        self.inputs = [None]

    def setup_ui(self):
        all_titles = [wrap_call(script.title, script.filename, "title") or script.filename for script in self.scripts]
        self.title_map = {title.lower(): script for title, script in zip(all_titles, self.scripts, strict=False)}
        self.titles = [wrap_call(script.title, script.filename, "title") or f"{script.filename} [error]"
                       for script in self.selectable_scripts]
        self.setup_ui_for_section(None)
        dropdown = gr.Dropdown(label="Script", elem_id="script_list", choices=["None"] + self.titles, value="None",
                               type="index")
        self.inputs[0] = dropdown
        self.setup_ui_for_section(None, self.selectable_scripts)
        return self.inputs

    def run(self, p, *args):
        script_index = args[0]
        if script_index == 0 or script_index is None:
            return None
        script = self.selectable_scripts[script_index - 1]
        if script is None:
            return None
        script_args = args[script.args_from:script.args_to]
        processed = script.run(p, *script_args)
        shared.total_tqdm.clear()
        return processed

    def list_scripts_for_method(self, method_name):
        return [script for script in self.alwayson_scripts
                if getattr(script.__class__, method_name) is not getattr(Script, method_name)]

    def ordered_scripts(self, method_name):
        return self.list_scripts_for_method(method_name)

    def _each(self, method_name, p, *extra, **kwargs):
        for script in self.ordered_scripts(method_name):
            try:
                script_args = p.script_args[script.args_from:script.args_to]
                getattr(script, method_name)(p, *extra, *script_args, **kwargs)
            except Exception:
                errors.report(f"Error running {method_name}: {script.filename}", exc_info=True)

    def before_process(self, p):
        self._each('before_process', p)

    def process(self, p):
        self._each('process', p)

    if FORGE:
        def before_process_init_images(self, p, pp, **kwargs):
            self._each('before_process_init_images', p, pp, **kwargs)

    def process_before_every_sampling(self, p, **kwargs):
        self._each('process_before_every_sampling', p, **kwargs)

    def before_process_batch(self, p, **kwargs):
        self._each('before_process_batch', p, **kwargs)

    def process_batch(self, p, **kwargs):
        self._each('process_batch', p, **kwargs)

    def postprocess(self, p, processed):
        self._each('postprocess', p, processed)

    def postprocess_image(self, p, pp: PostprocessImageArgs):
        self._each('postprocess_image', p, pp)

    def script(self, title):
        return self.title_map.get(title.lower())

    def setup_scrips(self, p, *, is_ui=True):
        for script in self.scripts:
            if not is_ui and script.setup_for_ui_only:
                continue
            try:
                script_args = p.script_args[script.args_from:script.args_to]
                script.setup(p, *script_args)
            except Exception:
                errors.report(f"Error running setup: {script.filename}", exc_info=True)


scripts_txt2img: ScriptRunner = None
scripts_img2img: ScriptRunner = None
scripts_postproc = None
scripts_current: ScriptRunner = None
