"""The standalone UI's fixes from a new user's report (issue 7, item 6), on their pure parts: seed
bounds, the ETA, A1111's outputs naming, what Save says about the key, Interrupt after the end,
re-attaching after a reload, the Generate button's state, live previews and the page's scripts.
Runs under both pin sets (gradio 3.41 and 4.40)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from sdcloud import limits  # noqa: E402
from sdcloud.app import outputs_dir_for, parse_args, strip_external_resources  # noqa: E402
from sdcloud.errors import Conflict  # noqa: E402
from sdcloud.records import Job  # noqa: E402
from sdcloud.settings import Settings, SettingsStore  # noqa: E402
from sdcloud.ui import build_generate_tab, compat  # noqa: E402
from sdcloud.ui.connection import KEY_NOT_SAVED, KEY_SAVED, NO_KEY, key_status, save_connection  # noqa: E402
from sdcloud.ui.generate_tab import button_update  # noqa: E402
from sdcloud.ui.generation import (  # noqa: E402
    GenerateForm,
    InvalidInput,
    PreviewCache,
    build_payload,
    interrupt_job,
    resume_generation,
    run_generation,
    validate_seed,
)
from sdcloud.ui.messages import EtaTracker, format_duration, status_html  # noqa: E402
from sdcloud.ui.results import fetch_result_images, image_name, next_sequence_number  # noqa: E402
from sdcloud.ui.standalone import build_standalone  # noqa: E402
from sdcloud.ui.style import running_job_key, setup_js, stored_job_js  # noqa: E402
from tests.extension.conftest import API_KEY  # noqa: E402
from tests.extension.support.fake_client import FakeClient, success_timeline  # noqa: E402
from tests.extension.support.jobs import job_json  # noqa: E402

OTHER_KEY = "sdk_OTHER-secret-key-fedcba9876543210"


def text_of(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def sampling(job_id: str, step: int, steps: int = 20, version: int = 0, **progress: Any) -> Job:
    """A running job's view while sampling; ``progress`` adds to its progress (n_iter, preview_url...)."""
    view = job_json(job_id, "running", version or step + 2, phase="sampling", step=step, steps=steps)
    view["progress"].update(progress)
    return Job.from_json(view)


# ---- seed --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 0, 4294967295, 1234.0, "42", " 7 "])
def test_seed_accepts_minus_one_and_the_contract_range(value: Any) -> None:
    assert validate_seed(value) == int(str(value).strip().split(".")[0])


