"""Prompt styles, applied the WebUI's way: a style with {prompt} wraps it, otherwise it is appended."""

from __future__ import annotations

from typing import NamedTuple


class PromptStyle(NamedTuple):
    name: str
    prompt: str
    negative_prompt: str
    path: str | None = None


def merge_prompts(style_prompt: str, prompt: str) -> str:
    if "{prompt}" in style_prompt:
        return style_prompt.replace("{prompt}", prompt)
    parts = filter(None, (prompt.strip(), style_prompt.strip()))
    return ", ".join(parts)


def apply_styles_to_prompt(prompt, styles):
    for style in styles:
        prompt = merge_prompts(style, prompt)
    return prompt


class StyleDatabase:
    def __init__(self):
        self.styles: dict[str, PromptStyle] = {}

    def apply_styles_to_prompt(self, prompt, styles):
        return apply_styles_to_prompt(prompt, [self.styles.get(x, PromptStyle(x, "", "")).prompt for x in styles])

    def apply_negative_styles_to_prompt(self, prompt, styles):
        return apply_styles_to_prompt(
            prompt, [self.styles.get(x, PromptStyle(x, "", "")).negative_prompt for x in styles]
        )
