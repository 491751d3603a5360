"""gradio builders for SD Cloud, independent of where they are mounted (standalone app or WebUI).

The builders are loaded on first use, so the gradio-free modules here (generation, history,
messages, connection) import without gradio.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_BUILDERS = {
    "GenerateTab": "generate_tab",
    "build_generate_tab": "generate_tab",
    "JobsTab": "jobs_tab",
    "build_jobs_tab": "jobs_tab",
    "SettingsTab": "settings_tab",
    "build_settings_tab": "settings_tab",
}

__all__ = sorted(_BUILDERS)


def __getattr__(name: str) -> Any:
    if name in _BUILDERS:
        return getattr(import_module(f".{_BUILDERS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
