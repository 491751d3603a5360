"""The standalone UI's fixes from a new user's report, in Debian's Chromium against the real UI
process, the real middleware and the fake container: Generate is disabled while a job runs and
enabled after, Ctrl+Enter starts it, a reload mid-job re-attaches, Interrupt after the end shows how
the job ended, and the page asks no host but loopback (no Google fonts)."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.extension.support.stack import Stack
from tools.local_processes import Service, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATUS = "#sdcloud_progress .sdcloud-status"
GENERATE = "button#sdcloud_generate"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture(scope="module")
def ui_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("standalone-ui")


@pytest.fixture(scope="module")
def ui(backend: Stack, ui_dir: Path) -> Iterator[str]:
    port = free_port()
    command = [
        os.environ.get("SDCLOUD_UI_PYTHON") or sys.executable, "-m", "sdcloud.app",
        "--host", "127.0.0.1", "--port", str(port), "--api-url", backend.api_url,
        "--api-key-file", str(backend.data_dir / "admin-api-key"),
        "--settings-file", str(ui_dir / "ui-settings.json"),  # outputs/ lands beside it
    ]
    process = Service("ui", command, None, ui_dir / "ui.log", env={"GRADIO_ANALYTICS_ENABLED": "False"},
                      ready_line="SD Cloud UI on http://").start().wait_ready(60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def requests_seen() -> list[str]:
    """Every URL any page of this module asked for, checked by the last test."""
    return []


@pytest.fixture
def page(browser, ui: str, requests_seen: list[str]):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.on("request", lambda request: requests_seen.append(request.url))
    page.set_default_timeout(60_000)
    _open(page, ui)
    yield page
    context.close()


def _open(page, url: str | None = None) -> None:  # type: ignore[no-untyped-def]
    if url is None:
        page.reload()
    else:
        page.goto(url)
    # the page-load event fills the checkpoint list and says so in the status line
    page.wait_for_function(
        "() => /checkpoint|Re-attached|Sampling|Done/.test("
        "(document.querySelector('#sdcloud_progress .sdcloud-status') || {}).textContent || '')"
    )


def _wait_status(page, text: str) -> str:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "(t) => ((document.querySelector('#sdcloud_progress .sdcloud-status') || {}).textContent || '').includes(t)",
        arg=text,
    )
    return page.inner_text(STATUS).strip()


def test_ctrl_enter_starts_generate_which_stays_disabled_until_the_job_ends(
    page, backend: Stack, ui_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    backend.configure_container(delay_s=2.0, fail_status=None)
    assert page.get_attribute(GENERATE, "title").startswith("Start a generation")  # a tooltip, no emoji
    page.fill("#sdcloud_prompt textarea", "a red fox in the snow")

    page.press("#sdcloud_prompt textarea", "Control+Enter")
    page.wait_for_function("(sel) => document.querySelector(sel).disabled", arg=GENERATE)
    busy_label = page.inner_text(GENERATE)
    page.click(GENERATE, force=True, no_wait_after=True)  # a second press while it runs: refused visibly
    done = _wait_status(page, "Done")
    page.wait_for_function("(sel) => !document.querySelector(sel).disabled", arg=GENERATE)

    assert busy_label in ("Submitting…", "Queued…", "Running…")
    assert page.inner_text(GENERATE) == "Generate"
    assert done.startswith("Done: 1 image · job ")
    assert page.locator("#sdcloud_gallery img").count() >= 1
    day = dt.date.today().isoformat()
    saved = sorted((ui_dir / "outputs" / "txt2img-images" / day).glob("*.png"))
    assert [p.name.split("-")[0] for p in saved] == ["00000"]  # A1111's naming, in the data folder


def test_generate_is_enabled_again_after_an_error(page, backend: Stack) -> None:  # type: ignore[no-untyped-def]
    backend.configure_container(delay_s=0.0, fail_status=400, fail_detail="height is too large for this GPU")
    try:
        page.fill("#sdcloud_prompt textarea", "will fail")
        page.click(GENERATE)
        _wait_status(page, "failed")
    finally:
        backend.configure_container(fail_status=None)
    page.wait_for_function("(sel) => !document.querySelector(sel).disabled", arg=GENERATE)
    assert page.inner_text(GENERATE) == "Generate"


def test_a_reload_mid_job_re_attaches_and_the_image_appears(page, backend: Stack) -> None:  # type: ignore[no-untyped-def]
    backend.configure_container(delay_s=5.0, fail_status=None)
    page.fill("#sdcloud_prompt textarea", "still here after a reload")
    page.click(GENERATE)
    running = _wait_status(page, "Sampling")
    job_id = running.rsplit(" ", 1)[-1]
    # the fake engine sends a live preview at each step: shown inline while sampling
    page.wait_for_selector("#sdcloud_preview img[src^='data:image/jpeg;base64,']")

    _open(page)  # the reload: a new page, the job still running on the server

    done = _wait_status(page, "Done")
    assert done == f"Done: 1 image · job {job_id}"
    page.wait_for_selector("#sdcloud_gallery img")
    page.wait_for_function("(sel) => !document.querySelector(sel).disabled", arg=GENERATE)
    _open(page)  # once shown, the job is forgotten: the next reload starts clean
    assert "checkpoint" in page.inner_text(STATUS)


def test_interrupt_after_the_end_shows_the_final_state(page, backend: Stack) -> None:  # type: ignore[no-untyped-def]
    backend.configure_container(delay_s=0.0, fail_status=None)
    page.fill("#sdcloud_prompt textarea", "quick one")
    page.click(GENERATE)
    done = _wait_status(page, "Done")

    # every text the status line takes from now on, recorded in the page (no polling to miss one)
    page.evaluate(
        """() => {
          window.__sdcloudSeen = [];
          const root = document.querySelector('#sdcloud_progress');
          new MutationObserver(() => {
            const line = root.querySelector('.sdcloud-status');
            if (line) window.__sdcloudSeen.push(line.textContent.trim());
          }).observe(root, {subtree: true, childList: true, characterData: true});
        }"""
    )
    page.click("#sdcloud_cancel")
    # "Cancelling…" first, then the job's real end, asked from the server; never "Cancelling…" left
    page.wait_for_function(
        """(done) => {
          const seen = window.__sdcloudSeen;
          const at = seen.findIndex((t) => t.includes('Cancelling'));
          return at >= 0 && seen.length > at + 1 && seen[seen.length - 1] === done;
        }""",
        arg=done,
    )
    assert page.inner_text(STATUS).strip() == done


def test_no_request_leaves_loopback(page, requests_seen: list[str]) -> None:  # type: ignore[no-untyped-def]
    # every page of this module, this one included (it is open: its fonts and scripts are loaded)
    assert any(urlsplit(u).path.endswith(".css") for u in requests_seen)
    outside = sorted({u for u in requests_seen if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                      and urlsplit(u).hostname not in LOOPBACK})
    assert outside == []  # no fonts.googleapis.com, no CDN, no analytics
