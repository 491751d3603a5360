"""The container's HTTP contract over a real loopback server, with a fake engine."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from inference_container.app import EngineState, create_app
from inference_container.outputs import FolderOutputStore
from tests.fakes.fake_engine import FakeEngine
from tests.support.servers import serve_in_thread


def _ready_state() -> EngineState:
    state = EngineState()
    state.ready.set()
    return state


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def server(engine):
    app = create_app(engine, max_waiting=1, max_body_bytes=10_000, state=_ready_state())
    with serve_in_thread(app) as url:
        yield url
        engine.release.set()
        engine.allow(1000)  # a gated job the test left behind must not hold the shutdown up


def test_ping_is_503_until_ready_then_200(engine):
    state = EngineState()
    app = create_app(engine, max_waiting=1, max_body_bytes=10_000, state=state)
    with serve_in_thread(app) as url:
        assert requests.get(f"{url}/ping", timeout=5).status_code == 503
        refused = requests.post(f"{url}/invocations", json={"id": "a"}, timeout=5)
        assert refused.status_code == 503 and refused.json()["code"] == "not_ready"
        state.ready.set()
        assert requests.get(f"{url}/ping", timeout=5).json() == {"status": "ok"}


def test_ping_reports_start_up_failure(engine):
    state = EngineState()
    state.failure = "start-up failed: checkpoint missing"
    with serve_in_thread(create_app(engine, max_waiting=1, max_body_bytes=100, state=state)) as url:
        response = requests.get(f"{url}/ping", timeout=5)
    assert response.status_code == 503
    assert "checkpoint missing" in response.json()["detail"]


def test_invocation_returns_the_engine_body(server):
    response = requests.post(f"{server}/invocations", json={"id": "job-1"}, timeout=10)
    assert response.status_code == 200
    assert response.json()["job"] == "job-1"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"no_id": 1}', 400, "job needs an id"),
        (b"x" * 20_000, 413, "limit"),
    ],
)
def test_bad_bodies_get_clear_errors_and_the_server_stays_healthy(server, body, status, needle):
    response = requests.post(f"{server}/invocations", data=body, timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert needle in response.json()["detail"]
    assert requests.post(f"{server}/invocations", json={"id": "next"}, timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("action", "status", "code"),
    [("oom", 507, "out_of_memory"), ("engine_error", 500, "engine_error"), ("crash", 500, "internal_error")],
)
def test_engine_failures_map_to_json_errors(server, action, status, code):
    response = requests.post(f"{server}/invocations", json={"id": "j", "action": action}, timeout=10)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert "Traceback" not in response.text
    assert requests.post(f"{server}/invocations", json={"id": "after"}, timeout=10).status_code == 200


def test_queue_full_answers_429_while_ping_and_progress_stay_up(server, engine):
    engine.release.clear()
    results: dict[str, int] = {}

    def post(job_id: str) -> None:
        results[job_id] = requests.post(f"{server}/invocations", json={"id": job_id}, timeout=30).status_code

    running = threading.Thread(target=post, args=("running",))
    running.start()
    assert engine.started.wait(10)
    waiting = threading.Thread(target=post, args=("waiting",))
    waiting.start()
    # the second job waits in the queue (limit 1); wait until the server counts it
    for _ in range(200):
        if requests.get(f"{server}/progress", timeout=5).json()["queue_depth"] == 1:
            break
        threading.Event().wait(0.02)
    rejected = requests.post(f"{server}/invocations", json={"id": "third"}, timeout=10)
    assert rejected.status_code == 429
    assert rejected.headers["Retry-After"]
    assert requests.get(f"{server}/ping", timeout=2).status_code == 200
    progress = requests.get(f"{server}/progress", timeout=2).json()
    assert progress["job_id"] == "running" and progress["phase"] == "sampling"
    assert (progress["step"], progress["steps"], progress["fraction"]) == (3, 10, 0.3)
    engine.release.set()
    running.join(30)
    waiting.join(30)
    assert results == {"running": 200, "waiting": 200}
    assert engine.runs == ["running", "waiting"]


def test_progress_of_a_named_job_and_unknown_job(server):
    assert requests.post(f"{server}/invocations", json={"id": "named"}, timeout=10).status_code == 200
    assert requests.get(f"{server}/progress", params={"job_id": "named"}, timeout=5).json()["phase"] == "done"
    missing = requests.get(f"{server}/progress", params={"job_id": "nope"}, timeout=5)
    assert missing.status_code == 404


# --- bad bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [32, 1000, 4000])
def test_deeply_nested_json_is_a_400_not_a_recursion_error(server, depth):
    body = b'{"id": "deep", "payload": ' + b"[" * depth + b"]" * depth + b"}"
    response = requests.post(f"{server}/invocations", data=body, timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert f"nested {depth + 1} levels deep; the limit is 32" in response.json()["detail"]
    assert requests.post(f"{server}/invocations", json={"id": "next"}, timeout=10).status_code == 200


def test_nesting_up_to_the_bound_and_brackets_inside_strings_are_fine(server):
    inner = "[" * 30 + "]" * 30  # 32 levels with the two objects around it
    body = json.dumps({"id": "ok", "payload": {"prompt": "[" * 500, "deep": json.loads(inner)}})
    response = requests.post(f"{server}/invocations", data=body.encode(), timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"id": "s", "payload": {"prompt": "a \\ud800 b"}}', "payload.prompt"),
        (b'{"id": "s", "payload": {"styles": ["x", "\\udfff"]}}', "payload.styles[1]"),
        (b'{"id": "s", "payload": {"\\ud800": 1}}', "payload.\ufffd"),
    ],
)
def test_lone_surrogates_are_a_400_naming_the_field(server, body, field):
    response = requests.post(f"{server}/invocations", data=body, timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field and "surrogate" in response.json()["detail"]


def test_an_error_message_holding_a_surrogate_is_still_json(server):
    response = requests.post(f"{server}/invocations", json={"id": "e", "action": "surrogate_error"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["field"] == "payload.prompt" and "cannot be encoded" in response.json()["detail"]


def test_a_second_job_with_a_running_id_is_a_409(server, engine):
    engine.release.clear()
    first = threading.Thread(target=requests.post, args=(f"{server}/invocations",),
                             kwargs={"json": {"id": "dup"}, "timeout": 30})
    first.start()
    assert engine.started.wait(10)
    again = requests.post(f"{server}/invocations", json={"id": "dup"}, timeout=10)
    assert again.status_code == 409 and again.json()["field"] == "id"
    engine.release.set()
    first.join(30)
    assert requests.post(f"{server}/invocations", json={"id": "dup"}, timeout=10).status_code == 200


# --- interrupt and skip -------------------------------------------------------------------------------


class _Call:
    """POST /invocations on a thread; ``result()`` waits for its answer."""

    def __init__(self, url: str, job: dict) -> None:
        self.response: requests.Response | None = None
        self._thread = threading.Thread(target=self._post, args=(url, job))
        self._thread.start()

    def _post(self, url: str, job: dict) -> None:
        self.response = requests.post(f"{url}/invocations", json=job, timeout=60)

    def result(self) -> requests.Response:
        self._thread.join(60)
        assert self.response is not None, "the invocation did not answer"
        return self.response

    @property
    def answered(self) -> bool:
        return self.response is not None


def _progress(url: str, job_id: str) -> dict:
    return requests.get(f"{url}/progress", params={"job_id": job_id}, timeout=5).json()


def _wait_queue_depth(url: str, depth: int) -> None:
    for _ in range(500):
        if requests.get(f"{url}/progress", timeout=5).json()["queue_depth"] == depth:
            return
        threading.Event().wait(0.02)
    raise AssertionError(f"queue depth never reached {depth}")


def test_interrupt_of_a_running_job_stops_it_at_the_next_step(server, engine):
    engine.gated = True
    call = _Call(server, {"id": "run", "steps": 5, "n_iter": 2})
    engine.allow(2)
    engine.wait_for_polls(2)
    progress = _progress(server, "run")
    assert (progress["phase"], progress["step"], progress["steps"]) == ("sampling", 2, 10)
    assert (progress["iteration"], progress["n_iter"]) == (0, 2)

    accepted = requests.post(f"{server}/jobs/run/interrupt", timeout=5)
    assert accepted.status_code == 202
    assert accepted.json() == {"job_id": "run", "action": "interrupt", "state": "running"}
    engine.allow(1)
    response = call.result()
    assert response.status_code == 200
    body = response.json()
    assert body["interrupted"] is True and body["images"] == ["run/iteration-0/steps-2"]
    assert engine.polls == [("run", 0, "continue"), ("run", 0, "continue"), ("run", 0, "interrupt")]
    after = _progress(server, "run")
    assert (after["phase"], after["step"]) == ("interrupted", 2)


def test_interrupt_of_a_queued_job_answers_it_at_once(server, engine):
    engine.gated = True
    running = _Call(server, {"id": "first", "steps": 2})
    engine.allow(1)
    engine.wait_for_polls(1)
    queued = _Call(server, {"id": "second", "steps": 2})
    _wait_queue_depth(server, 1)

    accepted = requests.post(f"{server}/jobs/second/interrupt", timeout=5)
    assert accepted.json() == {"job_id": "second", "action": "interrupt", "state": "queued"}
    response = queued.result()  # answered while "first" still holds the GPU
    assert not running.answered
    assert response.status_code == 200 and response.json()["interrupted"] is True
    assert response.json()["images"] == []
    assert _progress(server, "second")["phase"] == "interrupted"
    assert requests.get(f"{server}/progress", timeout=5).json()["queue_depth"] == 0

    engine.allow(1)
    assert running.result().json()["interrupted"] is False
    assert engine.runs == ["first"]  # the interrupted job never reached the GPU
    late = requests.post(f"{server}/jobs/second/interrupt", timeout=5).json()
    assert late["state"] == "finished"


def test_interrupt_of_an_unknown_job_is_harmless(server):
    response = requests.post(f"{server}/jobs/never-seen/skip", timeout=5)
    assert response.status_code == 202
    assert response.json() == {"job_id": "never-seen", "action": "skip", "state": "unknown"}


def test_skip_ends_the_running_iteration_and_goes_on_with_the_next(server, engine):
    engine.gated = True
    call = _Call(server, {"id": "sk", "steps": 3, "n_iter": 3})
    engine.allow(1)
    engine.wait_for_polls(1)
    accepted = requests.post(f"{server}/jobs/sk/skip", timeout=5)
    assert accepted.json() == {"job_id": "sk", "action": "skip", "state": "running"}
    # and the last iteration, named explicitly before it starts
    assert requests.post(f"{server}/jobs/sk/skip", json={"iteration": 2}, timeout=5).status_code == 202
    engine.allow(100)
    body = call.result().json()
    assert body["interrupted"] is False and body["skipped_iterations"] == [0, 2]
    assert body["images"] == ["sk/iteration-0/steps-1", "sk/iteration-1/steps-3", "sk/iteration-2/steps-0"]
    assert [(i, a) for _, i, a in engine.polls] == [
        (0, "continue"), (0, "skip"), (1, "continue"), (1, "continue"), (1, "continue"), (2, "skip")]
    assert _progress(server, "sk")["phase"] == "done"


def test_skip_with_a_bad_iteration_is_a_400(server):
    response = requests.post(f"{server}/jobs/x/skip", json={"iteration": -1}, timeout=5)
    assert response.status_code == 400 and response.json()["field"] == "iteration"


# --- markers in the output store ------------------------------------------------------------------------


@pytest.fixture
def store_root(tmp_path):
    return tmp_path / "blobs"


@pytest.fixture
def marker_server(engine, store_root):
    app = create_app(engine, max_waiting=2, max_body_bytes=10_000, state=_ready_state(),
                     output_store=FolderOutputStore(store_root), marker_poll_s=0)
    with serve_in_thread(app) as url:
        yield url
        engine.allow(1000)


def test_markers_skip_and_cancel_a_job_without_any_http_call(marker_server, engine, store_root):
    engine.gated = True
    job_dir = store_root / "jobs" / "m"
    job_dir.mkdir(parents=True)
    call = _Call(marker_server, {"id": "m", "steps": 4, "n_iter": 3, "output": {"prefix": "jobs/m/"}})
    engine.allow(1)
    engine.wait_for_polls(1)
    (job_dir / "skip").write_text(json.dumps({"iteration": 0}))
    engine.allow(2)
    engine.wait_for_polls(3)
    (job_dir / "cancel").write_text(json.dumps({"action": "interrupt"}))
    engine.allow(1)
    body = call.result().json()
    assert [(i, a) for _, i, a in engine.polls] == [(0, "continue"), (0, "skip"), (1, "continue"), (1, "interrupt")]
    assert body["interrupted"] is True and body["skipped_iterations"] == [0]
    assert body["images"] == ["m/iteration-0/steps-1", "m/iteration-1/steps-1"]


def test_a_cancel_marker_written_before_the_job_arrives_stops_it_before_any_work(marker_server, engine,
                                                                                 store_root):
    (store_root / "jobs" / "early").mkdir(parents=True)
    (store_root / "jobs" / "early" / "cancel").write_bytes(b"")
    body = requests.post(f"{marker_server}/invocations",
                         json={"id": "early", "steps": 2, "output": {"prefix": "jobs/early/"}}, timeout=10).json()
    assert body["interrupted"] is True and body["images"] == []
    assert engine.runs == []


def test_a_malformed_skip_marker_is_ignored(marker_server, engine, store_root):
    (store_root / "jobs" / "bad").mkdir(parents=True)
    (store_root / "jobs" / "bad" / "skip").write_text("{not json")
    body = requests.post(f"{marker_server}/invocations",
                         json={"id": "bad", "steps": 2, "output": {"prefix": "jobs/bad/"}}, timeout=10).json()
    assert body["interrupted"] is False and body["skipped_iterations"] == []
