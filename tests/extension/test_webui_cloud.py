"""SD Cloud inside the WebUI stand-in (A1111 under .venv-a1111, Forge under .venv-forge), with no
local checkpoint, against the REAL middleware and the REAL inference container on the tiny model:
Generate and /sdapi/v1 go to the cloud and come back as the WebUI's own results."""

from __future__ import annotations

import base64
import io
import json
import stat
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from sdcloud.client import SDCloudClient

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CKPT = "tiny-sd15.safetensors"
SAMPLER = [4, "Euler", "Automatic"]  # the built-in Sampler script's args: steps, sampler, schedule type


@pytest.fixture
def cloud(webui, tiny_stack):  # type: ignore[no-untyped-def]
    """The stand-in configured for the stack the way an artist does it: Settings → SD Cloud."""
    from modules import shared

    shared.opts.set("sdcloud_api_url", tiny_stack.api_url)
    shared.opts.set("sdcloud_api_key", tiny_stack.api_key)
    shared.opts.set("sdcloud_default_endpoint", "local")
    yield webui
    shared.state.interrupted = shared.state.skipped = False


def _seed_args(seed: int) -> list:
    return [seed, False, -1, 0.0, 0, 0]


def _args(webui, tab: str = "txt2img", cloud=(True, "local", CKPT), steps: int = 4, seed: int = 1234):  # type: ignore[no-untyped-def]
    return webui.tabs[tab].script_args({"SD Cloud": list(cloud), "Sampler": [steps, "Euler", "Automatic"],
                                       "Seed": _seed_args(seed)})


def _patched_functions_restored() -> None:
    from modules import _standin, processing, sd_models

    assert processing.process_images_inner.__module__ == "modules.processing"
    if _standin.FORGE:
        assert processing.manage_model_and_prompt_cache.__module__ == "modules.processing"
    else:
        assert sd_models.reload_model_weights.__module__ == "modules.sd_models"
    from modules.call_queue import queue_lock

    assert not queue_lock.locked()


def _wait_until_sampling(worker: threading.Thread, deadline: float) -> None:
    """Until this generation samples (the state of a previous one must not count: the WebUI's
    state.begin() would reset an Interrupt or Skip pressed before it)."""
    from modules import shared

    state = shared.state
    while time.monotonic() < deadline and worker.is_alive():
        if "Sampling" in (state.textinfo or "") and state.sampling_step >= 2:
            return
        time.sleep(0.02)
    raise AssertionError(f"the job never started sampling (textinfo {state.textinfo!r})")


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png")) if folder.exists() else []


