"""The fake container speaks the container contract (it stands in for the real one in API tests)."""

import base64
import io
import json
import threading

import requests
from PIL import Image

from tests.fakes.fake_container import FakeContainer, png_bytes


def test_png_is_valid_and_carries_parameters():
    image = Image.open(io.BytesIO(png_bytes(16, 8, parameters="a cat\nSteps: 5, Seed: 1")))
    image.load()
    assert image.size == (16, 8) and image.mode == "RGB"
    assert image.info["parameters"] == "a cat\nSteps: 5, Seed: 1"
    unicode = Image.open(io.BytesIO(png_bytes(parameters="ねこ")))
    assert unicode.info["parameters"] == "ねこ"


def test_contract_routes():
    with FakeContainer() as fake:
        assert requests.get(f"{fake.url}/ping", timeout=5).json() == {"status": "ok"}
        progress = requests.get(f"{fake.url}/progress", timeout=5).json()
        assert set(progress) == {
            "job_id", "phase", "step", "steps", "fraction", "iteration", "n_iter", "queue_depth"
        }  # fmt: skip
        doc = {
            "id": "j1",
            "task": "txt2img",
            "payload": {"prompt": "cat", "batch_size": 2, "seed": 7},
            "models": {},
        }
        body = requests.post(f"{fake.url}/invocations", json=doc, timeout=5).json()
        assert len(body["images"]) == 2
        info = json.loads(body["info"])
        assert info["all_seeds"] == [7, 8] and len(info["infotexts"]) == 2
        first = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
        assert first.info["parameters"] == info["infotexts"][0]
        assert requests.get(f"{fake.url}/progress", timeout=5).json()["job_id"] == "j1"


def test_knobs_and_remote_control():
    with FakeContainer() as fake:
        requests.post(
            f"{fake.url}/_fake/config", json={"fail_status": 422, "fail_detail": "bad model"}, timeout=5
        )
        resp = requests.post(f"{fake.url}/invocations", json={"id": "j2", "payload": {}}, timeout=5)
        assert resp.status_code == 422 and resp.json()["detail"] == "bad model"
        fake.configure(fail_status=None, ready=False)
        assert requests.get(f"{fake.url}/ping", timeout=5).status_code == 503
        got = requests.get(f"{fake.url}/_fake/invocations", timeout=5).json()["invocations"]
        assert [d["id"] for d in got] == ["j2"]
        fake.down()
        try:
            requests.get(f"{fake.url}/ping", timeout=2)
            reachable = True
        except requests.ConnectionError:
            reachable = False
        assert not reachable
        fake.up()
        fake.configure(ready=True)
        assert requests.get(f"{fake.url}/ping", timeout=5).status_code == 200


def test_with_an_output_folder_it_writes_images_and_result_json_under_the_prefix(tmp_path):
    with FakeContainer(output_dir=str(tmp_path)) as fake:
        doc = {"id": "j3", "payload": {"prompt": "cat", "batch_size": 2}, "output": {"prefix": "jobs/j3/"}}
        body = requests.post(f"{fake.url}/invocations", json=doc, timeout=5).json()
    assert body["output"]["images"] == [{"key": "jobs/j3/images/0.png"}, {"key": "jobs/j3/images/1.png"}]
    assert body["interrupted"] is False and "images" not in body
    assert json.loads((tmp_path / "jobs/j3/result.json").read_text()) == body
    assert (tmp_path / "jobs/j3/images/1.png").read_bytes().startswith(b"\x89PNG")


def _run_in_background(fake, doc):
    answer = {}

    def call():
        answer["body"] = requests.post(f"{fake.url}/invocations", json=doc, timeout=30).json()

    thread = threading.Thread(target=call)
    thread.start()
    return thread, answer


def _wait_sampling(fake, job_id, iteration=0):
    while not (
        fake.state.progress["job_id"] == job_id
        and fake.state.progress["phase"] == "sampling"
        and fake.state.progress["iteration"] == iteration
    ):
        threading.Event().wait(0.005)


def test_interrupt_endpoint_answers_the_images_sampled_so_far(tmp_path):
    with FakeContainer(output_dir=str(tmp_path), delay_s=60) as fake:
        doc = {"id": "j4", "payload": {"batch_size": 2, "n_iter": 3}, "output": {"prefix": "jobs/j4/"}}
        thread, answer = _run_in_background(fake, doc)
        _wait_sampling(fake, "j4")
        resp = requests.post(f"{fake.url}/jobs/j4/interrupt", timeout=5)
        assert resp.status_code == 202
        assert resp.json() == {"job_id": "j4", "action": "interrupt", "state": "running"}
        thread.join(30)
    assert answer["body"]["interrupted"] is True and len(answer["body"]["output"]["images"]) == 2
    assert fake.state.interrupts == ["j4"]


def test_cancel_and_skip_markers_are_obeyed_between_steps(tmp_path):
    with FakeContainer(output_dir=str(tmp_path), delay_s=60) as fake:
        doc = {"id": "j5", "payload": {"n_iter": 3}, "output": {"prefix": "jobs/j5/"}}
        thread, answer = _run_in_background(fake, doc)
        _wait_sampling(fake, "j5")
        (tmp_path / "jobs/j5").mkdir(parents=True, exist_ok=True)
        (tmp_path / "jobs/j5/skip").write_text(json.dumps({"iteration": 0}))
        _wait_sampling(fake, "j5", iteration=1)
        (tmp_path / "jobs/j5/cancel").write_text(json.dumps({"action": "interrupt"}))
        thread.join(30)
    body = answer["body"]
    assert body["interrupted"] is True and len(body["output"]["images"]) == 2  # iteration 0, and 1 cut short
