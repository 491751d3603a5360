"""The harness page (the Cloud accordion over the stand-in WebUI's txt2img flow, and the Cloud tab,
in one gr.Blocks under gradio 3.41.2) driven from Chromium against the REAL middleware and the REAL
inference container on the tiny model: switch Cloud on, Generate, the image appears, progress
moved; then the Cloud tab shows the job in its history with a thumbnail, a click on a sorted table
opens the job in that row, the endpoint with its state, the models, and Send to txt2img."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sdcloud.client import SDCloudClient
from tools.local_processes import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.e2e]

CKPT = "tiny-sd15.safetensors"
ACC = "#script_txt2img_sd_cloud"
JOBS = "#sdcloud_cloud_jobs"


@pytest.fixture(scope="module")
def harness_url(webui, tiny_stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from modules import shared

    from tests.extension.support.harness import build_harness

    shared.opts.set("sdcloud_api_url", tiny_stack.api_url)
    shared.opts.set("sdcloud_api_key", tiny_stack.api_key)
    shared.opts.set("sdcloud_default_endpoint", "local")
    harness = build_harness(webui)
    port = free_port()
    harness.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        harness.demo.close()


def _cell(page, table: str, row: int, column: int) -> str:  # type: ignore[no-untyped-def]
    return page.inner_text(f"{table} tbody tr:nth-child({row}) td:nth-child({column})").strip()


def test_generate_in_the_cloud_then_find_it_in_the_cloud_tab(browser, harness_url, tiny_stack) -> None:  # type: ignore[no-untyped-def]
    client = SDCloudClient(tiny_stack.api_url, tiny_stack.api_key)
    for prompt in ("aaa made first", "zzz made second"):  # history order differs from prompt order
        job = client.submit_inference("txt2img", {"prompt": prompt, "steps": 2, "width": 64, "height": 64},
                                      CKPT, "local")
        client.wait_for(job.id, timeout=120)

    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(harness_url)

    # the Cloud accordion: switch Cloud on, Refresh shows the endpoint's state and the Model hash
    page.click(f"{ACC}_accordion .label-wrap")
    page.check(f"{ACC}_enabled input[type=checkbox]")
    page.click(f"{ACC}_refresh")
    page.wait_for_function(
        f"() => (document.querySelector('{ACC}_endpoint_state') || {{}}).textContent?.includes('local: in service')")
    page.wait_for_function(
        f"() => (document.querySelector('{ACC}_model_hash') || {{}}).textContent?.includes('Model hash:')")
    assert page.input_value(f"{ACC}_checkpoint input") == CKPT

    page.fill("#txt2img_prompt textarea", "mmm harness fox")
    page.click("#txt2img_generate")
    steps_seen: list[int] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        bar = page.query_selector("#txt2img_progress .harness-progress")
        if bar is not None:
            if bar.get_attribute("data-done"):
                break
            step = bar.get_attribute("data-step")
            if step is not None and (not steps_seen or steps_seen[-1] != int(step)):
                steps_seen.append(int(step))
        if page.query_selector("#txt2img_progress .error"):
            break
        page.wait_for_timeout(50)
    assert page.query_selector("#txt2img_progress [data-done]"), page.inner_text("#txt2img_progress")
    assert len({s for s in steps_seen if s > 0}) >= 2, f"the progress never moved: {steps_seen}"
    page.wait_for_selector("#txt2img_gallery img")
    assert "SD Cloud: local/tiny-sd15.safetensors" in page.input_value("#txt2img_info textarea")
    page.uncheck(f"{ACC}_enabled input[type=checkbox]")  # Send to txt2img must turn it back on

    # the Cloud tab: the job in the history, with its thumbnail
    page.click("#tabs > .tab-nav button:has-text('Cloud')")
    page.click(f"{JOBS}_refresh")
    table = f"{JOBS}_table"
    page.wait_for_function(
        f"() => (document.querySelector('{table} tbody tr') || {{}}).textContent?.includes('mmm harness fox')")
    page.wait_for_selector(f"{JOBS}_thumbs img")
    newest_id = _cell(page, table, 1, 8)

    # sort by Prompt, then click the top row's Prompt cell: the job in THAT row opens
    page.click(f"{table} thead th:nth-child(5) .sort-button")
    page.wait_for_function(
        f"() => !(document.querySelector('{table} tbody tr td:nth-child(5)') || {{}})"
        ".textContent?.includes('mmm harness fox')")
    top_prompt, top_id = _cell(page, table, 1, 5), _cell(page, table, 1, 8)
    assert top_id != newest_id
    page.click(f"{table} tbody tr:nth-child(1) td:nth-child(5)")
    page.wait_for_function(
        f"() => (document.querySelector('{JOBS}_job_id textarea') || {{}}).value === '{top_id}'")
    page.wait_for_function(
        f"() => (document.querySelector('{JOBS}_infotext textarea') || {{}}).value?.startsWith({top_prompt!r})")
    # a cell many rows share (Status) in the sorted table: still the job of that row
    second_id = _cell(page, table, 2, 8)
    page.click(f"{table} tbody tr:nth-child(2) td:nth-child(2)")
    page.wait_for_function(
        f"() => (document.querySelector('{JOBS}_job_id textarea') || {{}}).value === '{second_id}'")

    # a thumbnail opens its job; Send to txt2img then fills txt2img with its prompt and Cloud choice
    page.click(f"{JOBS}_thumbs .thumbnail-item >> nth=0")
    page.wait_for_function(
        f"() => (document.querySelector('{JOBS}_job_id textarea') || {{}}).value === '{newest_id}'")
    page.wait_for_function(
        f"() => (document.querySelector('{JOBS}_infotext textarea') || {{}}).value?.startsWith('mmm harness fox')")
    page.click(f"{JOBS}_send_txt2img")
    page.click("#tabs > .tab-nav button:has-text('txt2img')")
    page.wait_for_function(
        "() => (document.querySelector('#txt2img_prompt textarea') || {}).value === 'mmm harness fox'")
    page.wait_for_function(
        f"() => (document.querySelector('{ACC}_enabled input[type=checkbox]') || {{}}).checked === true")
    assert page.input_value(f"{ACC}_checkpoint input") == CKPT

    # Endpoints and Models pages
    page.click("#tabs > .tab-nav button:has-text('Cloud')")
    page.click("#sdcloud_cloud_tabs .tab-nav button:has-text('Endpoints')")
    page.wait_for_function(
        "() => (document.querySelector('#sdcloud_cloud_endpoints_table tbody') || {}).textContent"
        "?.includes('in service')")
    assert _cell(page, "#sdcloud_cloud_endpoints_table", 1, 1) == "local"
    page.click("#sdcloud_cloud_tabs .tab-nav button:has-text('Models')")
    page.wait_for_function(
        f"() => (document.querySelector('#sdcloud_cloud_models_table tbody') || {{}}).textContent?.includes('{CKPT}')")
    sha = next(m.sha256 for m in client.list_models() if m.name == CKPT)
    assert sha[:10] in page.inner_text("#sdcloud_cloud_models_table tbody")
    page.screenshot(path="/tmp/sdcloud_cloud_harness.png", full_page=True)
    context.close()
