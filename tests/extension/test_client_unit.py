"""SDCloudClient against a real scripted HTTP server on loopback: error mapping, retry rules,
long-poll, downloads, and the API key staying secret."""

from __future__ import annotations

import logging

import pytest

from sdcloud import errors
from sdcloud.client import SDCloudClient
from sdcloud.records import Job, ResultImage
from sdcloud.retrying import MAX_BACKOFF_S, backoff_delay, parse_retry_after, retry_delay
from tests.extension.conftest import API_KEY, SleepRecorder
from tests.extension.support.images import INFOTEXT, png_with_infotext
from tests.extension.support.jobs import job_json
from tests.extension.support.scripted_server import Reply, Request, ScriptedServer


def make_client(url: str, sleeps: SleepRecorder, **kwargs) -> SDCloudClient:
    kwargs.setdefault("timeout", (2, 5))
    return SDCloudClient(url, API_KEY, sleep=sleeps, **kwargs)


# ---- basics ---------------------------------------------------------------------------------


def test_ping_needs_no_key_and_me_sends_bearer(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("GET", "/v1/ping", Reply(json={"status": "ok", "version": "0.1.0", "mode": "local"}))
    server.route("GET", "/v1/me", Reply(json={"user": "admin", "role": "admin", "extra": 1}))
    client = make_client(server.url + "/", sleeps)

    info = client.ping()
    user = client.me()

    assert (info.status, info.version, info.mode) == ("ok", "0.1.0", "local")
    assert (user.user, user.role) == ("admin", "admin")
    assert "authorization" not in server.calls("GET", "/v1/ping")[0].headers
    assert server.calls("GET", "/v1/me")[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_lists_parse_with_extra_fields_and_pagination(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route(
        "GET",
        "/v1/endpoints",
        Reply(
            json={
                "items": [{"name": "local", "kind": "local", "status": "InService", "detail": "", "new": 1}]
            }
        ),
    )
    server.route(
        "GET",
        "/v1/models",
        Reply(
            json={
                "items": [
                    {"name": "tiny-sd15.safetensors", "type": "checkpoint", "size": 10, "sha256": "ab" * 32}
                ]
            }
        ),
    )

    def inferences(req: Request) -> Reply:
        if req.param("cursor") == "c2":
            return Reply(json={"items": [job_json("j3")], "next_cursor": None})
        return Reply(json={"items": [job_json("j1"), job_json("j2")], "next_cursor": "c2"})

    server.route("GET", "/v1/inferences", inferences)
    client = make_client(server.url, sleeps)

    [endpoint] = client.list_endpoints()
    [model] = client.list_models()
    page = client.list_inferences(limit=2)
    everything = [job.id for job in client.iter_inferences(page_size=2)]

    assert endpoint.name == "local" and endpoint.in_service
    assert model.name == "tiny-sd15.safetensors" and model.short_hash == "ab" * 5
    assert server.calls("GET", "/v1/models")[0].param("type") == "checkpoint"
    assert [j.id for j in page.items] == ["j1", "j2"] and page.next_cursor == "c2"
    assert everything == ["j1", "j2", "j3"]
    assert [r.param("limit") for r in server.calls("GET", "/v1/inferences")][-2:] == ["2", "2"]


@pytest.mark.parametrize(
    ("bad_url", "fragment"),
    [
        ("ftp://host", "http://"),
        ("localhost:8000", "http://"),
        ("http://u:p@host", "user name"),
        ("", "http://"),
    ],
)
def test_bad_api_url_is_refused_with_a_reason(bad_url: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        SDCloudClient(bad_url, API_KEY)


# ---- error mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.ValidationFailed),
        (401, errors.AuthError),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (413, errors.PayloadTooLarge),
        (422, errors.ValidationFailed),
        (429, errors.RateLimited),
        (500, errors.ServerError),
        (503, errors.ServerError),
        (418, errors.ApiError),
    ],
)
def test_problem_json_maps_to_exception_tree(
    server: ScriptedServer, sleeps: SleepRecorder, status: int, cls: type
) -> None:
    server.route("GET", "/v1/me", Reply.problem(status, "Some Title", f"detail for {status}"))
    client = make_client(server.url, sleeps, retries=0)

    with pytest.raises(cls) as caught:
        client.me()

    exc = caught.value
    assert isinstance(exc, errors.ApiError) and isinstance(exc, errors.SDCloudError)
    assert type(exc) is cls
    assert exc.status == status and exc.title == "Some Title" and exc.detail == f"detail for {status}"
    assert f"detail for {status}" in str(exc)


def test_validation_errors_name_the_fields(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route(
        "POST",
        "/v1/inferences",
        Reply.problem(
            400,
            "Invalid request",
            "2 fields are invalid",
            errors=[
                {"field": "payload.width", "message": "must be a multiple of 8 (got 500)"},
                {"field": "payload.sampler_name", "message": "unknown sampler 'Foo'"},
            ],
        ),
    )
    client = make_client(server.url, sleeps)

    with pytest.raises(errors.ValidationFailed) as caught:
        client.submit_inference("txt2img", {"width": 500}, "tiny-sd15.safetensors")

    assert caught.value.fields == ["payload.width", "payload.sampler_name"]
    assert caught.value.errors[0].message == "must be a multiple of 8 (got 500)"
    assert "payload.width: must be a multiple of 8 (got 500)" in str(caught.value)
    assert len(server.calls("POST", "/v1/inferences")) == 1  # a 400 is never retried


def test_container_style_error_with_single_field(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    body = {
        "status": 400,
        "code": "invalid_request",
        "detail": "width must be a multiple of 8 (got 500)",
        "field": "payload.width",
    }
    server.route("GET", "/v1/me", Reply(400, json=body))

    with pytest.raises(errors.ValidationFailed) as caught:
        make_client(server.url, sleeps).me()

    assert caught.value.fields == ["payload.width"]
    assert caught.value.title == "invalid_request"


def test_non_json_error_page_becomes_readable_server_error(
    server: ScriptedServer, sleeps: SleepRecorder
) -> None:
    server.route(
        "GET",
        "/v1/me",
        Reply(500, body=b"<html><body>Internal stuff</body></html>", content_type="text/html"),
    )

    with pytest.raises(errors.ServerError) as caught:
        make_client(server.url, sleeps, retries=0).me()

    assert caught.value.status == 500
    assert "<html>" not in str(caught.value)


def test_non_json_success_is_reported_not_crashing(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("GET", "/v1/me", Reply(200, body=b"hello", content_type="text/plain"))

    with pytest.raises(errors.ServerError, match="not JSON"):
        make_client(server.url, sleeps).me()


def test_cancel_finished_job_is_conflict(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("DELETE", "/v1/inferences/j1", Reply.problem(409, "Conflict", "job j1 is already succeeded"))

    with pytest.raises(errors.Conflict, match="already succeeded"):
        make_client(server.url, sleeps).cancel_inference("j1")
    assert len(server.calls("DELETE", "/v1/inferences/j1")) == 1


def test_job_ids_cannot_change_the_path(sleeps: SleepRecorder) -> None:
    client = SDCloudClient("http://127.0.0.1:9", API_KEY, sleep=sleeps)
    for bad in ("../v1/me", "a/b", "", "x?y"):
        with pytest.raises(ValueError, match="not a valid id"):
            client.get_inference(bad)


# ---- retries --------------------------------------------------------------------------------


def test_429_with_retry_after_then_200_is_retried_after_the_hint(
    server: ScriptedServer, sleeps: SleepRecorder
) -> None:
    server.route(
        "GET",
        "/v1/inferences/j1",
        Reply(429, json={"title": "busy"}, headers={"Retry-After": "2"}),
        Reply(json=job_json("j1")),
    )
    client = make_client(server.url, sleeps)

    job = client.get_inference("j1")

    assert job.id == "j1"
    assert len(server.calls("GET", "/v1/inferences/j1")) == 2
    assert sleeps.delays == [2.0]


def test_429_exhausted_raises_rate_limited_with_hint(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("GET", "/v1/me", Reply(429, json={"title": "busy"}, headers={"Retry-After": "1"}))

    with pytest.raises(errors.RateLimited) as caught:
        make_client(server.url, sleeps, retries=2).me()

    assert caught.value.retry_after == 1.0
    assert len(server.calls("GET", "/v1/me")) == 3
    assert sleeps.delays == [1.0, 1.0]


def test_retry_after_too_long_is_not_waited_for(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("GET", "/v1/me", Reply(503, json={"title": "down"}, headers={"Retry-After": "3600"}))

    with pytest.raises(errors.ServerError):
        make_client(server.url, sleeps).me()

    assert len(server.calls("GET", "/v1/me")) == 1 and sleeps.delays == []


def test_post_without_idempotency_key_is_not_retried(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route(
        "POST", "/v1/things", Reply(503, json={"title": "Service Unavailable"}), Reply(json={"ok": True})
    )

    with pytest.raises(errors.ServerError):
        make_client(server.url, sleeps).request_json("POST", "/v1/things", body={"a": 1})

    assert len(server.calls("POST", "/v1/things")) == 1 and sleeps.delays == []


def test_post_with_idempotency_key_is_retried_with_the_same_key(
    server: ScriptedServer, sleeps: SleepRecorder
) -> None:
    server.route(
        "POST", "/v1/things", Reply(503, json={"title": "Service Unavailable"}), Reply(json={"ok": True})
    )

    result = make_client(server.url, sleeps).request_json(
        "POST", "/v1/things", body={"a": 1}, idempotency_key="k-1"
    )

    calls = server.calls("POST", "/v1/things")
    assert result == {"ok": True}
    assert [c.headers.get("idempotency-key") for c in calls] == ["k-1", "k-1"]
    assert [c.json() for c in calls] == [{"a": 1}, {"a": 1}]


def test_submit_generates_one_key_per_logical_submit(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route(
        "POST",
        "/v1/inferences",
        Reply(503, json={"title": "unavailable"}),
        Reply(429, json={"title": "busy"}, headers={"Retry-After": "0"}),
        Reply(202, json=job_json("j9")),
    )
    client = make_client(server.url, sleeps)

    job = client.submit_inference("txt2img", {"prompt": "fox"}, "tiny-sd15.safetensors", endpoint="local")
    second = client.submit_inference("txt2img", {"prompt": "fox"}, "tiny-sd15.safetensors")

    calls = server.calls("POST", "/v1/inferences")
    keys = [c.headers["idempotency-key"] for c in calls]
    assert job.id == "j9" and second.id == "j9"
    assert len(calls) == 4
    assert keys[0] == keys[1] == keys[2] and keys[3] != keys[0]
    assert calls[0].json() == {
        "task": "txt2img",
        "payload": {"prompt": "fox"},
        "checkpoint": "tiny-sd15.safetensors",
        "endpoint": "local",
    }
    assert "endpoint" not in calls[3].json()


def test_explicit_idempotency_key_is_sent(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("POST", "/v1/inferences", Reply(202, json=job_json("j1")))

    make_client(server.url, sleeps).submit_inference("txt2img", {}, "m", idempotency_key="mine-1")

    assert server.calls("POST", "/v1/inferences")[0].headers["idempotency-key"] == "mine-1"


def test_other_4xx_never_retried_even_for_get(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    for status in (400, 401, 404, 413):
        server.route("GET", f"/v1/s{status}", Reply.problem(status, "nope"))
        with pytest.raises(errors.ApiError):
            make_client(server.url, sleeps).request_json("GET", f"/v1/s{status}")
        assert len(server.calls("GET", f"/v1/s{status}")) == 1
    assert sleeps.delays == []


def test_500_is_not_retried_but_502_503_504_are_for_get(
    server: ScriptedServer, sleeps: SleepRecorder
) -> None:
    server.route("GET", "/v1/s500", Reply(500, json={}), Reply(json={}))
    with pytest.raises(errors.ServerError):
        make_client(server.url, sleeps).request_json("GET", "/v1/s500")
    assert len(server.calls("GET", "/v1/s500")) == 1
    for status in (502, 503, 504):
        server.route("GET", f"/v1/s{status}", Reply(status, json={}), Reply(json={"fine": status}))
        assert make_client(server.url, sleeps).request_json("GET", f"/v1/s{status}") == {"fine": status}
        assert len(server.calls("GET", f"/v1/s{status}")) == 2


def test_backoff_is_exponential_and_bounded(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("GET", "/v1/me", Reply(503, json={"title": "down"}))

    with pytest.raises(errors.ServerError):
        make_client(server.url, sleeps, retries=6, backoff=0.5).me()

    assert len(server.calls("GET", "/v1/me")) == 7
    assert len(sleeps.delays) == 6
    for attempt, delay in enumerate(sleeps.delays):
        ceiling = min(MAX_BACKOFF_S, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_delay_bounds_and_jitter() -> None:
    assert backoff_delay(0, 0.5, rand=lambda: 0.0) == 0.25
    assert backoff_delay(0, 0.5, rand=lambda: 1.0) == 0.5
    assert backoff_delay(3, 0.5, rand=lambda: 1.0) == 4.0
    assert backoff_delay(30, 0.5, rand=lambda: 1.0) == MAX_BACKOFF_S
    assert retry_delay(0, 0.5, retry_after=7.0) == 7.0
    assert retry_delay(0, 0.5, retry_after=10_000.0) is None


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412470.0) == 10.0
    assert parse_retry_after("-5") == 0.0


def test_connection_refused_raises_connection_failed_after_retries(
    refused_url: str, sleeps: SleepRecorder
) -> None:
    client = make_client(refused_url, sleeps, retries=2)

    with pytest.raises(errors.ConnectionFailed, match="refused"):
        client.me()
    # nothing was sent, so even a POST without a key may be tried again
    with pytest.raises(errors.ConnectionFailed):
        client.request_json("POST", "/v1/things", body={})

    assert len(sleeps.delays) == 4


def test_slow_get_times_out_and_is_retried(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("GET", "/v1/me", Reply(json={"user": "a"}, delay=1.0))

    with pytest.raises(errors.Timeout):
        make_client(server.url, sleeps, timeout=(2, 0.2), retries=1).me()

    assert len(server.calls("GET", "/v1/me")) == 2


def test_slow_post_without_key_times_out_once(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("POST", "/v1/things", Reply(json={}, delay=1.0))

    with pytest.raises(errors.Timeout):
        make_client(server.url, sleeps, timeout=(2, 0.2)).request_json("POST", "/v1/things", body={})

    assert len(server.calls("POST", "/v1/things")) == 1


def test_long_poll_read_timeout_covers_the_wait(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("GET", "/v1/inferences/j1", Reply(json=job_json("j1", version=4), delay=0.6))
    client = make_client(server.url, sleeps, timeout=(2, 0.2), retries=0)

    job = client.get_inference("j1", wait=1, version=3)

    call = server.calls("GET", "/v1/inferences/j1")[0]
    assert job.version == 4
    assert (call.param("wait"), call.param("version")) == ("1", "3")


# ---- waiting for jobs ------------------------------------------------------------------------


def _scripted_job(server: ScriptedServer, views: list[dict]) -> None:
    """GET /v1/inferences/j1 returns the next view when asked for a new version."""
    state = {"i": 0}

    def handler(req: Request) -> Reply:
        if req.param("version") is not None and state["i"] < len(views) - 1:
            state["i"] += 1
        return Reply(json=views[state["i"]])

    server.route("GET", "/v1/inferences/j1", handler)


def test_wait_for_long_polls_and_reports_progress(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    _scripted_job(
        server,
        [
            job_json("j1", "queued", 1),
            job_json("j1", "running", 2, phase="loading_model"),
            job_json("j1", "running", 3, phase="sampling", step=10, steps=20),
            job_json(
                "j1", "succeeded", 4, phase="done", step=20, images=[{"index": 0, "key": "k", "url": "/b"}]
            ),
        ],
    )
    seen: list[Job] = []

    job = make_client(server.url, sleeps).wait_for("j1", timeout=60, on_progress=seen.append)

    calls = server.calls("GET", "/v1/inferences/j1")
    assert job.status == "succeeded" and len(job.images) == 1
    assert [j.version for j in seen] == [1, 2, 3, 4]
    assert seen[2].progress.step == 10 and seen[2].progress.steps == 20
    assert calls[0].param("wait") is None
    assert [(c.param("wait"), c.param("version")) for c in calls[1:]] == [
        ("20", "1"),
        ("20", "2"),
        ("20", "3"),
    ]
    assert sleeps.delays == []  # long-poll, no fixed-interval sleeping


def test_wait_for_raises_job_failed_with_the_reason(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    _scripted_job(
        server,
        [
            job_json("j1", "running", 1, phase="sampling"),
            job_json("j1", "failed", 2, error={"code": "oom", "message": "CUDA out of memory at 2048x2048"}),
        ],
    )

    with pytest.raises(errors.JobFailed, match="CUDA out of memory") as caught:
        make_client(server.url, sleeps).wait_for("j1")

    assert caught.value.job.error.code == "oom"


def test_wait_for_raises_job_cancelled(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    _scripted_job(server, [job_json("j1", "queued", 1), job_json("j1", "cancelled", 2)])

    with pytest.raises(errors.JobCancelled):
        make_client(server.url, sleeps).wait_for("j1")


def test_wait_for_times_out_when_job_never_ends(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.route("GET", "/v1/inferences/j1", Reply(json=job_json("j1", "running", 1), delay=0.3))

    with pytest.raises(errors.Timeout, match="did not finish"):
        make_client(server.url, sleeps).wait_for("j1", timeout=1)


# ---- images ---------------------------------------------------------------------------------


def test_download_keeps_png_bytes_and_infotext(
    server: ScriptedServer, sleeps: SleepRecorder, tmp_path
) -> None:
    png = png_with_infotext()
    server.route("GET", "/v1/blobs/jobs/j1/images/0.png", Reply(body=png, content_type="image/png"))
    image = ResultImage(
        index=0,
        key="jobs/j1/images/0.png",
        url=server.url + "/v1/blobs/jobs/j1/images/0.png?expires=9&sig=ab",
        job_id="j1",
    )
    client = make_client(server.url, sleeps)

    path = client.download_image(image, tmp_path / "out")
    relative = client.download_image("/v1/blobs/jobs/j1/images/0.png?sig=cd", tmp_path / "rel")
    decoded = client.fetch_image(image)

    assert path == tmp_path / "out" / "j1-0.png"
    assert path.read_bytes() == png
    assert relative.read_bytes() == png
    assert decoded.info["parameters"] == INFOTEXT
    assert list((tmp_path / "out").iterdir()) == [path]  # no partial files left
    blob_calls = server.calls("GET", "/v1/blobs/jobs/j1/images/0.png")
    assert all("authorization" not in c.headers for c in blob_calls)  # signed URLs need no key
    assert blob_calls[0].param("sig") == "ab"


def test_download_error_is_not_found_and_leaves_no_file(
    server: ScriptedServer, sleeps: SleepRecorder, tmp_path
) -> None:
    server.route("GET", "/v1/blobs/x.png", Reply.problem(404, "Not Found", "expired link"))

    with pytest.raises(errors.NotFound) as caught:
        make_client(server.url, sleeps).download_image(server.url + "/v1/blobs/x.png?sig=SECRETSIG", tmp_path)

    assert list(tmp_path.iterdir()) == []
    assert "SECRETSIG" not in str(caught.value)


# ---- the key stays secret --------------------------------------------------------------------


def test_api_key_never_in_exceptions_or_logs(
    server: ScriptedServer, sleeps: SleepRecorder, refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def echo_headers(req: Request) -> Reply:
        # a misbehaving proxy that echoes the request back in its error
        return Reply.problem(
            401,
            "Unauthorized",
            f"bad header: {req.headers.get('authorization')}",
            errors=[{"field": "authorization", "message": req.headers.get("authorization", "")}],
        )

    server.route("GET", "/v1/me", echo_headers)
    server.route("GET", "/v1/slow", Reply(json={}, delay=1.0))
    server.route("POST", "/v1/inferences", Reply(503, json={"detail": "down"}))
    failures: list[BaseException] = []
    client = make_client(server.url, sleeps, retries=1)
    for call in (
        client.me,
        lambda: make_client(server.url, sleeps, timeout=(2, 0.2), retries=0).request_json("GET", "/v1/slow"),
        lambda: client.submit_inference("txt2img", {}, "m"),
        lambda: make_client(refused_url, sleeps).ping(),
        lambda: make_client(refused_url, sleeps).me(),
    ):
        with pytest.raises(errors.SDCloudError) as caught:
            call()
        failures.append(caught.value)

    assert server.calls("GET", "/v1/me")[0].headers["authorization"] == f"Bearer {API_KEY}"
    for exc in failures:
        text = f"{exc} {exc!r} {vars(exc)}"
        assert API_KEY not in text
    assert isinstance(failures[0], errors.AuthError) and "***" in str(failures[0])
    assert caplog.records, "the client should log its requests at DEBUG"
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(client)


def test_key_with_line_break_is_refused_without_echo() -> None:
    with pytest.raises(ValueError) as caught:
        SDCloudClient("http://127.0.0.1:9", "abc\r\nX-Evil: 1")
    assert "abc" not in str(caught.value)


# ---- models ---------------------------------------------------------------------------------


def test_job_model_is_tolerant_and_exposes_results() -> None:
    view = job_json(
        "j1",
        "succeeded",
        5,
        images=[
            {"index": 1, "key": "jobs/j1/images/1.png", "url": "u1"},
            {"index": 0, "key": "jobs/j1/images/0.png", "url": "u0"},
        ],
        infotexts=["text 0", "text 1"],
        brand_new_field={"x": 1},
    )
    job = Job.from_json(view)

    assert job.is_terminal and job.version == 5
    assert [i.index for i in job.images] == [0, 1]
    assert [i.filename for i in job.images] == ["j1-0.png", "j1-1.png"]
    assert job.infotexts == ["text 0", "text 1"]
    assert job.result is not None and job.result.seed(1) == 1235
    assert job.created is not None and job.created.year == 2024
    sparse = Job.from_json({"id": "x"})
    assert (sparse.status, sparse.result, sparse.error, sparse.images, sparse.infotexts) == (
        "queued",
        None,
        None,
        [],
        [],
    )
