"""A1111 emphasis grammar, pinned against the WebUI's own examples and edge cases."""

from __future__ import annotations

import pytest

from inference_container.engine.prompt_parser import parse_prompt_attention

CASES = [
    # The examples from the WebUI's own docstring (modules/prompt_parser.py).
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
    # Empty prompt.
    ("", [("", 1.0)]),
    # Square brackets divide by 1.1; nesting multiplies.
    ("[word]", [("word", 1 / 1.1)]),
    ("[[a]]", [("a", (1 / 1.1) * (1 / 1.1))]),
    ("((a))", [("a", 1.1 * 1.1)]),
    ("[(a)]", [("a", 1.1 * (1 / 1.1))]),
    # Explicit weights, with spaces and signs.
    ("(word:1.3)", [("word", 1.3)]),
    ("(word: 0.5 )", [("word", 0.5)]),
    ("(word:-1)", [("word", -1.0)]),
    ("(word:+.5)", [("word", 0.5)]),
    ("((word:1.3))", [("word", 1.3 * 1.1)]),
    ("((word):2)", [("word", 1.1 * 2.0)]),
    # Escapes.
    ("\\(a\\)", [("(a)", 1.0)]),
    ("\\[a\\]", [("[a]", 1.0)]),
    ("a \\\\ b", [("a \\ b", 1.0)]),
    ("(\\(x\\))", [("(x)", 1.1)]),
    # A lone backslash before an ordinary character is dropped, as in the WebUI.
    ("a\\b", [("ab", 1.0)]),
    # Unbalanced: stray closers are text, openers close at the end in opening order.
    ("a)", [("a)", 1.0)]),
    ("a]", [("a]", 1.0)]),
    ("[unbalanced", [("unbalanced", 1 / 1.1)]),
    ("((a", [("a", 1.1 * 1.1)]),
    ("a (b [c", [("a ", 1.0), ("b ", 1.1), ("c", 1.1 * (1 / 1.1))]),
    # A weight with no open bracket is plain text, and so is a colon.
    ("a:1.5)", [("a:1.5)", 1.0)]),
    ("photo: a cat", [("photo: a cat", 1.0)]),
    ("(a:b)", [("a:b", 1.1)]),
    # BREAK is a whole upper-case word; surrounding spaces are eaten.
    ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ("aBREAK b", [("aBREAK b", 1.0)]),
    ("a break b", [("a break b", 1.0)]),
    ("BREAK", [("", 1.0), ("BREAK", -1.0), ("", 1.0)]),
    (
        "a BREAK b BREAK c",
        [("a", 1.0), ("BREAK", -1.0), ("b", 1.0), ("BREAK", -1.0), ("c", 1.0)],
    ),
    ("(a) BREAK b", [("a", 1.1), ("", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    # Inside brackets the marker's weight is scaled too (WebUI quirk kept on purpose).
    ("(a BREAK b)", [("a", 1.1), ("BREAK", -1.1), ("b", 1.1)]),
    # Adjacent runs of equal weight merge, even across brackets.
    ("(a)(b) c", [("ab", 1.1), (" c", 1.0)]),
    ("(a:1.1)(b)", [("ab", 1.1)]),
    # Brackets with nothing inside change nothing.
    ("a () b", [("a  b", 1.0)]),
    ("[]", [("", 1.0)]),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_parse_prompt_attention(text: str, expected: list[tuple[str, float]]) -> None:
    assert parse_prompt_attention(text) == expected


def test_result_is_list_of_str_float_tuples() -> None:
    result = parse_prompt_attention("a (b:2) [c]")
    assert all(isinstance(t, str) and isinstance(w, float) for t, w in result)
    assert all(isinstance(run, tuple) for run in result)


def test_weight_multiplication_order_matches_the_webui_to_the_float() -> None:
    # ":1.3)" closes the innermost "(", then each ")" in turn: (1.3 * 1.1) * 1.1, not 1.3 * 1.21.
    (_, weight) = parse_prompt_attention("(((house:1.3)))")[0]
    assert weight == (1.3 * 1.1) * 1.1 == 1.5730000000000004


def test_malformed_weight_is_kept_as_text_instead_of_crashing() -> None:
    # The WebUI raises ValueError on float("1.2.3"); we keep the text and let the "(" close at the end.
    assert parse_prompt_attention("(a:1.2.3)") == [("a:1.2.3)", 1.1)]


def test_text_is_preserved_apart_from_brackets_and_escapes() -> None:
    prompt = "masterpiece, (best quality:1.2), [lowres], 1girl, \\(cosplay\\)"
    joined = "".join(t for t, _ in parse_prompt_attention(prompt))
    assert joined == "masterpiece, best quality, lowres, 1girl, (cosplay)"
