"""Build the generation contract and copy it into every deployable.

The data comes from two places only: the WebUI's own field list (``shared/webui/a1111-v1.10.1.json``:
names, order, defaults, annotations) and the engine's tables (``inference_container.engine.policy``
for limits, ranges and refusals; ``inference_container.engine.sampling.catalog`` for samplers and
schedule types). The result, ``generation_contract.json``, and the checker that reads it,
``generation_contract.py``, are written byte for byte into each deployable's ``contract`` package.

    python -m tools.contract          write the contract and its copies
    python -m tools.contract --check  exit 1 if any copy differs from what would be written
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MASTER = Path(__file__).resolve().parent
MANIFEST = ROOT.parent / "shared" / "webui" / "a1111-v1.10.1.json"
# The deployables' copies (they never import each other, so each carries its own).
TARGETS = (
    ROOT / "inference_container" / "contract",
    ROOT / "middleware" / "domain" / "contract",
    ROOT / "sdcloud" / "contract",
)
COPIED = ("__init__.py", "generation_contract.py", "generation_contract.json")
_ANNOTATION_KINDS = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "list[str]": "str_list",
    "list": "list",
    "dict": "dict",
    "dict[str, Any]": "dict",
    "Image": "image",
}
_TASKS = {"txt2img": "api_txt2img_fields", "img2img": "api_img2img_fields"}


class ContractError(Exception):
    """The engine's tables and the WebUI's field list disagree; the message says where."""


def _field_kind(entry: Mapping[str, Any], overrides: Mapping[str, str]) -> str:
    name = entry["field"]
    if name in overrides:
        return overrides[name]
    annotation = entry.get("annotation") or entry.get("type")
    if annotation not in _ANNOTATION_KINDS:
        raise ContractError(f"WebUI field {name!r} has annotation {annotation!r}, which has no contract kind")
    return _ANNOTATION_KINDS[annotation]


def _fields(manifest: Mapping[str, Any], task: str, policy: Any) -> list[dict[str, Any]]:
    out = []
    for entry in manifest[_TASKS[task]]["fields"]:
        name = entry["field"]
        spec: dict[str, Any] = {"name": name, "kind": _field_kind(entry, policy.KIND_OVERRIDES), "default": entry["default_json"]}
        if name in policy.USED:
            spec["handling"] = "used"
        elif name in policy.IGNORED:
            spec["handling"] = "ignored"
            spec["ignored_because"] = policy.IGNORED[name]
        elif name in policy.REFUSED:
            refusal = policy.REFUSED[name]
            spec["handling"] = "refused_unless_default"
            spec["refused"] = {
                "allowed": [list(a) if isinstance(a, tuple) else a for a in refusal.allowed],
                "reason": refusal.reason,
                "instead": refusal.instead,
            }
        else:
            raise ContractError(
                f"WebUI {task} field {name!r} is neither used, ignored nor refused in inference_container/engine/policy.py"
            )
        if name in policy.RANGES:
            r = policy.RANGES[name]
            spec["range"] = {
                k: v
                for k, v in (
                    ("minimum", r.minimum),
                    ("maximum", r.maximum),
                    ("multiple_of", r.multiple_of),
                    ("special", list(r.special) or None),
                    ("special_meaning", r.special_meaning or None),
                )
                if v is not None
            }
        if name in policy.HIRES_ONLY:
            spec["only_with"] = "enable_hr"
        out.append(spec)
    return out


def _samplers(catalog: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    samplers = [
        {
            "name": s.name,
            "aliases": list(s.aliases),
            "default_scheduler": s.default_scheduler,
            "supported": s.supported,
            "unsupported_reason": s.unsupported_reason,
            "schedulers": list(s.schedulers) if s.supported else [],
            "parameters": list(s.parameters),
            "eta_default": s.eta_default,
            "ignores_schedule_type": s.ignores_schedule_type,
        }
        for s in catalog.SAMPLERS
    ]
    schedulers = [
        {
            "name": c.name,
            "label": c.label,
            "aliases": list(c.aliases),
            "supported": c.supported,
            "unsupported_reason": c.unsupported_reason,
        }
        for c in catalog.SCHEDULERS
    ]
    return samplers, schedulers


def _check_against_manifest(manifest: Mapping[str, Any], samplers: list[dict], schedulers: list[dict]) -> None:
    webui_samplers = [s["name"] for s in manifest["samplers"]["list"]]
    ours = [s["name"] for s in samplers]
    if ours != webui_samplers:
        raise ContractError(f"the sampler catalog lists {ours}; the WebUI lists {webui_samplers} (same order)")
    webui_schedulers = [s["name"] for s in manifest["schedulers"]]
    ours = [s["name"] for s in schedulers]
    if ours != webui_schedulers:
        raise ContractError(f"the schedule types are {ours}; the WebUI lists {webui_schedulers} (same order)")


def build_contract(manifest: Mapping[str, Any]) -> dict[str, Any]:
    from inference_container.engine import policy
    from inference_container.engine.sampling import catalog

    samplers, schedulers = _samplers(catalog)
    _check_against_manifest(manifest, samplers, schedulers)
    limits = policy.LIMITS
    return {
        "about": "Generated by tools/contract from the engine's tables and the WebUI's field list; do not edit.",
        "webui": {"repo": manifest["source"]["repo"], "commit": manifest["source"]["commit"]},
        "limits": {k: getattr(limits, k) for k in limits.__dataclass_fields__},
        "tasks": {task: {"fields": _fields(manifest, task, policy)} for task in _TASKS},
        "default_sampler": policy.DEFAULT_SAMPLER,
        "samplers": samplers,
        "schedulers": schedulers,
        # Each parameter's WebUI default, harmless for samplers that ignore it (eta has none).
        "sampler_parameters": {name: catalog.PARAMETER_DEFAULTS.get(name) for name in catalog.SAMPLER_PARAMETERS},
        "override_settings": {k: dict(v) for k, v in policy.OVERRIDE_SETTINGS.items()},
        "hires": {
            "upscalers": [*policy.LATENT_UPSCALERS, *policy.PIXEL_UPSCALERS],
            "latent_upscalers": list(policy.LATENT_UPSCALERS),
            "default_upscaler": policy.DEFAULT_HR_UPSCALER,
            "default_denoising_strength": policy.DEFAULT_HR_DENOISING_STRENGTH,
            "same_sampler": list(policy.HR_SAME_SAMPLER),
            "same_scheduler": list(policy.HR_SAME_SCHEDULER),
        },
        "prompts": {
            "fields": list(policy.PROMPT_FIELDS),
            "extra_network_tag": policy.EXTRA_NETWORK_TAG,
            "extra_network_instead": policy.EXTRA_NETWORK_INSTEAD,
            "extra_network_kinds": list(policy.EXTRA_NETWORK_KINDS),
            "extra_network_fields": list(policy.EXTRA_NETWORK_FIELDS),
        },
        "images": {"formats": list(policy.IMAGE_FORMATS), "background": list(policy.IMAGE_BACKGROUND)},
        "phases": list(policy.PHASES),
    }


def render(contract: Mapping[str, Any]) -> str:
    return json.dumps(contract, indent=1, ensure_ascii=True) + "\n"


def expected_files(manifest_path: Path = MANIFEST) -> dict[Path, bytes]:
    """Every file the tool writes, with its bytes."""
    if not manifest_path.exists():
        raise ContractError(f"WebUI manifest not found at {manifest_path} (../shared must sit beside the checkout)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    data = render(build_contract(manifest)).encode("utf-8")
    sources = {
        "__init__.py": (MASTER / "package_init.py").read_bytes(),
        "generation_contract.py": (MASTER / "generation_contract.py").read_bytes(),
        "generation_contract.json": data,
    }
    files = {MASTER / "generation_contract.json": data}
    for target in TARGETS:
        for name in COPIED:
            files[target / name] = sources[name]
    return files


def drifted(files: Mapping[Path, bytes]) -> list[Path]:
    return [path for path, data in files.items() if not path.exists() or path.read_bytes() != data]


def write(files: Mapping[Path, bytes]) -> list[Path]:
    changed = drifted(files)
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(files[path])
        tmp.replace(path)
    return changed
