"""A check on a parsed request body that no UTF-8 consumer downstream could survive.

JSON's ``\\ud800`` escapes decode to lone UTF-16 surrogates, which are not text: the tokenizer,
the PNG text chunk and the response encoder all fail on them. The contract refuses them inside
``payload``; this looks at the whole document (ids, model names, keys) without recursion, since
the body may be deep (its depth is bounded, but by then it is already parsed).
"""

from __future__ import annotations

import re
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate_path(document: Any) -> str | None:
    """The dotted path of the first string (or key) holding a lone surrogate, e.g.
    ``payload.prompt`` or ``models.loras[0].name``; None when there is none."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                return path or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if _LONE_SURROGATE.search(str(key)):
                    return _LONE_SURROGATE.sub("\ufffd", child)
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{n}]", item) for n, item in enumerate(value))
    return None