def test_settings_section_keeps_the_key_out_of_config_json(cloud, tiny_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from modules import shared

    labels = shared.opts.data_labels
    ours = [k for k, v in labels.items() if v.section == ("sdcloud", "SD Cloud")]
    assert ours == ["sdcloud_api_url", "sdcloud_api_key", "sdcloud_default_endpoint", "sdcloud_job_timeout",
                    "sdcloud_request_timeout"]
    assert labels["sdcloud_api_key"].component_args == {"type": "password"}
    assert set(ours) <= set(cloud.settings_components)  # each built as a real gradio component
    config = tmp_path / "config.json"
    shared.opts.save(str(config))
    saved = json.loads(config.read_text())
    assert saved["sdcloud_api_key"] == "" and tiny_stack.api_key not in config.read_text()
    assert tiny_stack.api_key not in shared.opts.dumpjson()
    import os

    settings_file = Path(os.environ["SDCLOUD_UI_SETTINGS"])
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    assert json.loads(settings_file.read_text())["api_key"] == tiny_stack.api_key


def test_txt2img_generate_runs_in_the_cloud(cloud, tiny_stack) -> None:  # type: ignore[no-untyped-def]
    from modules import shared

    outdir = Path(shared.opts.outdir_txt2img_samples)
    grids = Path(shared.opts.outdir_txt2img_grids)
    before, grids_before = _pngs(outdir), _pngs(grids)
    seen: list[tuple[int, int, int, int]] = []
    done = threading.Event()

    def watch() -> None:
        state = shared.state
        while not done.is_set():
            seen.append((state.job_no, state.job_count, state.sampling_step, state.sampling_steps))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        gallery, js, info_html, _ = cloud.txt2img(prompt="a red fox", negative_prompt="blurry", width=64, height=64,
                                                   batch_size=2, script_args=_args(cloud, steps=40))
    finally:
        done.set()
        watcher.join(5)

    assert isinstance(gallery, list), info_html
    info = json.loads(js)
    assert len(gallery) == 3 and info["index_of_first_image"] == 1  # the grid first, as the WebUI shows it
    assert info["all_seeds"] == [1234, 1235]
    assert all("SD Cloud: local/tiny-sd15.safetensors" in t for t in info["infotexts"])
    assert "Steps: 40" in info["infotexts"][1] and "Seed: 1235" in info["infotexts"][2]
    saved = [p for p in _pngs(outdir) if p not in before]
    assert len(saved) == 2
    assert {p.stem.split("-")[1] for p in saved} == {"1234", "1235"}  # <date>/00000-1234.png
    for path in saved:
        with Image.open(path) as image:
            assert "SD Cloud: local/tiny-sd15.safetensors" in image.info["parameters"]
            assert image.size == (64, 64)
    assert len([p for p in _pngs(grids) if p not in grids_before]) == 1
    steps = [s for _, _, s, total in seen if total == 40]
    assert len(set(steps)) >= 2 and steps == sorted(steps), "shared.state moved step by step"
    _patched_functions_restored()


def test_api_txt2img_with_alwayson_scripts_args(cloud) -> None:  # type: ignore[no-untyped-def]
    from modules import shared

    outdir = Path(shared.opts.outdir_txt2img_samples)
    before = _pngs(outdir)
    body = {"prompt": "a lighthouse", "steps": 4, "width": 64, "height": 64, "seed": -1, "sampler_name": "Euler",
            "n_iter": 2, "alwayson_scripts": {"SD Cloud": {"args": [True, "local", CKPT]}}}

    answer = cloud.api.text2imgapi(body)

    info = json.loads(answer["info"])
    assert len(answer["images"]) == 2  # no grid: the API does not save grids unless save_images
    assert info["seed"] != -1 and info["all_seeds"] == [info["seed"], info["seed"] + 1]
    image = Image.open(io.BytesIO(base64.b64decode(answer["images"][0])))
    assert image.size == (64, 64)
    assert "SD Cloud: local/tiny-sd15.safetensors" in info["infotexts"][0]
    assert _pngs(outdir) == before  # save_images defaults to False on the API
    _patched_functions_restored()


def test_img2img_from_the_ui_and_the_api(cloud) -> None:  # type: ignore[no-untyped-def]
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    gallery, js, info_html, _ = cloud.img2img(init, prompt="a red square", width=64, height=64,
                                              denoising_strength=0.5, script_args=_args(cloud, "img2img"))
    assert isinstance(gallery, list) and len(gallery) == 1, info_html
    info = json.loads(js)
    assert "Denoising strength: 0.5" in info["infotexts"][0]
    assert "SD Cloud: local/tiny-sd15.safetensors" in info["infotexts"][0]

    buf = io.BytesIO()
    init.save(buf, format="PNG")
    answer = cloud.api.img2imgapi({"prompt": "a red square", "steps": 4, "width": 64, "height": 64, "seed": 5,
                                   "init_images": [base64.b64encode(buf.getvalue()).decode()],
                                   "alwayson_scripts": {"sd cloud": {"args": [True, "local", CKPT]}}})
    assert len(answer["images"]) == 1 and json.loads(answer["info"])["all_seeds"] == [5]
    _patched_functions_restored()


def test_refused_fields_surface_as_messages(cloud) -> None:  # type: ignore[no-untyped-def]
    # Refused here by the contract: hypernetworks are not applied by the engine.
    *_, html = cloud.txt2img(prompt="a fox <hypernet:foxy:0.8>", width=64, height=64, script_args=_args(cloud))
    assert "SD Cloud cannot run this generation" in html and "hypernet" in html.lower()
    _patched_functions_restored()

    # Refused by the middleware, which alone knows the library: the same kind of message.
    *_, html = cloud.txt2img(prompt="a fox <lora:foxy:0.8>", width=64, height=64, script_args=_args(cloud))
    assert "SD Cloud cannot run this generation" in html and "unknown LoRA" in html and "foxy" in html
    _patched_functions_restored()

    with pytest.raises(Exception, match="restore_faces"):
        cloud.api.text2imgapi({"prompt": "x", "steps": 4, "width": 64, "height": 64, "restore_faces": True,
                               "alwayson_scripts": {"SD Cloud": {"args": [True, "local", CKPT]}}})
    _patched_functions_restored()

    *_, html = cloud.txt2img(prompt="x", width=64, height=64, script_args=_args(cloud, cloud=(True, "local", "")))
    assert "pick a cloud checkpoint" in html
    _patched_functions_restored()


def test_errors_reach_the_page_and_leave_nothing_patched(cloud, tiny_stack, refused_url) -> None:  # type: ignore[no-untyped-def]
    from modules import shared

    shared.opts.set("sdcloud_api_url", refused_url)
    try:
        *_, html = cloud.txt2img(prompt="x", width=64, height=64, script_args=_args(cloud))
    finally:
        shared.opts.set("sdcloud_api_url", tiny_stack.api_url)
    assert "<div class='error'>RuntimeError: SD Cloud:" in html and "connect" in html.lower()
    _patched_functions_restored()
    # the next generation, Cloud off, is the WebUI's own again (and fails as it does with no checkpoint)
    *_, html = cloud.txt2img(prompt="x", width=64, height=64, script_args=_args(cloud, cloud=(False, "", "")))
    assert "FileNotFoundError" in html or "ValueError: You do not have any model" in html


def test_interrupt_stops_the_cloud_job(cloud, tiny_stack) -> None:  # type: ignore[no-untyped-def]
    from modules import shared

    client = SDCloudClient(tiny_stack.api_url, tiny_stack.api_key)
    result: dict = {}

    def generate() -> None:
        result["out"] = cloud.txt2img(prompt="a long job", width=64, height=64, n_iter=16,
                                      script_args=_args(cloud, steps=150))

    worker = threading.Thread(target=generate)
    shared.state.textinfo = None
    worker.start()
    deadline = time.monotonic() + 120
    _wait_until_sampling(worker, deadline)
    shared.state.interrupt()  # what the Interrupt button and /sdapi/v1/interrupt do
    worker.join(60)
    assert not worker.is_alive()

    gallery, js, info_html, _ = result["out"]
    job = client.list_inferences(limit=1).items[0]
    assert job.status == "cancelled" and job.prompt == "a long job" and job.raw["result"]["interrupted"] is True
    assert isinstance(gallery, list), info_html
    # partial: the images sampled before the interrupt reached the GPU come back, in the gallery
    assert 1 <= len(job.images) < 16
    assert len(gallery) == len(job.images) + (1 if len(job.images) > 1 else 0)
    _patched_functions_restored()


def test_skip_ends_the_current_batch_and_goes_on(cloud, tiny_stack) -> None:  # type: ignore[no-untyped-def]
    from modules import shared

    client = SDCloudClient(tiny_stack.api_url, tiny_stack.api_key)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(out=cloud.txt2img(
        prompt="skip me", width=128, height=128, n_iter=2, script_args=_args(cloud, steps=150))))
    shared.state.textinfo = None
    worker.start()
    deadline = time.monotonic() + 120
    _wait_until_sampling(worker, deadline)
    shared.state.skip()  # the Skip button
    # after the skip, the next iteration's 150 steps still run in full: minutes on a loaded CPU
    worker.join(240)
    assert not worker.is_alive(), "the generation did not end within 240 s of the skip"
    gallery, js, info_html, _ = result["out"]
    job = client.list_inferences(limit=1).items[0]
    assert job.status == "succeeded" and job.prompt == "skip me", info_html
    assert len(job.images) == 2  # the skipped iteration's image so far, then the next one in full
    # what the container wrote (as a SageMaker endpoint writes result.json to S3): a batch was cut
    # short (the one sampling when the skip arrived: 0, or 1 on a slow, loaded machine)
    result_json = json.loads((tiny_stack.blob_dir / "jobs" / job.id / "result.json").read_text())
    assert result_json["skipped_iterations"] in ([0], [1]), result_json
    assert shared.state.skipped is False
    _patched_functions_restored()


