import base64
import io

import pytest
from PIL import Image

from tests.api.conftest import CHECKPOINT
from tests.fakes.fake_container import png_bytes


def assert_problem(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    return resp.json()


def test_submit_runs_and_returns_signed_images(stack):
    resp = stack.submit({"prompt": "a cat", "steps": 4, "batch_size": 2, "seed": 11})
    assert resp.status_code == 202
    job = resp.json()
    assert resp.headers["location"] == f"/v1/inferences/{job['id']}"
    assert job["status"] == "queued" and job["task"] == "txt2img" and job["owner"] == "admin"
    assert job["checkpoint"] == CHECKPOINT and job["endpoint"] == "local" and job["result"] is None
    assert job["payload"] == {"prompt": "a cat", "steps": 4, "batch_size": 2, "seed": 11}
    assert job["created_at"].endswith("Z") and job["version"] >= 1
    done = stack.wait_terminal(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["phase"] == "done" and done["progress"]["fraction"] == 1.0
    result = done["result"]
    assert [i["index"] for i in result["images"]] == [0, 1]
    assert len(result["infotexts"]) == 2 and "Seed: 11" in result["infotexts"][0]
    url = result["images"][1]["url"]
    assert url.startswith(str(stack.client.base_url).rstrip("/") + "/v1/blobs/jobs/")
    image = stack.client.get(url)  # no bearer key: the signature is the credential
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).info["parameters"] == result["infotexts"][1]
    # The container received the job document of DESIGN §4, with the job's output prefix, and
    # wrote the images and result.json there itself (one result path for local and AWS mode).
    [document] = stack.fake.invocations
    assert document["id"] == job["id"] and document["output"] == {"prefix": f"jobs/{job['id']}/"}
    assert (stack.data_dir / "blobs" / "jobs" / job["id"] / "result.json").is_file()
    assert document["models"]["checkpoint"]["name"] == CHECKPOINT
    assert document["models"]["checkpoint"]["uri"].startswith("file:///")
    assert len(document["models"]["checkpoint"]["sha256"]) == 64


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"sampler_name": "Wobbly"}, "payload.sampler_name"),
        ({"sampler_name": "DPM fast"}, "payload.sampler_name"),
        ({"width": 500}, "payload.width"),
        ({"width": 4096, "height": 4096}, "payload.width"),
        ({"steps": 1000}, "payload.steps"),
        ({"scheduler": "nope"}, "payload.scheduler"),
        ({"unknown_thing": 1}, "payload.unknown_thing"),
    ],
)
def test_bad_generation_fields_are_400_before_any_compute(stack, payload, field):
    body = assert_problem(stack.submit(payload), 400)
    assert field in [e["field"] for e in body["errors"]]
    assert field in body["detail"]
    assert stack.fake.invocations == []
    assert stack.client.get("/v1/inferences", headers=stack.auth()).json()["items"] == []


def test_unknown_checkpoint_is_400_listing_the_available_ones(stack):
    body = assert_problem(stack.submit(checkpoint="nope.safetensors"), 400)
    assert body["errors"][0]["field"] == "checkpoint"
    assert CHECKPOINT in body["errors"][0]["message"]
    assert stack.fake.invocations == []


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"task": "txt2img", "payload": {', "body"),
        (b"[1, 2]", "body"),
        (b'{"payload": {}, "checkpoint": "x"}', "task"),
        (b'{"task": "paint", "checkpoint": "x"}', "task"),
        (b'{"task": "txt2img", "checkpoint": "x", "colour": 1}', "colour"),
        (b'{"task": "txt2img", "checkpoint": "x", "payload": []}', "payload"),
    ],
)
def test_malformed_requests_are_400_naming_the_field(stack, content, field):
    resp = stack.client.post(
        "/v1/inferences", content=content, headers={**stack.auth(), "Content-Type": "application/json"}
    )
    body = assert_problem(resp, 400)
    assert field in [e["field"] for e in body["errors"]]
    assert "Traceback" not in resp.text


def test_oversized_body_is_413_with_the_limit(stack):
    big = {"task": "txt2img", "payload": {"prompt": "x" * (8 * 1024 * 1024)}, "checkpoint": CHECKPOINT}
    body = assert_problem(stack.client.post("/v1/inferences", json=big, headers=stack.auth()), 413)
    assert "8 MiB" in body["detail"] and "8388608" in body["detail"]
    assert stack.fake.invocations == []


def test_oversized_streamed_body_without_length_is_413(stack):
    def chunks():
        yield b'{"task": "txt2img", "payload": {"prompt": "'
        for _ in range(9):
            yield b"x" * (1024 * 1024)
        yield b'"}, "checkpoint": "x"}'

    resp = stack.client.post(
        "/v1/inferences", content=chunks(), headers={**stack.auth(), "Content-Type": "application/json"}
    )
    assert "8 MiB" in assert_problem(resp, 413)["detail"]


