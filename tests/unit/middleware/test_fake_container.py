"""The fake container speaks the container contract (it stands in for the real one in API tests)."""

import base64
import io
import json

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
        assert set(progress) == {"job_id", "phase", "step", "steps", "fraction", "queue_depth"}
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
