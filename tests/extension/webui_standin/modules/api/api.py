"""The /sdapi/v1/txt2img|img2img handlers, called in-process with the request body as a dict.

Like the WebUI's api.py, it binds `process_images` by name when imported: Forge imports it before
extensions load, so wrapping `processing.process_images` at load time never reaches this path."""

from __future__ import annotations

import base64
import io
from contextlib import closing

import gradio as gr
from PIL import Image

from modules import scripts, shared
from modules.processing import (
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
    process_images,
)
from modules.shared import opts


class HTTPException(Exception):
    def __init__(self, status_code, detail):
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


def decode_base64_to_image(encoding):
    if encoding.startswith("data:image/"):
        encoding = encoding.split(";")[1].split(",")[1]
    return Image.open(io.BytesIO(base64.b64decode(encoding)))


def encode_pil_to_base64(image):
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue())


def script_name_to_index(name, scripts_list):
    try:
        return [script.title().lower() for script in scripts_list].index(name.lower())
    except Exception as e:
        raise HTTPException(status_code=422, detail=f"Script '{name}' not found") from e


_NOT_P_FIELDS = ("script_name", "script_args", "alwayson_scripts", "send_images", "save_images", "infotext",
                 "sampler_index", "force_task_id")


class Api:
    def __init__(self, app, queue_lock):
        self.app = app
        self.queue_lock = queue_lock
        self.default_script_arg_txt2img = []
        self.default_script_arg_img2img = []

    def get_script(self, script_name, script_runner):
        if script_name is None or script_name == "":
            return None, None
        script_idx = script_name_to_index(script_name, script_runner.scripts)
        return script_runner.scripts[script_idx]

    def init_default_script_args(self, script_runner):
        last_arg_index = 1
        for script in script_runner.scripts:
            if last_arg_index < script.args_to:
                last_arg_index = script.args_to
        script_args = [None] * last_arg_index
        script_args[0] = 0
        with gr.Blocks():
            for script in script_runner.scripts:
                if script.ui(script.is_img2img):
                    ui_default_values = [elem.value for elem in script.ui(script.is_img2img)]
                    script_args[script.args_from:script.args_to] = ui_default_values
        return script_args

    def init_script_args(self, request, default_script_args, selectable_scripts, selectable_idx, script_runner, *,
                         input_script_args=None):
        script_args = default_script_args.copy()
        for alwayson_script_name, body in (request.get("alwayson_scripts") or {}).items():
            alwayson_script = self.get_script(alwayson_script_name, script_runner)
            if alwayson_script is None:
                raise HTTPException(status_code=422, detail=f"always on script {alwayson_script_name} not found")
            if alwayson_script.alwayson is False:
                raise HTTPException(status_code=422,
                                    detail="Cannot have a selectable script in the always on scripts params")
            if "args" in body:
                for idx in range(0, min(alwayson_script.args_to - alwayson_script.args_from, len(body["args"]))):
                    script_args[alwayson_script.args_from + idx] = body["args"][idx]
        return script_args

    def _run(self, request, runner, make_p, outdir_samples, outdir_grids, job):
        request = dict(request)
        if not self.default_script_arg_txt2img and runner is scripts.scripts_txt2img:
            self.default_script_arg_txt2img = self.init_default_script_args(runner)
        if not self.default_script_arg_img2img and runner is scripts.scripts_img2img:
            self.default_script_arg_img2img = self.init_default_script_args(runner)
        defaults = (self.default_script_arg_txt2img if runner is scripts.scripts_txt2img
                    else self.default_script_arg_img2img)
        script_args = self.init_script_args(request, defaults, None, None, runner)
        send_images = request.get("send_images", True)
        save_images = request.get("save_images", False)
        sampler = request.get("sampler_name") or request.get("sampler_index") or "Euler"
        args = {k: v for k, v in request.items() if k not in _NOT_P_FIELDS}
        args.update(sampler_name=sampler, do_not_save_samples=not save_images, do_not_save_grid=not save_images)
        with self.queue_lock:
            with closing(make_p(args)) as p:
                p.is_api = True
                p.scripts = runner
                p.outpath_grids = outdir_grids
                p.outpath_samples = outdir_samples
                try:
                    shared.state.begin(job=job)
                    p.script_args = tuple(script_args)
                    processed = process_images(p)
                finally:
                    shared.state.end()
                    shared.total_tqdm.clear()
        b64images = [encode_pil_to_base64(i).decode("ascii") for i in processed.images] if send_images else []
        return {"images": b64images, "parameters": request, "info": processed.js()}

    def text2imgapi(self, txt2imgreq):
        return self._run(txt2imgreq, scripts.scripts_txt2img,
                         lambda args: StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, **args),
                         opts.outdir_txt2img_samples, opts.outdir_txt2img_grids, "scripts_txt2img")

    def img2imgapi(self, img2imgreq):
        req = dict(img2imgreq)
        init_images = req.get("init_images")
        if init_images is None:
            raise HTTPException(status_code=404, detail="Init image not found")
        req["init_images"] = [decode_base64_to_image(x) for x in init_images]
        req.pop("include_init_images", None)
        return self._run(req, scripts.scripts_img2img,
                         lambda args: StableDiffusionProcessingImg2Img(sd_model=shared.sd_model, **args),
                         opts.outdir_img2img_samples, opts.outdir_img2img_grids, "scripts_img2img")