def test_engine_error_fails_the_job_with_the_engines_message(stack):
    stack.fake.fail_with(
        400, "hr_upscaler 'Magic' is not available; use one of Latent, Lanczos", field="payload.hr_upscaler"
    )
    job = stack.submit().json()
    done = stack.wait_terminal(job["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "invalid_request"
    assert "hr_upscaler 'Magic' is not available" in done["error"]["message"]
    assert "payload.hr_upscaler" in done["error"]["message"]


def test_container_down_fails_the_job_with_a_clear_reason(stack):
    stack.fake.down()
    job = stack.submit().json()
    done = stack.wait_terminal(job["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "container_unreachable"
    assert done["error"]["message"].startswith(f"inference container at {stack.fake.url} is not reachable")
    endpoints = stack.client.get("/v1/endpoints", headers=stack.auth()).json()["items"]
    assert endpoints[0]["status"] == "OutOfService"


def test_idempotency_key_returns_the_first_job(stack):
    headers = {"Idempotency-Key": "generate-7"}
    first = stack.submit(headers=headers)
    again = stack.submit(headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    stack.wait_terminal(first.json()["id"])
    assert len(stack.fake.invocations) == 1
    # After completion a retry still returns the same (now finished) job.
    assert stack.submit(headers=headers).json()["status"] == "succeeded"
    reused = stack.submit({"prompt": "something else"}, headers=headers)
    assert assert_problem(reused, 422)["code"] == "idempotency_key_reused"


def test_cancel_and_cancel_again(stack):
    stack.fake.configure(delay_s=30)
    running = stack.submit({"prompt": "a cat", "steps": 4, "batch_size": 2, "n_iter": 3}).json()
    stack.wait_status(running["id"], "running")
    queued = stack.submit().json()
    resp = stack.client.delete(f"/v1/inferences/{queued['id']}", headers=stack.auth())
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert resp.json()["progress"]["phase"] == "cancelled"
    # A running job is told to stop; it ends cancelled when the container sends what it sampled.
    resp = stack.client.delete(f"/v1/inferences/{running['id']}", headers=stack.auth())
    assert resp.status_code == 200 and resp.json()["status"] == "running"
    assert resp.json()["progress"]["phase"] == "cancelling"
    ended = stack.wait_terminal(running["id"])
    assert ended["status"] == "cancelled" and ended["error"] is None
    assert len(ended["result"]["images"]) == 2 and len(ended["result"]["infotexts"]) == 2
    assert stack.client.get(ended["result"]["images"][0]["url"]).status_code == 200
    again = stack.client.delete(f"/v1/inferences/{running['id']}", headers=stack.auth())
    assert "already cancelled" in assert_problem(again, 409)["detail"]
    assert queued["id"] not in [d["id"] for d in stack.fake.invocations]


def test_skip_ends_the_running_iteration(stack):
    stack.fake.configure(delay_s=30)
    job = stack.submit({"prompt": "a cat", "steps": 4, "n_iter": 2}).json()
    view = stack.get(job["id"]).json()
    while view["progress"]["phase"] != "sampling":
        view = stack.get(job["id"], wait=10, version=view["version"]).json()
    resp = stack.client.post(f"/v1/inferences/{job['id']}/skip", headers=stack.auth())
    assert resp.status_code == 202, resp.text
    while stack.fake.state.progress["iteration"] != 1:
        view = stack.get(job["id"], wait=1, version=view["version"]).json()
    stack.fake.configure(delay_s=0)
    done = stack.wait_terminal(job["id"])
    assert done["status"] == "succeeded" and len(done["result"]["images"]) == 2
    again = stack.client.post(f"/v1/inferences/{job['id']}/skip", headers=stack.auth())
    assert "only a running job can skip" in assert_problem(again, 409)["detail"]


def test_pagination_newest_first(stack):
    stack.fake.down()  # jobs fail fast; listing does not care
    ids = [stack.submit().json()["id"] for _ in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = stack.client.get("/v1/inferences", params=params, headers=stack.auth()).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids)) and pages == 3
    default = stack.client.get("/v1/inferences", headers=stack.auth()).json()
    assert len(default["items"]) == 5 and default["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"), [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"cursor": "bogus"}, "cursor")]
)
def test_bad_list_parameters_are_400(stack, params, field):
    body = assert_problem(stack.client.get("/v1/inferences", params=params, headers=stack.auth()), 400)
    assert body["errors"][0]["field"] == field


def test_models_and_endpoints(stack):
    models = stack.client.get("/v1/models", params={"type": "checkpoint"}, headers=stack.auth()).json()[
        "items"
    ]
    assert [m["name"] for m in models] == [CHECKPOINT]
    assert models[0]["type"] == "checkpoint" and len(models[0]["sha256"]) == 64 and models[0]["size"] > 0
    assert stack.client.get("/v1/models", params={"type": "lora"}, headers=stack.auth()).json() == {
        "items": []
    }
    endpoints = stack.client.get("/v1/endpoints", headers=stack.auth()).json()["items"]
    # The listing's first four fields; the managed-endpoint fields (instances, backlog...) are
    # tested in test_api_endpoints.py.
    assert [{k: e[k] for k in ("name", "kind", "status", "detail")} for e in endpoints] == [
        {
            "name": "local",
            "kind": "local",
            "status": "InService",
            "detail": f"inference container at {stack.fake.url}",
        }
    ]


def test_unknown_route_is_problem_json(stack):
    assert assert_problem(stack.client.get("/v1/nothing-here"), 404)["status"] == 404
    assert assert_problem(stack.client.put("/v1/ping"), 405)["status"] == 405


def test_img2img_runs_and_large_inline_images_are_elided_from_views(stack):
    image = base64.b64encode(png_bytes(64, 64, parameters="x" * 10_000)).decode()
    resp = stack.submit({"init_images": [image], "denoising_strength": 0.4}, task="img2img")
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["task"] == "img2img"
    # The record keeps a summary: the image stays in request.json.
    assert "init_images" not in job["payload"] and job["payload"]["input_images"] == 1
    assert job["payload"]["denoising_strength"] == 0.4
    done = stack.wait_terminal(job["id"])
    assert done["status"] == "succeeded"
    # The container still received the full image.
    assert stack.fake.invocations[0]["payload"]["init_images"] == [image]
