"""Playwright + Debian Chromium against the real standalone UI, the real middleware and the fake
container: type a prompt, press Generate, watch the progress line move, see the image and its
infotext."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdcloud.client import SDCloudClient
from tests.extension.support.stack import CHECKPOINT, Stack
from tools.local_processes import Service, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOT = Path("/tmp/sdcloud_ui.png")
STATUS = "#sdcloud_progress .sdcloud-status"


def ui_python() -> str:
    """The UI's Python: this one, or SDCLOUD_UI_PYTHON, e.g. .venv-forge/bin/python to drive the UI
    under Forge's gradio 4 with this environment's playwright."""
    return os.environ.get("SDCLOUD_UI_PYTHON") or sys.executable


def _ui_process(backend: Stack, workdir: Path, port: int) -> Service:
    return Service(
        "ui",
        [
            ui_python(),
            "-m",
            "sdcloud.app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--api-url",
            backend.api_url,
            "--api-key-file",
            str(backend.data_dir / "admin-api-key"),
            "--settings-file",
            str(workdir / "ui-settings.json"),
            "--outputs-dir",
            str(workdir / "outputs"),
        ],
        None,
        workdir / "ui.log",
        env={"GRADIO_ANALYTICS_ENABLED": "False"},
        ready_line="SD Cloud UI on http://",
    )


@pytest.fixture(scope="module")
def ui(backend: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = _ui_process(backend, tmp_path_factory.mktemp("ui"), port).start().wait_ready(60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture
def page(browser, ui: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(ui)
    # the page-load event fills the checkpoint list and says so in the status line
    page.wait_for_function(
        "() => (document.querySelector('#sdcloud_progress .sdcloud-status') || {}).textContent?.includes('checkpoint')"
    )
    yield page
    context.close()


def _follow_status(page, until: str, deadline_s: float = 90.0) -> list[str]:  # type: ignore[no-untyped-def]
    """Each distinct text of the status line until it contains `until`."""
    seen: list[str] = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        text = page.inner_text(STATUS).strip()
        if not seen or seen[-1] != text:
            seen.append(text)
        if until in text:
            return seen
        page.wait_for_timeout(50)
    raise AssertionError(f"status never said {until!r}; it said {seen}")


def test_generate_shows_progress_image_and_infotext(page, backend: Stack) -> None:  # type: ignore[no-untyped-def]
    backend.configure_container(delay_s=2.0, fail_status=None)
    assert "1 checkpoint" in page.inner_text(STATUS)

    page.fill("#sdcloud_prompt textarea", "a red fox in the snow")
    page.fill("#sdcloud_negative_prompt textarea", "blurry")
    page.click("#sdcloud_generate")
    seen = _follow_status(page, "Done")

    sampling = [s for s in seen if "Sampling: step" in s]
    assert len(sampling) >= 2, f"the progress line should move through sampling steps: {seen}"
    assert "/20" in sampling[0]
    page.wait_for_selector("#sdcloud_gallery img")
    assert page.locator("#sdcloud_gallery img").count() >= 1
    infotext = page.input_value("#sdcloud_infotext textarea")
    assert infotext.startswith("a red fox in the snow")
    assert "Negative prompt: blurry" in infotext and "Steps: 20" in infotext
    assert "Traceback" not in page.content()
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_failed_generation_shows_a_readable_message(page, backend: Stack) -> None:  # type: ignore[no-untyped-def]
    backend.configure_container(delay_s=0.0, fail_status=400, fail_detail="height is too large for this GPU")
    try:
        page.fill("#sdcloud_prompt textarea", "will fail")
        page.click("#sdcloud_generate")
        seen = _follow_status(page, "failed")
    finally:
        backend.configure_container(fail_status=None)

    assert "Generation failed" in seen[-1] and "height is too large" in seen[-1]
    assert page.locator("#sdcloud_progress .sdcloud-status-error").count() == 1
    assert "Traceback" not in page.content()


def test_interrupt_cancels_the_running_job(page, backend: Stack) -> None:  # type: ignore[no-untyped-def]
    # long enough that a loaded machine still sees "Sampling" and cancels before the job ends; the
    # cancel cuts it short, and the next test's configure_container ends the fake's wait anyway
    backend.configure_container(delay_s=12.0, fail_status=None)
    page.fill("#sdcloud_prompt textarea", "to be interrupted")
    page.click("#sdcloud_generate")
    _follow_status(page, "Sampling")

    page.click("#sdcloud_cancel")
    seen = _follow_status(page, "Interrupted")

    # Like the WebUI's Interrupt: the image sampled so far comes back, in the gallery.
    assert seen[-1].startswith("Interrupted: 1 partial image · job ")
    page.wait_for_selector("#sdcloud_gallery img")
    job_id = seen[-1].rsplit(" ", 1)[-1]
    job = SDCloudClient(backend.api_url, backend.api_key).get_inference(job_id)
    assert job.status == "cancelled" and len(job.images) == 1


def test_api_key_never_reaches_the_page(page, backend: Stack) -> None:  # type: ignore[no-untyped-def]
    page.click("#sdcloud_tabs button:has-text('Settings')")
    page.wait_for_selector("#sdcloud_settings_key_status textarea")

    assert page.input_value("#sdcloud_settings_api_key input") == ""
    # the key came with --api-key-file: in use, but not in the settings file
    assert page.input_value("#sdcloud_settings_key_status textarea") == "key given at start-up (not saved)"
    assert backend.api_key not in page.content()


def test_jobs_tab_reopens_a_finished_job_and_offers_its_files(page, backend: Stack) -> None:  # type: ignore[no-untyped-def]
    backend.configure_container(delay_s=0.0, fail_status=None)
    client = SDCloudClient(backend.api_url, backend.api_key)
    payload = {"prompt": "a lighthouse at dusk", "steps": 4, "width": 64, "height": 64}
    job = client.wait_for(client.submit_inference("txt2img", payload, CHECKPOINT).id, timeout=120)

    page.click("#sdcloud_tabs button:has-text('Jobs')")
    page.click("#sdcloud_jobs_refresh")
    table = page.locator("#sdcloud_jobs_table")
    # gradio draws a hidden sizing copy of the table first: the clickable cell is the last match
    table.get_by_text(job.id, exact=True).last.click()  # selecting the row opens the job
    page.wait_for_selector("#sdcloud_jobs_gallery img")
    page.wait_for_function(
        "() => document.querySelector('#sdcloud_jobs_infotext textarea')?.value.includes('Steps: 4')"
    )
    page.click("#sdcloud_jobs_download")
    page.wait_for_function(
        "() => (document.querySelector('#sdcloud_jobs_status .sdcloud-status') || {}).textContent?.includes('ready to download')"
    )

    assert page.input_value("#sdcloud_jobs_job_id textarea") == job.id
    assert page.input_value("#sdcloud_jobs_infotext textarea").startswith("a lighthouse at dusk")
    assert page.locator("#sdcloud_jobs_gallery img").count() == len(job.images)
    assert page.locator("#sdcloud_jobs_files").get_by_text(".png").count() >= 1
    assert "Traceback" not in page.content()


def test_ui_exits_on_sigterm_after_a_browser_left_mid_generation(
    browser, backend: Stack, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    backend.configure_container(delay_s=1.5, fail_status=None)
    port = free_port()
    process = _ui_process(backend, tmp_path, port).start().wait_ready(60)
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}")
        page.wait_for_function(
            "() => (document.querySelector('#sdcloud_progress .sdcloud-status') || {}).textContent?.includes('checkpoint')"
        )
        page.fill("#sdcloud_prompt textarea", "left behind")
        page.click("#sdcloud_generate")
        _follow_status(page, "Sampling")
        context.close()  # the artist closes the tab while the job runs
    finally:
        code = process.stop(signal.SIGTERM, timeout=30)

    assert code == 0, process.output[-2000:]
    assert "SD Cloud UI stopped" in process.output
