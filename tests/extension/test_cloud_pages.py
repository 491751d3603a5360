"""The Cloud tab's pages (Endpoints, Models, Jobs with thumbnails) under the WebUI's pinned gradio
(A1111 3.41.2 and Forge 4.40): their pure parts, the client's endpoint-admin calls over real HTTP,
and the pages' handlers against the REAL middleware (local mode, fake container)."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from sdcloud.client import SDCloudClient  # noqa: E402
from sdcloud.records import Endpoint, ModelInfo  # noqa: E402
from sdcloud.settings import Settings, SettingsStore  # noqa: E402
from sdcloud.ui.accordion import catalog_info, endpoint_state_html, model_hash_html, refresh_lists  # noqa: E402
from sdcloud.ui.cloud_tab import HostConnection, build_cloud_tab  # noqa: E402
from sdcloud.ui.endpoints_page import (  # noqa: E402
    endpoint_rows,
    endpoint_spec,
    list_endpoints,
    run_action,
    state_label,
)
from sdcloud.ui.history import HISTORY_HEADERS, ID_COLUMN, job_id_for_select, show_history, thumbnails  # noqa: E402
from sdcloud.ui.models_page import human_size, list_models, model_rows  # noqa: E402
from tests.extension.conftest import API_KEY  # noqa: E402
from tests.extension.support.scripted_server import Reply, ScriptedServer  # noqa: E402
from tests.extension.support.stack import CHECKPOINT, Stack  # noqa: E402


def text_of(status: str) -> str:
    """The status line's words (tags and any state glyph stripped)."""
    return html.unescape(re.sub(r"<[^>]+>", "", status)).lstrip("✔⚠ ")


def state_of(status: str) -> str:
    found = re.search(r'data-state="([a-z]+)"', status)
    return found.group(1) if found else ""


# ---- endpoint states and rows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "label"),
    [
        (Endpoint("a", "async", "InService", "", current_instances=1), "in service"),
        (Endpoint("a", "async", "InService", "", current_instances=0), "scaled to zero (wakes on the next job)"),
        (Endpoint("a", "async", "InService", "scaled to zero"), "scaled to zero (wakes on the next job)"),
        (Endpoint("a", "async", "Creating"), "starting"),
        (Endpoint("a", "async", "Updating"), "starting"),
        (Endpoint("a", "async", "Failed", "image not found in ECR"), "failed: image not found in ECR"),
        (Endpoint("a", "async", "Failed"), "failed: no reason given"),
        (Endpoint("local", "local", "OutOfService", "container is loading"), "out of service: container is loading"),
        (Endpoint("a", "async", "Deleting"), "being deleted"),
        (Endpoint("a", "realtime", "Stopped"), "stopped (no instances until scaled up)"),
        (Endpoint("a", "async", "Failed", "", failure_reason="CapacityError"), "failed: CapacityError"),
    ],
)
def test_endpoint_state_in_words(endpoint: Endpoint, label: str) -> None:
    assert state_label(endpoint) == label


def test_endpoint_rows_show_instances_and_do_not_repeat_the_reason() -> None:
    rows = endpoint_rows([
        Endpoint("sd15", "async", "InService", "", "ml.g5.xlarge", current_instances=1, desired_instances=2,
                 min_instances=0, max_instances=3),
        Endpoint("broken", "async", "Failed", "quota exceeded for ml.g5.xlarge"),
        Endpoint("local", "local", "InService", "inference container at http://127.0.0.1:8080"),
    ])
    assert rows[0] == ["sd15", "async", "in service", "1 → 2 (0–3)", "ml.g5.xlarge", ""]
    assert rows[1] == ["broken", "async", "failed: quota exceeded for ml.g5.xlarge", "", "", ""]
    assert rows[2][2:] == ["in service", "", "", "inference container at http://127.0.0.1:8080"]


