"""Callback registration and dispatch, as the WebUI's script_callbacks does it (errors in a
callback are reported, never raised, so one extension cannot break the others)."""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any, Optional

from fastapi import FastAPI
from gradio import Blocks

from modules import errors


def report_exception(c, job):
    errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)


class ImageSaveParams:
    def __init__(self, image, p, filename, pnginfo):
        self.image = image
        self.p = p
        self.filename = filename
        self.pnginfo = pnginfo


class ExtraNoiseParams:
    def __init__(self, noise, x, xi):
        self.noise = noise
        self.x = x
        self.xi = xi


class CFGDenoiserParams:
    def __init__(self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond, denoiser=None):
        self.x = x
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


class CFGDenoisedParams:
    def __init__(self, x, sampling_step, total_sampling_steps, inner_model):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.inner_model = inner_model


class AfterCFGCallbackParams:
    def __init__(self, x, sampling_step, total_sampling_steps):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps


class UiTrainTabParams:
    def __init__(self, txt2img_preview_params):
        self.txt2img_preview_params = txt2img_preview_params


class ImageGridLoopParams:
    def __init__(self, imgs, cols, rows):
        self.imgs = imgs
        self.cols = cols
        self.rows = rows


@dataclasses.dataclass
class BeforeTokenCounterParams:
    prompt: str
    steps: int
    styles: list

    is_positive: bool = True


@dataclasses.dataclass
class ScriptCallback:
    script: str
    callback: Any
    name: str = None


def add_callback(callbacks, fun, *, name=None, category='unknown', filename=None):
    if filename is None:
        stack = [x for x in inspect.stack() if x.filename != __file__]
        filename = stack[0].filename if stack else 'unknown file'
    callbacks.append(ScriptCallback(filename, fun, f"{os.path.basename(filename)}/{name or category}"))


def sort_callbacks(category, unordered_callbacks, *, enable_user_sort=True):
    return list(unordered_callbacks)


def ordered_callbacks(category, unordered_callbacks=None, *, enable_user_sort=True):
    if unordered_callbacks is None:
        unordered_callbacks = callback_map.get('callbacks_' + category, [])
    return sort_callbacks(category, unordered_callbacks, enable_user_sort=enable_user_sort)


def enumerate_callbacks():
    for category, callbacks in callback_map.items():
        if category.startswith('callbacks_'):
            category = category[10:]
        yield category, callbacks


callback_map = dict(
    callbacks_app_started=[],
    callbacks_on_reload=[],
    callbacks_model_loaded=[],
    callbacks_ui_tabs=[],
    callbacks_ui_train_tabs=[],
    callbacks_ui_settings=[],
    callbacks_before_image_saved=[],
    callbacks_image_saved=[],
    callbacks_extra_noise=[],
    callbacks_cfg_denoiser=[],
    callbacks_cfg_denoised=[],
    callbacks_cfg_after_cfg=[],
    callbacks_before_component=[],
    callbacks_after_component=[],
    callbacks_image_grid=[],
    callbacks_infotext_pasted=[],
    callbacks_script_unloaded=[],
    callbacks_before_ui=[],
    callbacks_list_optimizers=[],
    callbacks_list_unets=[],
    callbacks_before_token_counter=[],
)

ordered_callbacks_map = {}


def clear_callbacks():
    for callback_list in callback_map.values():
        callback_list.clear()
    ordered_callbacks_map.clear()


def app_started_callback(demo: Optional[Blocks], app: FastAPI):
    for c in ordered_callbacks('app_started'):
        try:
            c.callback(demo, app)
        except Exception:
            report_exception(c, 'app_started_callback')


def app_reload_callback():
    for c in ordered_callbacks('on_reload'):
        try:
            c.callback()
        except Exception:
            report_exception(c, 'app_reload_callback')


def model_loaded_callback(sd_model):
    for c in ordered_callbacks('model_loaded'):
        try:
            c.callback(sd_model)
        except Exception:
            report_exception(c, 'model_loaded_callback')


def ui_tabs_callback():
    res = []
    for c in ordered_callbacks('ui_tabs'):
        try:
            res += c.callback() or []
        except Exception:
            report_exception(c, 'ui_tabs_callback')
    return res


def ui_train_tabs_callback(params: UiTrainTabParams):
    for c in ordered_callbacks('ui_train_tabs'):
        try:
            c.callback(params)
        except Exception:
            report_exception(c, 'ui_train_tabs_callback')


def ui_settings_callback():
    for c in ordered_callbacks('ui_settings'):
        try:
            c.callback()
        except Exception:
            report_exception(c, 'ui_settings_callback')


def before_image_saved_callback(params: ImageSaveParams):
    for c in ordered_callbacks('before_image_saved'):
        try:
            c.callback(params)
        except Exception:
            report_exception(c, 'before_image_saved_callback')


def image_saved_callback(params: ImageSaveParams):
    for c in ordered_callbacks('image_saved'):
        try:
            c.callback(params)
        except Exception:
            report_exception(c, 'image_saved_callback')


def extra_noise_callback(params: ExtraNoiseParams):
    for c in ordered_callbacks('extra_noise'):
        try:
            c.callback(params)
        except Exception:
            report_exception(c, 'extra_noise_callback')


def cfg_denoiser_callback(params: CFGDenoiserParams):
    for c in ordered_callbacks('cfg_denoiser'):
        try:
            c.callback(params)
        except Exception:
            report_exception(c, 'cfg_denoiser_callback')


def cfg_denoised_callback(params: CFGDenoisedParams):
    for c in ordered_callbacks('cfg_denoised'):
        try:
            c.callback(params)
        except Exception:
            report_exception(c, 'cfg_denoised_callback')


