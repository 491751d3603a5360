"""The container's HTTP contract over a real loopback server, with a fake engine."""

from __future__ import annotations

import threading

import pytest
import requests

from inference_container.server import EngineState, create_app
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
