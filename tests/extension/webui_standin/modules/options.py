"""The WebUI's settings: OptionInfo declarations and the Options store saved to config.json."""

from __future__ import annotations

import json
import os
import sys  # noqa: F401 - the WebUI's module binds it
from dataclasses import dataclass

import gradio as gr

from modules import errors  # noqa: F401
from modules.paths_internal import script_path  # noqa: F401
from modules.shared_cmd_options import cmd_opts


class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None, section=None,
                 refresh=None, comment_before='', comment_after='', infotext=None, restrict_api=False,
                 category_id=None):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api

    def link(self, label, url):
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def js(self, label, js_func):
        self.comment_before += f"[<a onclick='{js_func}(); return false'>{label}</a>]"
        return self

    def info(self, info):
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html):
        self.comment_after += html
        return self

    def needs_restart(self):
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def needs_reload_ui(self):
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self


class OptionHTML(OptionInfo):
    def __init__(self, text):
        super().__init__(str(text).strip(), label='', component=lambda **kwargs: gr.HTML(elem_classes="settings-info", **kwargs))
        self.do_not_save = True


def options_section(section_identifier, options_dict):
    for v in options_dict.values():
        if len(section_identifier) == 2:
            v.section = section_identifier
        elif len(section_identifier) == 3:
            v.section = section_identifier[0:2]
            v.category_id = section_identifier[2]
    return options_dict


options_builtin_fields = {"data_labels", "data", "restricted_opts", "typemap"}


class Options:
    typemap = {int: float}

    def __init__(self, data_labels: dict[str, OptionInfo], restricted_opts):
        self.data_labels = data_labels
        self.data = {k: v.default for k, v in self.data_labels.items() if not v.do_not_save}
        self.restricted_opts = restricted_opts

    def __setattr__(self, key, value):
        if key in options_builtin_fields:
            return super().__setattr__(key, value)
        if self.data is not None and (key in self.data or key in self.data_labels):
            assert not cmd_opts.freeze_settings, "changing settings is disabled"
            info = self.data_labels.get(key, None)
            if info.do_not_save:
                return
            comp_args = info.component_args if info else None
            if isinstance(comp_args, dict) and comp_args.get('visible', True) is False:
                raise RuntimeError(f"not possible to set '{key}' because it is restricted")
            self.data[key] = value
            return
        return super().__setattr__(key, value)

    def __getattr__(self, item):
        if item in options_builtin_fields:
            return super().__getattribute__(item)
        if self.data is not None and item in self.data:
            return self.data[item]
        if item in self.data_labels:
            return self.data_labels[item].default
        return super().__getattribute__(item)

    def set(self, key, value, is_api=False, run_callbacks=True):
        oldval = self.data.get(key, None)
        if oldval == value:
            return False
        option = self.data_labels[key]
        if option.do_not_save:
            return False
        if is_api and option.restrict_api:
            return False
        try:
            setattr(self, key, value)
        except RuntimeError:
            return False
        if run_callbacks and option.onchange is not None:
            try:
                option.onchange()
            except Exception as e:
                errors.display(e, f"changing setting {key} to {value}")
                setattr(self, key, oldval)
                return False
        return True

    def get_default(self, key):
        data_label = self.data_labels.get(key)
        if data_label is None:
            return None
        return data_label.default

    def save(self, filename):
        assert not cmd_opts.freeze_settings, "saving settings is disabled"
        with open(filename, "w", encoding="utf8") as file:
            json.dump(self.data, file, indent=4, ensure_ascii=False)

    def same_type(self, x, y):
        if x is None or y is None:
            return True
        type_x = self.typemap.get(type(x), type(x))
        type_y = self.typemap.get(type(y), type(y))
        return type_x == type_y

    def load(self, filename):
        try:
            with open(filename, encoding="utf8") as file:
                self.data = json.load(file)
        except FileNotFoundError:
            self.data = {}
        for k, v in self.data_labels.items():
            if k not in self.data and not v.do_not_save:
                self.data[k] = v.default

    def onchange(self, key, func, call=True):
        item = self.data_labels.get(key)
        item.onchange = func
        if call:
            func()

    def dumpjson(self):
        d = {k: self.data.get(k, v.default) for k, v in self.data_labels.items()}
        d["_comments_before"] = {k: v.comment_before for k, v in self.data_labels.items() if v.comment_before is not None}
        d["_comments_after"] = {k: v.comment_after for k, v in self.data_labels.items() if v.comment_after is not None}
        return json.dumps(d)

    def add_option(self, key, info):
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def reorder(self):
        section_ids = {}
        for _, item in self.data_labels.items():
            section = item.section
            if section not in section_ids:
                section_ids[section] = len(section_ids)
        self.data_labels = dict(sorted(self.data_labels.items(), key=lambda x: section_ids[x[1].section]))

    def cast_value(self, key, value):
        if value is None:
            return None
        default_value = self.data_labels[key].default
        if default_value is None:
            default_value = getattr(self, key, None)
        if default_value is None:
            return None
        expected_type = type(default_value)
        if expected_type is bool and value == "False":
            value = False
        else:
            value = expected_type(value)
        return value


@dataclass
class OptionsCategory:
    id: str
    label: str


class OptionsCategories:
    def __init__(self):
        self.mapping = {}

    def register_category(self, category_id, label):
        if category_id in self.mapping:
            return category_id
        self.mapping[category_id] = OptionsCategory(category_id, label)
        return category_id


categories = OptionsCategories()

_ = os  # the WebUI's module imports os too
