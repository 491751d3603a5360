"""Infotext: quoting, parsing "key: value" parameters, and the paste ("Send to txt2img") logic
that routes parsed values into registered components."""

from __future__ import annotations

import json
import re

import gradio as gr

from modules import script_callbacks

re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")
type_of_gr_update = type(gr.update())
_GRADIO_4 = int(gr.__version__.split(".", 1)[0]) >= 4



class ParamBinding:
    """A "Send to <tab>" button an extension registers; the WebUI wires it once its UI is built."""

    def __init__(self, paste_button, tabname, source_text_component=None, source_image_component=None,
                 source_tabname=None, override_settings_component=None, paste_field_names=None):
        self.paste_button = paste_button
        self.tabname = tabname
        self.source_text_component = source_text_component
        self.source_image_component = source_image_component
        self.source_tabname = source_tabname
        self.override_settings_component = override_settings_component
        self.paste_field_names = paste_field_names or []


paste_fields: dict[str, dict] = {}
registered_param_bindings: list[ParamBinding] = []


def quote(text):
    if ',' not in str(text) and '\n' not in str(text) and ':' not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def add_paste_fields(tabname, init_img, fields, override_settings_component=None):
    paste_fields[tabname] = {"init_img": init_img, "fields": fields,
                             "override_settings_component": override_settings_component}


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None):
    if skip_fields is None:
        skip_fields = []
    res = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False
    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ''
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt
    for k, v in re_param.findall(lastline):
        try:
            if v[0] == '"' and v[-1] == '"':
                v = unquote(v)
            m = re_imagesize.match(v)
            if m is not None:
                res[f"{k}-1"] = m.group(1)
                res[f"{k}-2"] = m.group(2)
            else:
                res[k] = v
        except Exception:
            print(f"Error parsing \"{k}: {v}\"")
    for key in skip_fields:
        res.pop(key, None)
    return res


def _paste_values(paste_fields, prompt):
    """What connect_paste's handler returns for an infotext: one update per (component, key)."""
    params = parse_generation_parameters(prompt)
    script_callbacks.infotext_pasted_callback(prompt, params)
    res = []
    for output, key in paste_fields:
        if callable(key):
            try:
                v = key(params)
            except Exception:
                v = None
        else:
            v = params.get(key, None)
        if v is None:
            res.append(gr.update())
        elif isinstance(v, type_of_gr_update):
            res.append(v)
        else:
            try:
                valtype = type(output.value)
                if valtype is bool and v == "False":
                    val = False
                elif valtype is int:
                    val = float(v)
                else:
                    val = valtype(v)
                res.append(gr.update(value=val))
            except Exception:
                res.append(gr.update())
    return res


def register_paste_params_button(binding: ParamBinding):
    registered_param_bindings.append(binding)


def connect_paste_params_buttons():
    """As the WebUI does after building every tab (extension tabs included): a binding with a
    source text pastes that infotext into the target tab's registered fields, then the page
    switches to that tab (the WebUI's own `switch_to_<tab>` JavaScript)."""
    for binding in registered_param_bindings:
        if binding.tabname not in paste_fields:
            continue
        fields = paste_fields[binding.tabname]["fields"]
        override = binding.override_settings_component or paste_fields[binding.tabname]["override_settings_component"]
        if binding.source_text_component is not None and fields is not None:
            connect_paste(binding.paste_button, fields, binding.source_text_component, override, binding.tabname)
        js = {"js" if _GRADIO_4 else "_js": f"switch_to_{binding.tabname}"}  # gradio 4 renamed it
        binding.paste_button.click(fn=None, inputs=None, outputs=None, show_progress=False, **js)


def connect_paste(button, paste_fields, input_comp, override_settings_component, tabname):
    def paste_func(prompt):
        return _paste_values(paste_fields, prompt)

    button.click(fn=paste_func, inputs=[input_comp], outputs=[x[0] for x in paste_fields], show_progress=False)


def create_override_settings_dict(text_pairs):
    res = {}
    for pair in text_pairs or []:
        k, v = pair.split(":", maxsplit=1)
        res[k.strip()] = v.strip()
    return res