def test_send_to_txt2img_restores_the_cloud_choice(cloud) -> None:  # type: ignore[no-untyped-def]
    infotext = ("a red fox\nNegative prompt: blurry\nSteps: 4, Sampler: Euler, Seed: 1, Size: 64x64, "
                "Model: tiny-sd15, SD Cloud: local/tiny-sd15.safetensors")
    fields = cloud.tabs["txt2img"].paste_fields
    updates = cloud.paste("txt2img", infotext)
    values = {id(component): update.get("value") for (component, _), update in zip(fields, updates, strict=True)}
    script = cloud.tabs["txt2img"].script("SD Cloud")
    enabled, endpoint, checkpoint, _vae = script.controls
    assert values[id(enabled)] is True
    assert values[id(endpoint)] == "local" and values[id(checkpoint)] == CKPT
    updates = cloud.paste("txt2img", "a fox\nSteps: 4, Sampler: Euler, Seed: 1, Size: 64x64")
    values = {id(component): update.get("value") for (component, _), update in zip(fields, updates, strict=True)}
    assert values[id(enabled)] is False


def test_live_previews_reach_the_webuis_preview_slot(cloud) -> None:  # type: ignore[no-untyped-def]
    from modules import shared

    shared.opts.set("show_progress_every_n_steps", 5)
    state = shared.state
    shown: list[tuple[int, object]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if state.current_image is not None:
                shown.append((state.current_image_sampling_step, state.current_image))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        gallery, _js, info_html, _ = cloud.txt2img(prompt="a red fox", width=64, height=64,
                                                    script_args=_args(cloud, steps=60))
    finally:
        done.set()
        watcher.join(5)
        shared.opts.set("show_progress_every_n_steps", 10)
    assert isinstance(gallery, list), info_html
    assert shown, "no live preview reached shared.state.current_image"
    step, image = shown[-1]
    assert step > 0 and step % 5 == 0
    assert image.size == (8, 8)  # latent resolution of a 64x64 image, as the WebUI's cheap preview
    _patched_functions_restored()
