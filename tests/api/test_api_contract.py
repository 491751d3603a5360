"""The API speaks the generation contract: refusals at submit (nothing reaches the container), the
typed payload in the served OpenAPI, links between the job's operations, 405s with every method,
and bodies that would crash a recursive parser."""

from __future__ import annotations

import json

import pytest

from middleware.domain.contract import CONTRACT

ENGINE_REFUSED = [
    ({"restore_faces": True}, "payload.restore_faces"),
    ({"styles": ["cinematic"]}, "payload.styles"),
    ({"alwayson_scripts": {"controlnet": {"args": []}}}, "payload.alwayson_scripts.controlnet"),
    ({"prompt": "a cat <lora:film:0.8>"}, "payload.prompt"),
    ({"override_settings": {"sd_vae": "vae.pt"}}, "payload.override_settings.sd_vae"),
    ({"s_churn": 1.0, "sampler_name": "Euler a"}, "payload.s_churn"),
    ({"enable_hr": True, "hr_upscaler": "R-ESRGAN 4x+"}, "payload.hr_upscaler"),
    ({"enable_hr": True, "width": 2048, "height": 1024, "hr_scale": 2}, "payload.hr_scale"),
    ({"script_name": "x/y/z plot"}, "payload.script_name"),
    ({"refiner_checkpoint": "refiner.safetensors"}, "payload.refiner_checkpoint"),
    ({"seed": 2**32}, "payload.seed"),
    ({"subseed_strength": 2}, "payload.subseed_strength"),
    ({"override_settings": {"CLIP_stop_at_last_layers": 100}}, "payload.override_settings.CLIP_stop_at_last_layers"),
]
IMG2IMG_REFUSED = [
    (["not base64 at all!"], "payload.init_images[0]"),
    (["aGVsbG8gd29ybGQ="], "payload.init_images[0]"),  # base64 of text, not an image
    (["iVBORw0KGgo="] * 1000, "payload.init_images"),
]


@pytest.mark.parametrize(("payload", "field"), ENGINE_REFUSED)
def test_payloads_the_engine_refuses_are_refused_at_submit(stack, payload, field):
    response = stack.submit(payload)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert stack.fake.invocations == []  # no GPU woke for it


@pytest.mark.parametrize(("images", "field"), IMG2IMG_REFUSED)
def test_bad_init_images_are_refused_at_submit(stack, images, field):
    response = stack.submit({"init_images": images}, task="img2img")
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == field


def test_a_lone_surrogate_is_a_400_not_a_500(stack):
    body = '{"task": "txt2img", "checkpoint": "tiny-sd15.safetensors", "payload": {"prompt": "a \\ud800 cat"}}'
    response = stack.client.post(
        "/v1/inferences", content=body, headers={**stack.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == "payload.prompt"
    assert "lone surrogate" in response.json()["errors"][0]["message"]


def test_json_nested_a_thousand_deep_is_a_400(stack):
    body = '{"task": "txt2img", "checkpoint": "x", "payload": {"comments": ' + "[" * 1000 + "]" * 1000 + "}}"
    response = stack.client.post(
        "/v1/inferences", content=body, headers={**stack.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "nested 1002 levels deep" in response.json()["detail"]


def test_a_hundred_thousand_unknown_keys_give_a_short_answer(stack):
    payload = {f"key{i}": 1 for i in range(100_000)}
    response = stack.submit(payload)
    assert response.status_code == 400
    assert len(response.content) < 20_000
    assert "100000 in all" in response.text


def test_nan_is_named_as_not_finite(stack):
    body = '{"task": "txt2img", "checkpoint": "tiny-sd15.safetensors", "payload": {"cfg_scale": NaN}}'
    response = stack.client.post(
        "/v1/inferences", content=body, headers={**stack.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0] == {"field": "payload.cfg_scale", "message": "must be a finite number (got nan)"}


def test_malformed_json_names_the_body(stack):
    response = stack.client.post(
        "/v1/inferences", content=b"{not json", headers={**stack.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


def test_the_contract_is_served(stack):
    response = stack.client.get("/v1/contract", headers=stack.auth())
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(CONTRACT))
    assert stack.client.get("/v1/contract").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/inferences/abc", "DELETE, GET, HEAD"),
        ("PATCH", "/v1/inferences", "GET, HEAD, POST"),
        ("GET", "/v1/inferences/abc/skip", "POST"),
    ],
)
def test_405_lists_every_method_of_the_resource(stack, method, path, allowed):
    response = stack.client.request(method, path, headers=stack.auth())
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"].startswith("application/problem+json")


def _submit_operation(stack) -> dict:
    schema = stack.client.get("/v1/openapi.json").json()
    return schema["paths"]["/v1/inferences"]["post"]


def test_the_openapi_payload_is_typed_from_the_contract(stack):
    body = _submit_operation(stack)["requestBody"]["content"]["application/json"]["schema"]
    variants = {v["properties"]["task"]["const"]: v for v in body["oneOf"]}
    assert set(variants) == {"txt2img", "img2img"}
    txt2img = variants["txt2img"]["properties"]["payload"]
    assert txt2img["additionalProperties"] is False
    assert txt2img["properties"]["steps"] == {"type": "integer", "minimum": 1, "maximum": 150, "default": 50}
    assert txt2img["properties"]["restore_faces"]["enum"] == [None, False]
    samplers = txt2img["properties"]["sampler_name"]["anyOf"][0]["enum"]
    assert "DPM++ 2M" in samplers and "DPM fast" not in samplers
    assert "init_images" in variants["img2img"]["properties"]["payload"]["properties"]
    assert "init_images" not in txt2img["properties"]


def test_the_created_job_links_to_its_own_operations(stack):
    links = _submit_operation(stack)["responses"]["202"]["links"]
    assert {link["operationId"] for link in links.values()} == {"get_inference", "cancel_inference", "skip_inference"}
    assert all(link["parameters"] == {"job_id": "$response.body#/id"} for link in links.values())


def test_the_docs_page_works_offline(stack):
    page = stack.client.get("/v1/docs")
    assert page.status_code == 200
    html = page.text
    assert "http://" not in html and "https://" not in html  # nothing from a CDN or font host
    for asset in ("docs/assets/swagger-ui-bundle.js", "docs/assets/swagger-ui.css"):
        assert asset in html
        served = stack.client.get(f"/v1/{asset}")
        assert served.status_code == 200 and len(served.content) > 1000