def cfg_after_cfg_callback(params: AfterCFGCallbackParams):
    for c in ordered_callbacks('cfg_after_cfg'):
        try:
            c.callback(params)
        except Exception:
            report_exception(c, 'cfg_after_cfg_callback')


def before_component_callback(component, **kwargs):
    for c in ordered_callbacks('before_component'):
        try:
            c.callback(component, **kwargs)
        except Exception:
            report_exception(c, 'before_component_callback')


def after_component_callback(component, **kwargs):
    for c in ordered_callbacks('after_component'):
        try:
            c.callback(component, **kwargs)
        except Exception:
            report_exception(c, 'after_component_callback')


def image_grid_callback(params: ImageGridLoopParams):
    for c in ordered_callbacks('image_grid'):
        try:
            c.callback(params)
        except Exception:
            report_exception(c, 'image_grid_callback')


def infotext_pasted_callback(infotext: str, params: dict[str, Any]):
    for c in ordered_callbacks('infotext_pasted'):
        try:
            c.callback(infotext, params)
        except Exception:
            report_exception(c, 'infotext_pasted_callback')


def script_unloaded_callback():
    for c in reversed(ordered_callbacks('script_unloaded')):
        try:
            c.callback()
        except Exception:
            report_exception(c, 'script_unloaded_callback')


def before_ui_callback():
    for c in reversed(ordered_callbacks('before_ui')):
        try:
            c.callback()
        except Exception:
            report_exception(c, 'before_ui_callback')


def list_optimizers_callback():
    res = []
    for c in ordered_callbacks('list_optimizers'):
        try:
            c.callback(res)
        except Exception:
            report_exception(c, 'list_optimizers_callback')
    return res


def list_unets_callback():
    res = []
    for c in ordered_callbacks('list_unets'):
        try:
            c.callback(res)
        except Exception:
            report_exception(c, 'list_unets_callback')
    return res


def before_token_counter_callback(params: BeforeTokenCounterParams):
    for c in ordered_callbacks('before_token_counter'):
        try:
            c.callback(params)
        except Exception:
            report_exception(c, 'before_token_counter_callback')


def remove_current_script_callbacks():
    stack = [x for x in inspect.stack() if x.filename != __file__]
    filename = stack[0].filename if stack else 'unknown file'
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.script == filename]:
            callback_list.remove(callback_to_remove)


def remove_callbacks_for_function(callback_func):
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.callback == callback_func]:
            callback_list.remove(callback_to_remove)


def on_app_started(callback, *, name=None):
    add_callback(callback_map['callbacks_app_started'], callback, name=name, category='app_started')


def on_before_reload(callback, *, name=None):
    add_callback(callback_map['callbacks_on_reload'], callback, name=name, category='on_reload')


def on_model_loaded(callback, *, name=None):
    add_callback(callback_map['callbacks_model_loaded'], callback, name=name, category='model_loaded')


def on_ui_tabs(callback, *, name=None):
    add_callback(callback_map['callbacks_ui_tabs'], callback, name=name, category='ui_tabs')


def on_ui_train_tabs(callback, *, name=None):
    add_callback(callback_map['callbacks_ui_train_tabs'], callback, name=name, category='ui_train_tabs')


def on_ui_settings(callback, *, name=None):
    add_callback(callback_map['callbacks_ui_settings'], callback, name=name, category='ui_settings')


def on_before_image_saved(callback, *, name=None):
    add_callback(callback_map['callbacks_before_image_saved'], callback, name=name, category='before_image_saved')


def on_image_saved(callback, *, name=None):
    add_callback(callback_map['callbacks_image_saved'], callback, name=name, category='image_saved')


def on_extra_noise(callback, *, name=None):
    add_callback(callback_map['callbacks_extra_noise'], callback, name=name, category='extra_noise')


def on_cfg_denoiser(callback, *, name=None):
    add_callback(callback_map['callbacks_cfg_denoiser'], callback, name=name, category='cfg_denoiser')


def on_cfg_denoised(callback, *, name=None):
    add_callback(callback_map['callbacks_cfg_denoised'], callback, name=name, category='cfg_denoised')


def on_cfg_after_cfg(callback, *, name=None):
    add_callback(callback_map['callbacks_cfg_after_cfg'], callback, name=name, category='cfg_after_cfg')


def on_before_component(callback, *, name=None):
    add_callback(callback_map['callbacks_before_component'], callback, name=name, category='before_component')


def on_after_component(callback, *, name=None):
    add_callback(callback_map['callbacks_after_component'], callback, name=name, category='after_component')


def on_image_grid(callback, *, name=None):
    add_callback(callback_map['callbacks_image_grid'], callback, name=name, category='image_grid')


def on_infotext_pasted(callback, *, name=None):
    add_callback(callback_map['callbacks_infotext_pasted'], callback, name=name, category='infotext_pasted')


def on_script_unloaded(callback, *, name=None):
    add_callback(callback_map['callbacks_script_unloaded'], callback, name=name, category='script_unloaded')


def on_before_ui(callback, *, name=None):
    add_callback(callback_map['callbacks_before_ui'], callback, name=name, category='before_ui')


def on_list_optimizers(callback, *, name=None):
    add_callback(callback_map['callbacks_list_optimizers'], callback, name=name, category='list_optimizers')


def on_list_unets(callback, *, name=None):
    add_callback(callback_map['callbacks_list_unets'], callback, name=name, category='list_unets')


def on_before_token_counter(callback, *, name=None):
    add_callback(callback_map['callbacks_before_token_counter'], callback, name=name, category='before_token_counter')

