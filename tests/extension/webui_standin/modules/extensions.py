"""The installed extensions (the stand-in is told which folders they are)."""

from __future__ import annotations

import os


class Extension:
    def __init__(self, name, path, enabled=True, is_builtin=False):
        self.name = name
        self.path = path
        self.enabled = enabled
        self.is_builtin = is_builtin

    def list_files(self, subdir, extension):
        dirpath = os.path.join(self.path, subdir)
        if not os.path.isdir(dirpath):
            return []
        return [os.path.join(dirpath, f) for f in sorted(os.listdir(dirpath))
                if os.path.splitext(f)[1].lower() == extension and os.path.isfile(os.path.join(dirpath, f))]


extensions: list[Extension] = []


def active():
    return [x for x in extensions if x.enabled]
