"""The gradio builders under the WebUI's pinned gradio, and the handlers behind them, driven with a
fake of our client interface (tests/extension/support/fake_client.py)."""

from __future__ import annotations

import html
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from sdcloud import limits  # noqa: E402
from sdcloud.app import parse_args, startup_settings  # noqa: E402
from sdcloud.errors import AuthError, FieldError, ValidationFailed  # noqa: E402
from sdcloud.records import Job  # noqa: E402
from sdcloud.samplers import SAMPLERS, SCHEDULERS  # noqa: E402
from sdcloud.settings import ClientProvider, Settings, SettingsStore  # noqa: E402
from sdcloud.ui import build_generate_tab, build_jobs_tab, build_settings_tab  # noqa: E402
from sdcloud.ui.connection import KEY_SAVED, check_connection, save_connection  # noqa: E402
from sdcloud.ui.generate_tab import refresh_choices  # noqa: E402
from sdcloud.ui.generation import (  # noqa: E402
    GenerateForm,
    InvalidInput,
    build_payload,
    cancel_generation,
    cancelling_status,
    run_generation,
)
from sdcloud.ui.history import job_id_at, open_job, show_history  # noqa: E402
from sdcloud.ui.standalone import build_standalone  # noqa: E402
from tests.extension.conftest import API_KEY  # noqa: E402
from tests.extension.support.fake_client import FakeClient, RecordingProgress, success_timeline  # noqa: E402
from tests.extension.support.jobs import job_json  # noqa: E402
from tests.extension.support.scripted_server import Reply, ScriptedServer  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / ".." / "shared" / "webui" / "a1111-v1.10.1.json"


