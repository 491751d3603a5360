"""The middleware's /v1/docs renders in a browser with no internet: every asset is served by the
middleware itself (Chromium here reaches nothing else)."""

from __future__ import annotations

import pytest

from tests.extension.support.stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_api_docs_render_offline(browser, backend: Stack) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.on("pageerror", lambda e: console.append(str(e)))
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(backend.api_url) else outside.append(r.url))
    try:
        page.goto(f"{backend.api_url}/v1/docs")
        try:
            page.wait_for_selector(".opblock", timeout=30_000)
        except Exception:
            raise AssertionError(f"docs did not render: {console} {page.content()[:3000]}") from None
        assert page.locator(".opblock").count() >= 8
        assert "create_inference" in page.content() or "/v1/inferences" in page.content()
    finally:
        page.close()
    assert outside == []