@pytest.mark.parametrize("value", [99999999999, 4294967296, -2, 1.5, "1.5", "abc", float("inf"), None, True])
def test_seed_refuses_what_a1111_would_not_take_and_says_the_range(value: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_seed(value)
    assert str(info.value) == f"Seed must be -1 (random) or a whole number from 0 to 4294967295 (got {value!r})"
    assert limits.SEED == (0, 4294967295)  # the contract's bounds, which the message states


def test_variation_seed_is_checked_the_same_and_sent_only_with_a_strength() -> None:
    with pytest.raises(InvalidInput, match=r"^Variation seed must be -1 \(random\) or a whole number"):
        build_payload(GenerateForm(prompt="x", subseed=2.5, subseed_strength=0.3))
    _, plain = build_payload(GenerateForm(prompt="x", subseed=99))
    _, varied = build_payload(GenerateForm(prompt="x", subseed=99, subseed_strength=0.25))
    assert "subseed" not in plain
    assert (varied["subseed"], varied["subseed_strength"]) == (99, 0.25)


def test_seed_field_does_not_round_what_was_typed(tmp_path: Path) -> None:
    with gr.Blocks():
        tab = build_generate_tab(lambda: FakeClient(), outputs_dir=tmp_path)
    # precision=0 would make gradio turn 1.5 into 2 before any check could see it
    assert tab.inputs["seed"].precision is None


# ---- ETA ---------------------------------------------------------------------------------------


def test_eta_comes_from_the_measured_step_rate() -> None:
    eta = EtaTracker()
    assert eta.text(sampling("j", 2), now=100.0) == ""  # one sample: no rate yet
    assert eta.text(sampling("j", 6), now=102.0) == " · ETA 7 s"  # 4 steps in 2 s, 14 left
    assert eta.eta_seconds(sampling("j", 10), now=104.0) == pytest.approx(5.0)


def test_eta_counts_every_batch_and_restarts_on_a_new_pass() -> None:
    eta = EtaTracker()
    eta.eta_seconds(sampling("j", 0, n_iter=2, iteration=0), now=0.0)
    # 10 of 40 steps in 5 s: 30 left at 2 steps/s
    assert eta.eta_seconds(sampling("j", 10, n_iter=2, iteration=0), now=5.0) == pytest.approx(15.0)
    assert eta.eta_seconds(sampling("j", 1, steps=10), now=6.0) is None  # hires pass: other total
    assert eta.eta_seconds(Job.from_json(job_json("j", "running", 9, phase="decoding")), now=7.0) is None


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (59, "59 s"), (65, "1 min 05 s"), (3720, "1 h 02 min")])
def test_durations_read_short(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_status_line_carries_the_eta_and_the_job(tmp_path: Path) -> None:
    timeline = [Job.from_json(job_json("job-e", "queued", 1)), sampling("job-e", 2), sampling("job-e", 6),
                *success_timeline("job-e")[-1:]]
    ticks = iter([10.0, 11.0, 12.0, 13.0])

    outs = list(run_generation(lambda: FakeClient([timeline]), {"prompt": "x", "checkpoint": "m"}, tmp_path,
                               clock=lambda: next(ticks)))

    lines = [text_of(o.status) for o in outs]
    assert "Sampling: step 6/20 (30%) · ETA 4 s · job job-e" in lines
    assert [o.busy for o in outs] == ["Submitting…", "Queued…", "Running…", "Running…", ""]
    assert 'data-job="job-e"' in outs[2].status and 'data-state="running"' in outs[2].status


# ---- outputs: A1111's folders and numbers ------------------------------------------------------


def test_images_go_to_a1111_folders_with_numbers_that_continue(tmp_path: Path) -> None:
    day = dt.date(2026, 12, 2)
    folder = tmp_path / "txt2img-images" / "2026-12-02"
    folder.mkdir(parents=True)
    (folder / "00007-99.png").write_bytes(b"an older image")
    (folder / "notes.txt").write_text("not numbered")
    client = FakeClient([success_timeline("job-a", images=2, seed=1234)])
    job = client.submit_inference("txt2img", {}, "m")
    client.jobs["job-a"] = [client.jobs["job-a"][-1]]

    paths = fetch_result_images(client, client.get_inference("job-a"), tmp_path, today=day)
    again = fetch_result_images(client, client.get_inference(job.id), tmp_path, today=dt.date(2026, 12, 3))

    assert [Path(p).relative_to(tmp_path).as_posix() for p in paths] == [
        "txt2img-images/2026-12-02/00008-1234.png",
        "txt2img-images/2026-12-02/00009-1235.png",
    ]
    assert again == paths and len(client.downloads) == 2  # reopened: the same files, not copies
    assert Image.open(paths[1]).info["parameters"] == client.get_inference("job-a").infotexts[1]
    assert not list(folder.glob(".*.part"))  # nothing half-written left behind


def test_img2img_has_its_own_folder_and_numbering(tmp_path: Path) -> None:
    timeline = success_timeline("job-i", seed=5)
    last = Job.from_json({**timeline[-1].raw, "task": "img2img"})
    client = FakeClient([[last]])
    client.submit_inference("img2img", {}, "m")

    [path] = fetch_result_images(client, last, tmp_path, today=dt.date(2026, 1, 31))

    assert Path(path).relative_to(tmp_path).as_posix() == "img2img-images/2026-01-31/00000-5.png"


def test_sequence_numbers_are_counted_like_a1111(tmp_path: Path) -> None:
    assert next_sequence_number(tmp_path / "missing") == 0
    for name in ("00002-1.png", "00010-abc-def.png", "x-00099.png", "00011.jpg"):
        (tmp_path / name).write_bytes(b"")
    assert next_sequence_number(tmp_path) == 12
    assert image_name(12, 4294967295) == "00012-4294967295.png" and image_name(3, None) == "00003.png"


# ---- what Save says about the key --------------------------------------------------------------


def test_save_says_exactly_what_happened_to_the_key(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    store = SettingsStore(path, overrides=Settings("http://127.0.0.1:8000", API_KEY))  # start-up key only
    assert key_status(store) == KEY_NOT_SAVED  # given on the command line: nothing is saved yet

    first = save_connection(store, "http://127.0.0.1:8000", "")
    same = save_connection(store, "http://127.0.0.1:8000", API_KEY)
    other = save_connection(store, "http://127.0.0.1:8001", OTHER_KEY)
    cleared = save_connection(store, "http://127.0.0.1:8001", None, clear_key=True)
    nothing = save_connection(store, "http://127.0.0.1:8001", "")
    bad = save_connection(store, "not a url", OTHER_KEY)

    assert (first.key_outcome, first.key_status) == ("saved", KEY_SAVED)
    assert text_of(first.message) == "API URL unchanged; the API key was saved"
    assert (same.key_outcome, text_of(same.message)) == ("unchanged", "API URL unchanged; the API key is unchanged")
    assert other.key_outcome == "saved"
    assert text_of(other.message) == "API URL saved: http://127.0.0.1:8001; the API key was saved"
    assert (cleared.key_outcome, cleared.key_status) == ("cleared", NO_KEY)
    assert "the saved API key was removed (no API key is set now)" in text_of(cleared.message)
    assert nothing.key_outcome == "unchanged" and "saved" not in text_of(nothing.message).replace("unchanged", "")
    assert "nothing was saved" in text_of(bad.message) and bad.key_status == NO_KEY
    assert json.loads(path.read_text()) == {"api_url": "http://127.0.0.1:8001", "api_key": ""}
    for result in (first, same, other, cleared, nothing, bad):
        assert API_KEY not in result.message and OTHER_KEY not in result.message


# ---- Interrupt after the end, re-attach after a reload -----------------------------------------


class CancellingClient(FakeClient):
    """The fake client, whose cancel really ends the job (as the server does) with `ends_with`."""

    def __init__(self, timelines: list[list[Job]], ends_with: Job) -> None:
        super().__init__(timelines)
        self.ends_with = ends_with

    def cancel_inference(self, job_id: str) -> Job:
        last = super().cancel_inference(job_id)
        self.jobs[job_id].append(self.ends_with)
        return last


def test_interrupt_after_the_end_shows_how_the_job_really_ended() -> None:
    client = FakeClient([success_timeline("job-d", images=2)])
    client.submit_inference("txt2img", {}, "m")

    line = interrupt_job(lambda: client, "job-d", wait=0)

    assert text_of(line) == "Done: 2 images · job job-d" and 'data-state="done"' in line
    assert client.cancelled == []  # the server said 409: nothing was cancelled


def test_interrupt_of_a_running_job_ends_with_its_cancelled_state() -> None:
    cancelled = Job.from_json(job_json("job-c", "cancelled", 9))
    client = CancellingClient([[sampling("job-c", 3)]], ends_with=cancelled)
    client.submit_inference("txt2img", {}, "m")

    line = interrupt_job(lambda: client, "job-c", wait=5)

    assert text_of(line) == "Cancelled · job job-c" and 'data-state="cancelled"' in line
    assert client.cancelled == ["job-c"]
    assert "Nothing to cancel" in text_of(interrupt_job(lambda: client, None))


def test_interrupt_says_where_a_slow_job_stands_instead_of_cancelling_forever() -> None:
    client = FakeClient([[sampling("job-s", 3)]])
    client.submit_inference("txt2img", {}, "m")

    line = interrupt_job(lambda: client, "job-s", wait=0)

    assert text_of(line) == "Cancel requested; job job-s is still running (Sampling: step 3/20 (15%))"
    assert "Cancelling" not in line


def test_a_reload_re_attaches_to_the_running_job_and_shows_its_images(tmp_path: Path) -> None:
    timeline = [sampling("job-r", 4), sampling("job-r", 8), success_timeline("job-r")[-1]]
    client = FakeClient([timeline])
    client.submit_inference("txt2img", {}, "m")

    outs = list(resume_generation(lambda: client, "job-r", tmp_path))

    assert "Re-attached to job job-r" in text_of(outs[0].status) and outs[0].busy == "Running…"
    assert any("Sampling: step 8/20" in text_of(o.status) for o in outs)
    last = outs[-1]
    assert text_of(last.status) == "Done: 1 image · job job-r" and last.busy == ""
    assert len(last.images) == 1 and Path(last.images[0]).is_file() and last.job_id == "job-r"
    assert list(resume_generation(lambda: client, "", tmp_path)) == []
    gone = list(resume_generation(lambda: client, "no-such-job", tmp_path))
    assert "Not found" in text_of(gone[-1].status) and 'data-job="no-such-job"' in gone[-1].status


# ---- the Generate button, the preview, the page ------------------------------------------------


def test_generate_is_disabled_while_a_job_runs_and_enabled_after_an_error(tmp_path: Path) -> None:
    client = FakeClient(submit_error=Conflict(409, "Conflict", "endpoint busy"))
    with gr.Blocks():
        tab = build_generate_tab(lambda: client, outputs_dir=tmp_path)
    values = {component: getattr(component, "value", None) for component in tab.inputs.values()}
    values.update({tab.inputs["prompt"]: "x", tab.inputs["checkpoint"]: "m"})

    outs = list(tab.generate_fn(values))

    assert button_update("Running…")["interactive"] is False and button_update("Running…")["value"] == "Running…"
    assert [o[-1]["interactive"] for o in outs] == [False, True]  # Submitting…, then the error
    assert outs[-1][-1]["value"] == "Generate" and 'data-state="error"' in outs[-1][0]


def test_the_live_preview_is_inline_and_fetched_once_per_step() -> None:
    fetched: list[str] = []
    jpeg = b"\xff\xd8 a tiny jpeg \xff\xd9"

    def fetch(client: Any, url: str) -> bytes:
        fetched.append(url)
        return jpeg

    cache = PreviewCache(fetch)
    with_preview = sampling("job-p", 4, preview_step=4, preview_url="/v1/blobs/p.jpg?sig=1")

    first = cache.update(FakeClient(), with_preview)
    repeat = cache.update(FakeClient(), with_preview)
    none_yet = PreviewCache(fetch).update(FakeClient(), sampling("job-p", 1))

    assert first is not None and f'src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}"' in first
    assert repeat is None and none_yet is None and fetched == ["/v1/blobs/p.jpg?sig=1"]


def test_page_scripts_use_the_tab_prefix_and_no_emoji(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "s.json", overrides=Settings("http://127.0.0.1:9", API_KEY))
    demo = build_standalone(store, outputs_dir=tmp_path / "out")
    config = json.dumps(demo.get_config_file(), default=str)

    js = setup_js("sdcloud")
    assert running_job_key("sdcloud") in js and "_negative_prompt" in js and "metaKey" in js
    assert json.dumps(running_job_key("cloud")) in stored_job_js("cloud")
    labels = [
        c["props"].get("value")
        for c in demo.get_config_file()["components"]
        if c.get("type") == "button" and not str(c["props"].get("elem_id")).startswith("sdcloud_jobs")
    ]
    assert {"Generate", "Interrupt", "Random", "Reuse", "Refresh", "Remove saved key"} <= set(labels)
    for label in labels:  # Generate and Settings: text labels, nothing that needs an emoji font
        assert label and all(ord(ch) < 0x2190 or ch == "…" for ch in str(label)), label
    assert "fonts.googleapis.com" not in config and "GoogleFont" not in config
    assert compat.local_theme()._stylesheets == []
    assert "…" not in status_html("Ready", "idle") and "data-job" not in status_html("Ready", "idle")


# ---- the page asks no other host ---------------------------------------------------------------


def test_gradios_page_template_loses_its_external_tags() -> None:
    template = Path(gr.__file__).parent / "templates" / "frontend" / "index.html"
    page = template.read_text(encoding="utf-8")
    assert "cdnjs.cloudflare.com" in page and "fonts.googleapis.com" in page  # what gradio ships

    local = strip_external_resources(page)

    assert re.findall(r"""(?:src|href)=["']https?://""", local) == []
    assert local.count("<script") == page.count("<script") - 1 and "window.gradio_config" in local


def test_outputs_live_in_the_data_folder_beside_the_settings_file(tmp_path: Path) -> None:
    args = parse_args(["--settings-file", str(tmp_path / "conf" / "ui-settings.json")], env={})
    given = parse_args(["--outputs-dir", str(tmp_path / "elsewhere")], env={})

    assert outputs_dir_for(args) == (tmp_path / "conf" / "outputs").resolve()
    assert outputs_dir_for(given) == (tmp_path / "elsewhere").resolve()