def text_of(status_html: str) -> str:
    """The status line as a person reads it (tags stripped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", status_html))


def _config_text(demo: Any) -> str:
    # default=str as gradio itself serves /config: gradio 4 puts callables (gr.State's
    # delete_callback) in the config and renders them with str().
    return json.dumps(demo.get_config_file(), default=str)


def test_standalone_builds_all_tabs_without_leaking_the_key(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "s.json", overrides=Settings("http://127.0.0.1:9", API_KEY))

    demo = build_standalone(store, outputs_dir=tmp_path / "out")

    config = demo.get_config_file()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    for elem_id in (
        "sdcloud_prompt",
        "sdcloud_generate",
        "sdcloud_progress",
        "sdcloud_gallery",
        "sdcloud_infotext",
        "sdcloud_seed",
        "sdcloud_hires",
        "sdcloud_jobs_table",
        "sdcloud_settings_api_key",
    ):
        assert elem_id in ids, elem_id
    sampler = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "sdcloud_sampler")
    choices = [c[0] if isinstance(c, (list, tuple)) else c for c in sampler["props"]["choices"]]
    assert choices == list(SAMPLERS)
    assert API_KEY not in _config_text(demo)
    assert config.get("enable_queue", True) is True  # generators and gr.Progress need the queue


def _build_generate(tmp_path: Path, client: FakeClient):
    with gr.Blocks():
        tab = build_generate_tab(lambda: client, outputs_dir=tmp_path / "out")
    return tab


def _form_values(tab: Any, **overrides: Any) -> dict[Any, Any]:
    """What gradio would pass: {component: value} with the UI defaults, then overrides by name."""
    values = {name: getattr(component, "value", None) for name, component in tab.inputs.items()}
    values.update({"prompt": "a red fox", "checkpoint": "tiny-sd15.safetensors", "endpoint": "local"})
    values.update(overrides)
    return {tab.inputs[name]: value for name, value in values.items()}


def test_generate_handler_streams_progress_then_images_and_infotext(tmp_path: Path) -> None:
    client = FakeClient([success_timeline("job-1", "a red fox", images=2)])
    tab = _build_generate(tmp_path, client)
    progress = RecordingProgress()

    outputs = list(tab.generate_fn(_form_values(tab, schedule_type="Karras", steps=20), progress=progress))

    statuses = [o[0] for o in outputs]
    assert "Submitting" in statuses[0]
    assert any("Loading model" in s for s in statuses)
    assert any("Sampling: step 5/20 (25%)" in s for s in statuses)
    status, gallery, infotext, job_id, infotexts, seeds, seed, preview, button = outputs[-1]
    assert preview == "" and button["interactive"] is True  # Generate is enabled again at the end
    assert "Done: 2 images" in status and 'data-state="done"' in status
    assert job_id == "job-1" and seed == 1234 and seeds == [1234, 1235]
    assert len(gallery) == 2 and all(Path(p).is_file() for p in gallery)
    assert Image.open(gallery[1]).info["parameters"] == infotexts[1]
    assert infotext == infotexts[0] and "Steps: 20" in infotext and "Negative prompt: blurry" in infotext
    fractions = [f for f, _ in progress.calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("step 5/20" in desc for _, desc in progress.calls)
    [submit] = client.submits
    assert submit["task"] == "txt2img" and submit["checkpoint"] == "tiny-sd15.safetensors"
    assert submit["endpoint"] == "local"
    payload = submit["payload"]
    assert payload["scheduler"] == "karras" and payload["sampler_name"] == "DPM++ 2M"
    assert (payload["steps"], payload["width"], payload["height"], payload["seed"]) == (20, 512, 512, -1)
    assert "enable_hr" not in payload and "init_images" not in payload


def test_generate_error_from_server_is_a_readable_message(tmp_path: Path) -> None:
    refusal = ValidationFailed(
        400,
        "Invalid request",
        "width must be a multiple of 8 (got 500)",
        [FieldError("payload.width", "must be a multiple of 8 (got 500)")],
    )
    client = FakeClient(submit_error=refusal)

    outputs = list(run_generation(lambda: client, {"prompt": "x", "checkpoint": "m"}, tmp_path))

    last = outputs[-1]
    assert 'data-state="error"' in last.status
    assert "Width (payload.width): must be a multiple of 8 (got 500)" in last.status
    assert "Traceback" not in last.status and last.images is None


def test_failed_job_shows_the_reason(tmp_path: Path) -> None:
    failed = [
        Job.from_json(job_json("job-2", "running", 1, phase="sampling", step=1)),
        Job.from_json(job_json("job-2", "failed", 2, error={"code": "oom", "message": "CUDA out of memory"})),
    ]
    client = FakeClient([failed])

    outputs = list(run_generation(lambda: client, {"prompt": "x", "checkpoint": "m"}, tmp_path))

    assert "Generation failed: CUDA out of memory" in outputs[-1].status
    assert outputs[-1].job_id == "job-2"


def test_cancelled_job_says_so(tmp_path: Path) -> None:
    cancelled = [
        Job.from_json(job_json("job-3", "queued", 1)),
        Job.from_json(job_json("job-3", "cancelled", 2)),
    ]

    outputs = list(
        run_generation(lambda: FakeClient([cancelled]), {"prompt": "x", "checkpoint": "m"}, tmp_path)
    )

    assert "Cancelled" in outputs[-1].status and 'data-state="cancelled"' in outputs[-1].status


def test_an_interrupted_job_shows_the_images_sampled_so_far(tmp_path: Path) -> None:
    done = success_timeline("job-6", images=2)[-1]
    interrupted = Job.from_json(
        job_json(
            "job-6",
            "cancelled",
            6,
            phase="interrupted",
            step=7,
            steps=20,
            images=[{"index": i.index, "key": i.key, "url": i.url} for i in done.result.images],
            infotexts=done.infotexts,
            seed=1234,
        )
    )
    timeline = [Job.from_json(job_json("job-6", "running", 2)), interrupted]

    outputs = list(run_generation(lambda: FakeClient([timeline]), {"prompt": "x", "checkpoint": "m"}, tmp_path))

    last = outputs[-1]
    assert "Interrupted: 2 partial images" in last.status
    assert len(last.images) == 2 and all(Path(p).is_file() for p in last.images)
    assert last.infotext == done.infotexts[0]


def test_interrupt_says_cancelling_before_asking_and_leaves_the_outcome_to_the_generation() -> None:
    running = [Job.from_json(job_json("job-4", "running", 2))]
    finished = [Job.from_json(job_json("job-5", "succeeded", 3))]
    client = FakeClient([running, finished])
    client.submit_inference("txt2img", {"prompt": "x"}, "m")
    client.submit_inference("txt2img", {"prompt": "y"}, "m")

    assert "Cancelling job job-4" in cancelling_status("job-4")
    assert "Nothing to cancel" in cancelling_status(None)
    # success and "already finished" show nothing: the running generation reports the outcome, and a
    # status written after the request could overwrite its "Cancelled" / "Done"
    assert cancel_generation(lambda: client, "job-4") == ("requested", None)
    assert cancel_generation(lambda: client, "job-5") == ("finished", None)
    assert client.cancelled == ["job-4"]
    outcome, problem = cancel_generation(lambda: client, None)
    assert outcome == "failed" and "Nothing to cancel" in problem


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"width": 500}, "Width must be a multiple of 8 (got 500)"),
        ({"height": 4096}, "Height must be between 64 and 2048 (got 4096)"),
        ({"steps": 0}, "Sampling steps must be between 1 and 150 (got 0)"),
        ({"batch_size": 9}, "Batch size must be between 1 and 8 (got 9)"),
        ({"n_iter": 33}, "Batch count must be between 1 and 32 (got 33)"),
        ({"cfg_scale": 31}, "CFG Scale must be between 0 and 30 (got 31)"),
        ({"seed": 1.5}, "Seed must be -1 (random) or a whole number from 0 to 4294967295 (got 1.5)"),
        ({"sampler_name": "Foo"}, "Sampling method 'Foo' is not supported"),
        ({"schedule_type": "Bar"}, "Schedule type 'Bar' is not supported"),
        (
            {"enable_hr": True, "width": 1024, "height": 1024, "hr_scale": 4},
            "Hires. fix target 4096x4096 is too large",
        ),
        ({"task": "img2img"}, "Init image: upload an image"),
        ({"checkpoint": ""}, "Checkpoint: pick a checkpoint"),
    ],
)
def test_bad_input_is_named_before_anything_is_sent(tmp_path: Path, overrides: dict, message: str) -> None:
    client = FakeClient()
    values = {"prompt": "x", "checkpoint": "m", **overrides}

    outputs = list(run_generation(lambda: client, values, tmp_path))

    assert len(outputs) == 1 and message in text_of(outputs[0].status)
    assert client.submits == []


def test_not_configured_tells_where_to_fix(tmp_path: Path) -> None:
    provider = ClientProvider(SettingsStore(tmp_path / "s.json"))

    outputs = list(run_generation(provider, {"prompt": "x", "checkpoint": "m"}, tmp_path))

    assert "No API URL is set" in outputs[-1].status and "Settings" in outputs[-1].status


def test_payload_for_hires_fix_and_img2img() -> None:
    task, hires = build_payload(
        GenerateForm(
            enable_hr=True,
            hr_upscaler="Latent",
            hr_second_pass_steps=10,
            hr_denoising_strength=0.5,
            hr_scale=1.5,
            schedule_type="SGM Uniform",
        )
    )
    assert task == "txt2img"
    assert hires["enable_hr"] is True and hires["hr_scale"] == 1.5 and hires["denoising_strength"] == 0.5
    assert (hires["hr_second_pass_steps"], hires["hr_resize_x"], hires["hr_resize_y"]) == (10, 0, 0)
    assert hires["scheduler"] == "sgm_uniform"

    task, i2i = build_payload(
        GenerateForm(task="img2img", init_image=Image.new("RGB", (64, 48), "blue"), denoising_strength=0.4)
    )
    assert task == "img2img" and i2i["denoising_strength"] == 0.4
    assert len(i2i["init_images"]) == 1 and i2i["init_images"][0].startswith("iVBOR")  # base64 PNG
    assert "enable_hr" not in i2i


def test_oversized_init_image_is_refused_with_the_limit() -> None:
    with pytest.raises(InvalidInput, match="at most"):
        build_payload(GenerateForm(task="img2img", init_image=Image.new("L", (4100, 4100))))


def test_sampler_and_scheduler_lists_match_the_webui_manifest() -> None:
    if not MANIFEST.is_file():
        pytest.skip(f"WebUI manifest not found at {MANIFEST} (CI has ../shared/webui)")
    manifest = json.loads(MANIFEST.read_text())
    webui_samplers = [s["name"] for s in manifest["samplers"]["list"]]
    assert all(name in webui_samplers for name in SAMPLERS)
    webui_schedulers = [(s["label"], s["name"]) for s in manifest["schedulers"]]
    assert list(SCHEDULERS) == [pair for pair in webui_schedulers if pair in SCHEDULERS]
    fields = {f["field"]: f for f in manifest["api_txt2img_fields"]["fields"]}
    _, payload = build_payload(GenerateForm(enable_hr=True))
    assert set(payload) <= set(fields), set(payload) - set(fields)
    _, i2i = build_payload(GenerateForm(task="img2img", init_image=Image.new("RGB", (8, 8))))
    i2i_fields = {f["field"] for f in manifest["api_img2img_fields"]["fields"]}
    assert set(i2i) <= i2i_fields, set(i2i) - i2i_fields


def test_limits_are_the_contract_values() -> None:
    assert limits.LIMITS == {
        "width": (64, 2048),
        "height": (64, 2048),
        "size_multiple": 8,
        "max_pixels": 2048 * 2048,
        "steps": (1, 150),
        "batch_size": (1, 8),
        "n_iter": (1, 32),
        "cfg_scale": (0, 30),
        "denoising_strength": (0, 1),
        "hr_second_pass_steps": (0, 150),
        "max_body_bytes": 8 * 1024 * 1024,
        "max_init_image_pixels": 2048 * 2048 * 4,
    }


def test_refresh_keeps_valid_picks_and_prefers_in_service_endpoints() -> None:
    client = FakeClient(
        models=["a.safetensors", "b.safetensors"], endpoints=[("cold", "OutOfService"), ("warm", "InService")]
    )

    ckpt, endpoint, status = refresh_choices(lambda: client, "b.safetensors", None)
    gone, _, _ = refresh_choices(lambda: client, "deleted.safetensors", "warm")

    assert ckpt["choices"] == ["a.safetensors", "b.safetensors"] and ckpt["value"] == "b.safetensors"
    assert endpoint["choices"] == ["cold", "warm"] and endpoint["value"] == "warm"
    assert "2 checkpoints" in status
    assert gone["value"] == "a.safetensors"


def test_refresh_error_keeps_dropdowns_and_explains(tmp_path: Path) -> None:
    provider = ClientProvider(SettingsStore(tmp_path / "s.json"))

    ckpt, endpoint, status = refresh_choices(provider, None, None)

    assert ckpt == gr.update() and endpoint == gr.update()
    assert "No API URL is set" in status


# ---- jobs tab --------------------------------------------------------------------------------


def _client_with_jobs(count: int) -> FakeClient:
    client = FakeClient([success_timeline(f"job-{i}", f"prompt {i}") for i in range(count)])
    for _ in range(count):
        client.submit_inference("txt2img", {}, "m")
    return client


def test_history_pages_newest_first_with_cursor(tmp_path: Path) -> None:
    client = _client_with_jobs(3)
    with gr.Blocks():
        build_jobs_tab(lambda: client, outputs_dir=tmp_path)

    first = show_history(lambda: client, {}, "first", limit=2)
    older = show_history(lambda: client, first.pager.to_state(), "older", limit=2)
    beyond = show_history(lambda: client, older.pager.to_state(), "older", limit=2)
    back = show_history(lambda: client, older.pager.to_state(), "newer", limit=2)

    assert [r[-1] for r in first.rows] == ["job-2", "job-1"]
    assert first.rows[0][1] == "succeeded" and first.rows[0][5] == "64x64"
    assert [r[-1] for r in older.rows] == ["job-0"] and "(oldest)" in older.status
    assert beyond.rows is None and "No older jobs" in beyond.status
    assert [r[-1] for r in back.rows] == ["job-2", "job-1"]
    assert job_id_at(older.pager.to_state(), 0) == "job-0"
    assert job_id_at(older.pager.to_state(), 5) is None


def test_open_job_brings_back_images_with_infotext(tmp_path: Path) -> None:
    client = _client_with_jobs(1)

    opened = open_job(lambda: client, "job-0", tmp_path)
    again = open_job(lambda: client, "job-0", tmp_path)
    missing = open_job(lambda: client, "nope", tmp_path)

    assert len(opened.images) == 1 and Image.open(opened.images[0]).info["parameters"] == opened.infotext
    assert "Steps: 20" in opened.infotext
    assert again.images == opened.images and len(client.downloads) == 1  # already on disk
    assert "Not found" in missing.status and 'data-state="error"' in missing.status


# ---- settings tab ----------------------------------------------------------------------------


def test_settings_save_is_private_and_never_echoes_the_key(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "conf" / "settings.json")
    with gr.Blocks() as demo:
        build_settings_tab(store)

    result = save_connection(store, "http://127.0.0.1:8000/", API_KEY)
    kept = save_connection(store, "http://127.0.0.1:8001", "")
    bad = save_connection(store, "not a url", "")

    path = tmp_path / "conf" / "settings.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"api_url": "http://127.0.0.1:8001", "api_key": API_KEY}
    assert result.key_status == KEY_SAVED and API_KEY not in result.message
    assert kept.key_status == KEY_SAVED and store.current().api_key == API_KEY
    assert 'data-state="error"' in bad.message and "API URL" in bad.message
    assert API_KEY not in _config_text(demo)
    assert SettingsStore(path).current() == Settings("http://127.0.0.1:8001", API_KEY)


def test_check_connection_against_a_real_server(server: ScriptedServer, tmp_path: Path) -> None:
    server.route("GET", "/v1/ping", Reply(json={"status": "ok", "version": "0.1.0", "mode": "local"}))
    server.route(
        "GET",
        "/v1/me",
        lambda req: (
            Reply(json={"user": "admin", "role": "admin"})
            if req.headers.get("authorization") == f"Bearer {API_KEY}"
            else Reply.problem(401, "Unauthorized", "unknown API key")
        ),
    )
    store = SettingsStore(tmp_path / "s.json", overrides=Settings(server.url, API_KEY))

    ok = check_connection(store, "", "")
    wrong_key = check_connection(store, server.url, "not-the-key")
    unreachable = check_connection(store, "http://127.0.0.1:1", "")

    assert "Connected to SD Cloud 0.1.0 (local mode)" in ok and "as admin (admin)" in ok
    assert "API key was refused" in wrong_key
    assert "Cannot reach" in unreachable
    assert API_KEY not in ok + wrong_key + unreachable


def test_settings_overrides_and_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json")

    store = SettingsStore(path, overrides=Settings(api_url="http://a:1", api_key=""))

    assert store.current() == Settings("http://a:1", "")
    assert "api_key" not in repr(store.current()) or API_KEY not in repr(store.current())


def test_app_start_up_settings_precedence(tmp_path: Path) -> None:
    key_file = tmp_path / "admin-api-key"
    key_file.write_text(API_KEY + "\n")
    env = {"SDCLOUD_API_URL": "http://env:1", "SDCLOUD_API_KEY": "env-key", "SDCLOUD_UI_PORT": "7999"}

    from_env = startup_settings(parse_args([], env), env)
    from_args = startup_settings(
        parse_args(["--api-url", "http://arg:2", "--api-key-file", str(key_file)], env), env
    )

    assert from_env == Settings("http://env:1", "env-key") and parse_args([], env).port == 7999
    assert from_args == Settings("http://arg:2", API_KEY)
    with pytest.raises(SystemExit, match="cannot read"):
        startup_settings(parse_args(["--api-key-file", str(tmp_path / "missing")], env), env)


def test_auth_error_message_points_to_settings(tmp_path: Path) -> None:
    client = FakeClient(submit_error=AuthError(401, "Unauthorized", "bad key"))

    outputs = list(run_generation(lambda: client, {"prompt": "x", "checkpoint": "m"}, tmp_path))

    assert "API key was refused" in outputs[-1].status and "Settings" in outputs[-1].status


def test_progress_line_wording() -> None:
    from sdcloud.ui.messages import field_label, progress_fraction, progress_text

    sampling = Job.from_json(job_json("j", "running", 3, phase="sampling", step=7, steps=20))
    loading = Job.from_json(job_json("j", "running", 2, phase="loading_model"))
    unknown = Job.from_json(job_json("j", "running", 2, phase="warming_up_gpu"))
    done = Job.from_json(job_json("j", "succeeded", 9, phase="done"))

    assert progress_text(sampling) == "Sampling: step 7/20 (35%)"
    assert progress_text(loading) == "Loading model"
    assert progress_text(unknown) == "Warming up gpu"
    assert progress_text(done) == "Done" and progress_fraction(done) == 1.0
    assert field_label("payload.hr_scale") == "Upscale by (payload.hr_scale)"
    assert field_label("payload.init_images.0") == "Init image (payload.init_images.0)"
    assert field_label("alwayson_scripts.x") == "alwayson_scripts.x"


def test_schedule_types_offered_follow_the_sampler() -> None:
    from sdcloud.contract import CONTRACT
    from sdcloud.samplers import schedule_labels_for

    labels = {s["name"]: s["label"] for s in CONTRACT["schedulers"]}
    for sampler in CONTRACT["samplers"]:
        if sampler["supported"]:
            assert schedule_labels_for(sampler["name"]) == [labels[n] for n in sampler["schedulers"]]
    assert schedule_labels_for("DPM++ 2M")[:3] == ["Automatic", "Uniform", "Karras"]
    assert all(schedule_labels_for(name)[0] == "Automatic" for name in SAMPLERS)