def test_endpoint_spec_names_what_to_fix() -> None:
    assert endpoint_spec("sd-15", "ml.g5.xlarge", "async", 0, 2.0) == {
        "name": "sd-15", "instance_type": "ml.g5.xlarge", "kind": "async", "min_instances": 0, "max_instances": 2}
    assert endpoint_spec("x", "ml.g5.xlarge", "async", 0, 1, " img:1 ")["image"] == "img:1"
    for args, message in [
        (("", "ml.g5.xlarge", "async", 0, 1), "Endpoint name: enter"),
        (("bad_name!", "ml.g5.xlarge", "async", 0, 1), "letters, digits and single hyphens"),
        (("x", "g5.xlarge", "async", 0, 1), "Instance type"),
        (("x", "ml.g5.xlarge", "batch", 0, 1), "Kind: choose async or realtime"),
        (("x", "ml.g5.xlarge", "async", 2, 1), "Min instances (2) is more than Max instances (1)"),
        (("x", "ml.g5.xlarge", "async", 0, 0), "Max instances: at least 1"),
        (("x", "ml.g5.xlarge", "async", 1.5, 2), "Min instances: enter a whole number"),
        (("x", "ml.g5.xlarge", "realtime", 0, 1), "cannot scale to zero"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            endpoint_spec(*args)


# ---- models -------------------------------------------------------------------------------------


def test_model_rows_filter_by_type_with_size_and_short_hash() -> None:
    models = [
        ModelInfo("b.safetensors", "checkpoint", 2 * 1024**3, "ab" * 32),
        ModelInfo("A.safetensors", "checkpoint", 1536, "0123456789abcdef" * 4),
        ModelInfo("foxy.safetensors", "lora", 150 * 1024**2, "f" * 64),
    ]
    assert model_rows(models) == [
        ["A.safetensors", "checkpoint", "1.5 KB", "0123456789"],
        ["b.safetensors", "checkpoint", "2.0 GB", "ababababab"],
        ["foxy.safetensors", "lora", "150.0 MB", "ffffffffff"],
    ]
    assert [r[0] for r in model_rows(models, "lora")] == ["foxy.safetensors"]
    assert human_size(0) == "" and human_size(999) == "999 B"


# ---- which job a click on a sorted table means ----------------------------------------------------


def _rows(*jobs: tuple[str, str, str]) -> list[list[str]]:
    """History rows (prompt, status, id) with the real column layout."""
    rows = []
    for prompt, status, job_id in jobs:
        row = [""] * len(HISTORY_HEADERS)
        row[HISTORY_HEADERS.index("Prompt")] = prompt
        row[HISTORY_HEADERS.index("Status")] = status
        row[ID_COLUMN] = job_id
        rows.append(row)
    return rows


def test_a_click_on_a_sorted_table_opens_the_job_in_that_row() -> None:
    server_order = _rows(("zebra", "succeeded", "job-z"), ("apple", "succeeded", "job-a"))
    prompt_col, status_col = HISTORY_HEADERS.index("Prompt"), HISTORY_HEADERS.index("Status")
    # sorted by prompt, the artist clicks the first row on screen: "apple" (job-a), though the
    # server sent it second. gradio 4 sends the table unsorted; the cell's own value decides.
    assert job_id_for_select(server_order, [0, prompt_col], "apple", rows_as_shown=False) == "job-a"
    # the Job ID cell itself
    assert job_id_for_select(server_order, [0, ID_COLUMN], "job-a", rows_as_shown=False) == "job-a"
    # gradio >= 4.42 hands the clicked row itself
    row = server_order[1]
    assert job_id_for_select(server_order, [0, status_col], "succeeded", row, rows_as_shown=False) == "job-a"
    # gradio 3 sends the table as shown (sorted): a value many rows share is read at the index
    shown = list(reversed(server_order))
    assert job_id_for_select(shown, [0, status_col], "succeeded", rows_as_shown=True) == "job-a"
    # gradio 4 without row_value: a shared value cannot say which row -> None (the UI asks for the ID)
    assert job_id_for_select(server_order, [0, status_col], "succeeded", rows_as_shown=False) is None
    assert job_id_for_select([], [0, 0], "x") is None
    assert job_id_for_select(server_order, 3, "x") is None


# ---- the accordion's state and hash lines ---------------------------------------------------------


def test_accordion_shows_endpoint_state_and_model_hash() -> None:
    info = catalog_info([Endpoint("local", "local", "InService"), Endpoint("gpu", "async", "Failed", "no quota")],
                        [ModelInfo(CHECKPOINT, "checkpoint", 10, "9f" * 32)])
    assert text_of(endpoint_state_html(info, "local")) == "local: in service"
    assert state_of(endpoint_state_html(info, "local")) == "done"
    assert text_of(endpoint_state_html(info, "gpu")) == "gpu: failed: no quota"
    assert state_of(endpoint_state_html(info, "gpu")) == "error"
    assert "press Refresh" in text_of(endpoint_state_html(info, "other"))
    assert endpoint_state_html(info, "") == ""
    assert text_of(model_hash_html(info, CHECKPOINT)) == "Model hash: 9f9f9f9f9f"
    assert model_hash_html({}, CHECKPOINT) == ""


# ---- endpoint admin over real HTTP: what is sent, and refusals in the server's words ---------------


def test_endpoint_admin_calls_and_refusals(server: ScriptedServer) -> None:
    listing = Reply(json={"items": [{"name": "sd15", "kind": "async", "status": "Creating", "detail": ""}]})
    server.route("GET", "/v1/endpoints", listing)
    server.route("POST", "/v1/endpoints", Reply(201, json={"name": "sd15", "kind": "async", "status": "Creating"}))
    server.route("POST", "/v1/endpoints/sd15/scale", Reply(json={"name": "sd15", "status": "InService"}))
    server.route("POST", "/v1/endpoints/sd15/stop", Reply.problem(
        403, "Forbidden", "only admins may manage endpoints"))
    server.route("DELETE", "/v1/endpoints/sd15", Reply.problem(
        501, "Not Implemented", "local mode runs the containers in SDCLOUD_CONTAINER_URL; nothing to delete"))
    client = SDCloudClient(server.url, API_KEY, retries=0)

    created = run_action(lambda: client, "create", "sd15", instance_type="ml.g5.xlarge", kind="async",
                         min_instances=0, max_instances=2)
    assert text_of(created.status) == "Creating sd15" and created.rows and created.rows[0][2] == "starting"
    [post] = server.calls("POST", "/v1/endpoints")
    assert post.json() == {"name": "sd15", "instance_type": "ml.g5.xlarge", "kind": "async",
                           "min_instances": 0, "max_instances": 2}
    assert post.headers["idempotency-key"] and post.headers["authorization"] == f"Bearer {API_KEY}"

    scaled = run_action(lambda: client, "scale", "sd15", min_instances=1, max_instances=3)
    assert "Scaling sd15 to 1–3" in text_of(scaled.status)
    assert server.calls("POST", "/v1/endpoints/sd15/scale")[0].json() == {"min_instances": 1, "max_instances": 3}

    stopped = run_action(lambda: client, "stop", "sd15")
    assert stopped.rows is None  # a refusal keeps the table as it is
    assert state_of(stopped.status) == "error"
    assert text_of(stopped.status) == "Only an admin can change endpoints (HTTP 403): only admins may manage endpoints"

    unconfirmed = run_action(lambda: client, "delete", "sd15")
    assert "Tick “Yes, delete”" in text_of(unconfirmed.status)
    assert server.calls("DELETE", "/v1/endpoints/sd15") == []  # nothing sent before confirming
    refused = run_action(lambda: client, "delete", "sd15", confirm_delete=True)
    assert text_of(refused.status) == (
        "The server refused (HTTP 501): local mode runs the containers in SDCLOUD_CONTAINER_URL; nothing to delete")

    bad = run_action(lambda: client, "create", "no spaces allowed", instance_type="ml.g5.xlarge")
    assert "Endpoint name 'no spaces allowed'" in text_of(bad.status)
    assert len(server.calls("POST", "/v1/endpoints")) == 1  # the bad name never left the page
    assert API_KEY not in created.status + stopped.status + refused.status

    server.route("GET", "/v1/endpoints/sd15", Reply(json={"name": "sd15", "status": "InService",
                                                          "current_instances": 0}))
    assert state_label(client.describe_endpoint("sd15")) == "scaled to zero (wakes on the next job)"
    with pytest.raises(ValueError, match="endpoint name 'a/b' is not a valid id"):
        client.describe_endpoint("a/b")


# ---- the pages against the real middleware (local mode) -------------------------------------------


@pytest.fixture
def client(backend: Stack) -> SDCloudClient:
    backend.configure_container(delay_s=0.0, fail_status=None, busy_responses=0)
    return SDCloudClient(backend.api_url, backend.api_key)


@pytest.mark.e2e
@pytest.mark.slow
def test_pages_against_the_real_middleware(client: SDCloudClient, tmp_path: Path) -> None:
    endpoints = list_endpoints(lambda: client)
    assert endpoints.rows and endpoints.rows[0][:3] == ["local", "local", "in service"]
    assert text_of(endpoints.status) == "1 endpoint(s), 1 in service"

    models = list_models(lambda: client)
    [row] = [r for r in models.rows or [] if r[0] == CHECKPOINT]
    sha = next(m.sha256 for m in client.list_models() if m.name == CHECKPOINT)
    assert row[1] == "checkpoint" and row[3] == sha[:10] and row[2].endswith(" KB")

    # local mode cannot deploy endpoints: the page says so in the server's words, the table stays
    refused = run_action(lambda: client, "create", "sdcloud-test", instance_type="ml.g5.xlarge")
    assert refused.rows is None and state_of(refused.status) == "error"
    assert text_of(refused.status).startswith("The server refused (HTTP 409): ")

    accordion = refresh_lists(lambda: client, "", "")
    assert text_of(accordion[4]) == "local: in service"
    assert text_of(accordion[5]) == f"Model hash: {sha[:10]}"


@pytest.mark.e2e
@pytest.mark.slow
def test_history_thumbnails_from_the_real_middleware(client: SDCloudClient, tmp_path: Path) -> None:
    prompt = f"thumbnail {uuid.uuid4().hex[:6]}"
    job = client.submit_inference("txt2img", {"prompt": prompt, "steps": 2, "width": 64, "height": 64, "seed": 3},
                                  CHECKPOINT, "local")
    client.wait_for(job.id, timeout=60)

    view = show_history(lambda: client, {}, "first", limit=5)
    assert view.rows is not None and view.rows[0][ID_COLUMN] == job.id
    shown = thumbnails(lambda: client, view.jobs, tmp_path)
    mine = next(t for t in shown if t.job_id == job.id)
    assert mine.caption == prompt
    with Image.open(mine.path) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 256
    again = thumbnails(lambda: client, view.jobs, tmp_path)  # made once, then reused
    assert next(t for t in again if t.job_id == job.id).path == mine.path
    assert (tmp_path / f"{job.id}-0.png").is_file() or any(tmp_path.glob(f"*{job.id}*.png"))


def test_cloud_tab_builds_with_either_settings_page(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "s.json", overrides=Settings("http://127.0.0.1:9", API_KEY))
    with gr.Blocks() as standalone:
        tab = build_cloud_tab(lambda: SDCloudClient("http://127.0.0.1:9", API_KEY), settings_store=store,
                              outputs_dir=tmp_path)
        tab.attach_load(standalone)
    ids = {c.get("props", {}).get("elem_id") for c in standalone.get_config_file()["components"]}
    assert {"sdcloud_cloud_jobs_table", "sdcloud_cloud_jobs_thumbs", "sdcloud_cloud_endpoints_table",
            "sdcloud_cloud_models_table", "sdcloud_cloud_settings_api_key"} <= ids
    assert "sdcloud_cloud_jobs_send_txt2img" not in ids  # no txt2img to send to outside the WebUI
    assert API_KEY not in str(standalone.get_config_file())

    with gr.Blocks() as hosted:
        hosted_tab = build_cloud_tab(lambda: SDCloudClient("http://127.0.0.1:9", API_KEY),
                                     host_connection=HostConnection(lambda: "ok", lambda: "tested"),
                                     send_to_txt2img=lambda button, infotext: None)
    ids = {c.get("props", {}).get("elem_id") for c in hosted.get_config_file()["components"]}
    assert {"sdcloud_cloud_test", "sdcloud_cloud_connection", "sdcloud_cloud_jobs_send_txt2img"} <= ids
    assert "sdcloud_cloud_settings_api_key" not in ids  # the WebUI's own Settings hold the key
    assert hosted_tab.connection_status is not None
    with pytest.raises(ValueError, match="either settings_store"):
        build_cloud_tab(lambda: SDCloudClient("http://127.0.0.1:9", ""))


def test_send_to_txt2img_text_names_the_cloud_choice() -> None:
    from sdcloud.ui.history import OpenedJob
    from sdcloud.webui_job import parse_infotext_value, with_cloud_choice

    text = "a fox\nSteps: 4, Sampler: Euler, Seed: 1, Size: 64x64"
    opened = OpenedJob("", "job-1", [], [text], "local", CHECKPOINT)
    assert opened.infotext == text  # shown as in the PNG
    assert opened.paste_text == f"{text}, SD Cloud: local/{CHECKPOINT}"
    odd = with_cloud_choice(text, "gpu, eu", "models/a:b.safetensors")  # quoted as the WebUI quotes
    assert odd.endswith('SD Cloud: "gpu, eu/models/a:b.safetensors"')
    assert parse_infotext_value("gpu, eu/models/a:b.safetensors") == ("gpu, eu", "models/a:b.safetensors")
    already = f"{text}, SD Cloud: other/x.safetensors"
    assert with_cloud_choice(already, "local", CHECKPOINT) == already
    assert with_cloud_choice("", "local", CHECKPOINT) == ""


def test_endpoint_row_clicks_and_the_listing_fields() -> None:
    from sdcloud.ui.history import row_key_for_select

    rows = endpoint_rows([Endpoint("b-gpu", "async", "InService"), Endpoint("a-gpu", "async", "InService")])
    # sorted by name on screen, the first row is a-gpu; its State cell is shared by both rows
    assert row_key_for_select(rows, [0, 0], "a-gpu", key_column=0, rows_as_shown=False) == "a-gpu"
    assert row_key_for_select(list(reversed(rows)), [0, 2], "in service", key_column=0) == "a-gpu"
    assert row_key_for_select(rows, [0, 2], "in service", key_column=0, rows_as_shown=False) is None

    listed = Endpoint.from_json({"name": "sd15", "kind": "async", "status": "Failed", "failure_reason": "no quota",
                                 "instance_type": "ml.g5.xlarge", "current_instances": 0, "desired_instances": 1,
                                 "min_instances": 0, "max_instances": 2})
    assert (listed.failure_reason, listed.current_instances, listed.max_instances) == ("no quota", 0, 2)
    assert state_label(listed) == "failed: no quota"
    assert Endpoint.from_json({"name": "local", "status": "InService"}).current_instances is None
