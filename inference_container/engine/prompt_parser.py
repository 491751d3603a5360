"""A1111's prompt emphasis grammar: ``(word)``, ``[word]``, ``(word:1.3)``, escapes and ``BREAK``.

The WebUI turns a prompt into ``(text, weight)`` runs before tokenizing; the text encoder scales
each token's embedding by its run's weight. Artists rely on the exact numbers (an infotext copied
from the WebUI must give the same image), so this follows the WebUI's behaviour to the float,
including its quirks:

- weights multiply from the innermost bracket outwards, in the order brackets close, so
  ``((house:1.3))`` is ``1.3 * 1.1 * 1.1`` evaluated left to right (``1.5730000000000004``);
- brackets left open at the end of the prompt still apply, from the text after them to the end;
- a closing bracket with no opener, or ``:1.3)`` outside any ``(``, is plain text;
- ``BREAK`` (a whole word, upper case) becomes the marker run ``("BREAK", -1.0)``. Inside
  brackets the marker's weight is multiplied like any run, which is what the WebUI does too (its
  tokenizer then no longer sees a break, only the word).
"""

from __future__ import annotations

import re

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK = "BREAK"
BREAK_WEIGHT = -1.0

# One token per match. Order matters: escapes first, then brackets, then an explicit weight
# closing a round bracket (``:1.3)``), then runs of ordinary characters, then a lone colon.
_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]            # escaped bracket or backslash
  | \\                      # a lone backslash (dropped, as in the WebUI)
  | \(
  | \[
  | :\s*(?P<weight>[+-]?[.\d]+)\s*\)
  | \)
  | \]
  | [^\\()\[\]:]+
  | :
    """,
    re.VERBOSE,
)
_BREAK_SPLIT = re.compile(r"\s*\bBREAK\b\s*")


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into runs of ``(text, weight)``; adjacent runs of equal weight are merged.

    >>> parse_prompt_attention("an (important) word")
    [('an ', 1.0), ('important', 1.1), (' word', 1.0)]
    """
    runs: list[list] = []  # [text, weight], mutable while brackets close
    round_open: list[int] = []  # index into runs where each open "(" started
    square_open: list[int] = []

    def scale_from(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] *= factor

    def add_plain(chunk: str) -> None:
        for i, part in enumerate(_BREAK_SPLIT.split(chunk)):
            if i > 0:
                runs.append([BREAK, BREAK_WEIGHT])
            runs.append([part, 1.0])

    for match in _TOKEN.finditer(text):
        token = match.group(0)
        weight = match.group("weight")
        if token.startswith("\\"):
            runs.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(runs))
        elif token == "[":
            square_open.append(len(runs))
        elif weight is not None and round_open:
            factor = _to_float(weight)
            if factor is None:
                # The WebUI crashes on a weight like "1.2.3"; keeping it as text is kinder.
                add_plain(token)
            else:
                scale_from(round_open.pop(), factor)
        elif token == ")" and round_open:
            scale_from(round_open.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_open:
            scale_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            add_plain(token)

    # Unclosed brackets: the WebUI applies them in the order they were opened.
    for start in round_open:
        scale_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        scale_from(start, SQUARE_MULTIPLIER)

    if not runs:
        return [("", 1.0)]

    merged: list[list] = [runs[0]]
    for run in runs[1:]:
        if run[1] == merged[-1][1]:
            merged[-1][0] += run[0]
        else:
            merged.append(run)
    return [(str(t), float(w)) for t, w in merged]


def _to_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None
