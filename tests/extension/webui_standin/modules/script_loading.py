"""Loading one script file as a module, the WebUI's way: named after its file, not in sys.modules."""

from __future__ import annotations

import importlib.util
import os

from modules import errors  # noqa: F401

loaded_scripts = {}


def load_module(path):
    module_spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    loaded_scripts[path] = module
    return module
