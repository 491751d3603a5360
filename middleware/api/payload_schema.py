"""The submit body's JSON Schema, built from the generation contract for the served OpenAPI.

A request valid by this schema is one the API accepts, as far as JSON Schema can say it: kinds,
ranges, enums of the sampler, schedule type and upscaler names, refused fields limited to the
values that change nothing. Rules across fields (a sampler's schedule types, the hires target's
pixel budget, init images per batch) are stated in the descriptions and enforced at submit.
"""

from __future__ import annotations

from typing import Any

from middleware.domain.contract import CONTRACT, LIMITS, supported_samplers

_JSON_TYPES = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "str_list": {"type": "array", "items": {"type": "string"}},
    "list": {"type": "array"},
    "dict": {"type": "object"},
    "image": {"type": "string", "contentEncoding": "base64"},
    "image_list": {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}},
    "any": {},
}


def _sampler_names() -> list[str]:
    names: list[str] = []
    for sampler in CONTRACT["samplers"]:
        if sampler["supported"]:
            names.extend([sampler["name"], *sampler["aliases"]])
    return names


def _schedule_names() -> list[str]:
    accepted = set().union(*supported_samplers().values())
    names: list[str] = []
    for sched in CONTRACT["schedulers"]:
        if sched["name"] in accepted:
            names.extend([sched["name"], sched["label"], *sched["aliases"]])
    return names


def _ranged(base: dict[str, Any], rng: dict[str, Any]) -> dict[str, Any]:
    bounded = dict(base)
    if "minimum" in rng:
        bounded["minimum"] = rng["minimum"]
    if "maximum" in rng:
        bounded["maximum"] = rng["maximum"]
    if "multiple_of" in rng:
        bounded["multipleOf"] = rng["multiple_of"]
    if rng.get("special"):
        return {"anyOf": [{"enum": rng["special"]}, bounded]}
    return bounded


def _field_schema(spec: dict[str, Any]) -> dict[str, Any]:
    name, kind = spec["name"], spec["kind"]
    if spec.get("refused"):
        refusal = spec["refused"]
        return {
            "enum": [None, *refusal["allowed"]],
            "description": f"{refusal['reason']}; {refusal['instead']}",
        }
    schema: dict[str, Any] = dict(_JSON_TYPES[kind])
    if name in ("sampler_name", "sampler_index", "hr_sampler_name"):
        extra = list(CONTRACT["hires"]["same_sampler"]) if name == "hr_sampler_name" else []
        schema = {"type": "string", "enum": [*_sampler_names(), *extra]}
        schema["description"] = "a sampler name or alias; combined names such as 'DPM++ 2M Karras' work too"
    elif name in ("scheduler", "hr_scheduler"):
        extra = list(CONTRACT["hires"]["same_scheduler"]) if name == "hr_scheduler" else []
        schema = {"type": "string", "enum": [*_schedule_names(), *extra]}
    elif name == "hr_upscaler":
        schema = {"type": "string", "enum": list(CONTRACT["hires"]["upscalers"])}
    elif name in CONTRACT["prompts"]["fields"]:
        schema["maxLength"] = LIMITS["max_prompt_chars"]
        schema["description"] = (
            "<lora:name:weight> tags (prompt only) name LoRA in the model library; embeddings by their file stem"
        )
    elif name == "override_settings":
        schema = {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                key: _ranged(dict(_JSON_TYPES[s["kind"]]), s) if "minimum" in s else dict(_JSON_TYPES[s["kind"]])
                for key, s in CONTRACT["override_settings"].items()
            },
        }
    elif name == "init_images":
        schema["minItems"] = 1
        schema["maxItems"] = LIMITS["max_batch_size"]
        schema["description"] = "one image for the whole batch, or up to batch_size images (base64 or data: URL)"
    elif name in ("eta", "s_churn", "s_tmin", "s_tmax", "s_noise"):
        users = [s["name"] for s in CONTRACT["samplers"] if s["supported"] and name in s["parameters"]]
        schema["description"] = f"honoured by {', '.join(users) or 'no sampler'}; refused for the others unless null"
    if spec.get("range"):
        schema = _ranged(schema, spec["range"])
    if spec.get("handling") == "ignored":
        schema["description"] = f"accepted and ignored: {spec['ignored_because']}"
    if name == "init_images":
        return schema  # required for img2img: null would be refused
    schema["default"] = spec["default"]
    return {"anyOf": [schema, {"type": "null"}]} if spec["default"] is None else schema


def payload_schema(task: str) -> dict[str, Any]:
    required = ["init_images"] if task == "img2img" else []
    return {
        "type": "object",
        "required": required,
        "title": f"{task} payload",
        "description": f"AUTOMATIC1111 v1.10.1 /sdapi/v1/{task} fields (GET /v1/contract has the full rules)",
        "additionalProperties": False,
        "properties": {spec["name"]: _field_schema(spec) for spec in CONTRACT["tasks"][task]["fields"]},
    }


def create_inference_schema() -> dict[str, Any]:
    """The body of POST /v1/inferences: one variant per task, told apart by ``task``."""
    common = {
        "checkpoint": {
            "anyOf": [{"type": "string", "minLength": 1}, {"type": "null"}],
            "description": "a model name from GET /v1/models; without it, "
            "payload.override_settings.sd_model_checkpoint",
        },
        "endpoint": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "an endpoint name from GET /v1/endpoints",
        },
    }
    variants = []
    for task in CONTRACT["tasks"]:
        variants.append(
            {
                "type": "object",
                "title": f"{task} job",
                "additionalProperties": False,
                "required": ["task", *(["payload"] if task == "img2img" else [])],
                "properties": {"task": {"const": task}, "payload": payload_schema(task), **common},
            }
        )
    return {"oneOf": variants}
