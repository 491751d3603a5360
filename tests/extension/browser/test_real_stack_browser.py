"""The whole local stack as `make demo` runs it — the real inference container on the tiny model,
the middleware and the UI — driven from Chromium: type a prompt, Generate, watch the real
sampling progress, get a PNG whose infotext the engine wrote."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tools.local_processes import LocalStack, backend_python, make_tiny_checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.e2e]

STATUS = "#sdcloud_progress .sdcloud-status"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    import os

    if not os.access(backend_python(), os.X_OK):
        pytest.skip(f"backend environment not built ({backend_python()})")
    models = tmp_path_factory.mktemp("models")
    checkpoint = make_tiny_checkpoint(models / "tiny-sd15.safetensors")
    local = LocalStack(data_dir=tmp_path_factory.mktemp("data"), checkpoint=checkpoint,
                       container_env={"SDCLOUD_TORCH_THREADS": "1"})
    with local:
        yield local


def test_generate_on_the_real_engine_from_the_browser(browser, stack: LocalStack) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(stack.ui_url)
    page.wait_for_function(
        "() => (document.querySelector('#sdcloud_progress .sdcloud-status') || {}).textContent?.includes('checkpoint')"
    )
    page.fill("#sdcloud_prompt textarea", "a lighthouse at dusk, (oil painting:1.2)")
    page.fill("#sdcloud_width input[type=number]", "128")
    page.press("#sdcloud_width input[type=number]", "Enter")
    page.fill("#sdcloud_height input[type=number]", "128")
    page.press("#sdcloud_height input[type=number]", "Enter")
    page.click("#sdcloud_generate")

    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = page.inner_text(STATUS).strip()
        if not seen or seen[-1] != text:
            seen.append(text)
        if "Done" in text or "rror" in text:
            break
        page.wait_for_timeout(50)
    assert any("Sampling: step" in s for s in seen), f"no sampling progress was shown: {seen}"
    assert "Done" in seen[-1], seen
    page.wait_for_selector("#sdcloud_gallery img")
    infotext = page.input_value("#sdcloud_infotext textarea")
    assert infotext.startswith("a lighthouse at dusk, (oil painting:1.2)\n")
    assert "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras" in infotext
    assert "Size: 128x128" in infotext and "Model: tiny-sd15" in infotext
    page.screenshot(path="/tmp/sdcloud_real_stack.png", full_page=True)
    context.close()
