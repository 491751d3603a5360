"""The generation contract: which job payloads every SD Cloud deployable accepts, and why not.

``generation_contract.json`` beside this file holds the data (WebUI fields with kinds, defaults
and ranges per task; limits; samplers with aliases and the schedule types each takes; upscalers;
refused fields with the reason and what to do instead; progress phases). This module reads it
and checks a payload. Both files are written by ``tools/contract`` and copied byte for byte into
``inference_container/contract``, ``middleware/domain/contract`` and ``sdcloud/contract``: the
deployables never import each other, yet refuse the same payloads in the same words. Edit the
master in ``tools/contract`` and run ``make contract``; a test fails when a copy drifts.

Pure Python 3.10 (it runs inside the WebUI too). Pillow is imported only to check init images.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import io
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTRACT: Mapping[str, Any] = json.loads(
    Path(__file__).with_name("generation_contract.json").read_text(encoding="utf-8")
)
LIMITS: Mapping[str, Any] = CONTRACT["limits"]
TASKS: tuple[str, ...] = tuple(CONTRACT["tasks"])

INVALID, UNSUPPORTED, TOO_LARGE = "invalid", "unsupported", "too_large"


@dataclass(frozen=True)
class Problem:
    """One reason a payload is refused: the dotted field, a message saying what to do, a code
    (``invalid``: malformed or out of range; ``unsupported``: valid for the WebUI, not served
    here; ``too_large``: over a size limit)."""

    field: str
    message: str
    code: str = INVALID


class PayloadRejected(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class SamplerChoice:
    """A resolved sampler: canonical names, and the schedule type the request itself named
    (None = automatic), which is what the WebUI echoes and the hires pass inherits."""

    sampler: str
    scheduler: str  # the effective schedule type's name ("karras", ...; "automatic" if none)
    scheduler_label: str
    scheduler_asked: str | None


@dataclass(frozen=True)
class HiresPlan:
    upscale_width: int  # the first pass is upscaled to this...
    upscale_height: int
    target_width: int  # ...then cropped to this
    target_height: int
    upscaler: str
    second_pass_steps: int
    denoising_strength: float
    sampler: SamplerChoice | None  # None = the first pass's


@dataclass
class CheckedPayload:
    """A payload that passed: every field of the task with its value or the WebUI default."""

    task: str
    values: dict[str, Any]
    sampler: SamplerChoice
    sampler_params: dict[str, float]  # eta / s_* the request set, for the samplers that use them
    clip_skip: int
    batch_size: int  # after the WebUI's init-image rule
    denoising_strength: float | None
    hires: HiresPlan | None
    init_images: list[Any] = field(default_factory=list)  # PIL images (decode_images=True)


# ------------------------------------------------------------------------------------------------
# Public helpers


def fields(task: str) -> list[Mapping[str, Any]]:
    """The task's field specs in the WebUI's order (``name``, ``kind``, ``default``, ...)."""
    return CONTRACT["tasks"][task]["fields"]


def field_spec(task: str, name: str) -> Mapping[str, Any] | None:
    return _FIELDS[task].get(name)


def supported_samplers() -> dict[str, list[str]]:
    """Each supported sampler → the schedule type names it accepts (``automatic`` first)."""
    return {s["name"]: list(s["schedulers"]) for s in CONTRACT["samplers"] if s["supported"]}


def schedule_labels() -> dict[str, str]:
    return {s["name"]: s["label"] for s in CONTRACT["schedulers"]}


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of arrays/objects in a JSON text, found without recursion (a
    recursive parser is what a 1,000-deep document crashes). Strings are skipped whole by the
    regex engine, so an 8 MB body of base64 costs milliseconds."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(data):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def depth_problem(text: str | bytes) -> Problem | None:
    limit = LIMITS["max_json_depth"]
    depth = json_depth(text)
    if depth > limit:
        return Problem("", f"the JSON document is nested {depth} levels deep; the limit is {limit}", INVALID)
    return None


def check_payload(
    task: Any,
    payload: Any,
    *,
    decode_images: bool = True,
    prefix: str = "payload",
    loras: Collection[str] | None = None,
) -> CheckedPayload:
    """Check a WebUI txt2img / img2img payload against the contract.

    Raises PayloadRejected with every problem found (at most ``limits.max_problems``, the rest
    counted). With ``decode_images`` the init images are decoded into PIL images and returned;
    without it they are still fully checked. ``loras`` are the LoRA model names the job carries
    (``models.loras``): each ``<lora:...>`` tag must name one of them; None checks the tags'
    syntax only (the middleware resolves the names against its catalog afterwards).
    """
    return _Checker(prefix, loras).run(task, payload, decode_images)


@dataclass(frozen=True)
class NetworkTag:
    """One ``<lora:name:te:unet>`` tag as A1111 reads it (``extra_networks.parse_prompt``)."""

    kind: str  # "lora" or "lyco" (A1111 treats both alike)
    name: str
    te_multiplier: float
    unet_multiplier: float
    text: str  # the tag as written


def network_tags(text: str) -> tuple[list[NetworkTag], list[str]]:
    """The LoRA tags in a prompt, and a message for each tag that cannot be applied.

    A1111's grammar: ``<lora:name>`` is weight 1; ``<lora:name:0.8>`` sets both the text-encoder
    and the UNet multiplier; ``<lora:name:0.8:0.5>`` sets them apart (also ``te=``/``unet=``).
    ``dyn`` (a rank cut-off) and other network kinds (hypernetworks) are refused.
    """
    tags: list[NetworkTag] = []
    problems: list[str] = []
    for match in _EXTRA_NETWORK.finditer(text):
        kind, args, written = match.group(1), match.group(2), match.group(0)
        if kind not in _NETWORK_KINDS:
            problems.append(
                f"extra network {written!r} is not supported: only {', '.join(_NETWORK_KINDS)} tags are "
                f"applied; {CONTRACT['prompts']['extra_network_instead']}"
            )
            continue
        positional: list[str] = []
        named: dict[str, str] = {}
        for item in args.split(":"):
            key, sep, value = item.partition("=")
            if sep and key.strip() in ("te", "unet", "dyn"):
                named[key.strip()] = value.strip()
            else:
                positional.append(item)
        name = positional[0].strip() if positional else ""
        if not name:
            problems.append(f"extra network {written!r} names no LoRA; write <{kind}:name:weight>")
            continue
        if len(positional) > 3 or "dyn" in named:
            problems.append(
                f"{written!r}: a dynamic LoRA dimension (dyn) is not supported; write <{kind}:{name}:weight> "
                "or <" + kind + ":" + name + ":te_weight:unet_weight>"
            )
            continue
        te_text = named.get("te", positional[1] if len(positional) > 1 else "1")
        unet_text = named.get("unet", positional[2] if len(positional) > 2 else te_text)
        te, unet = _multiplier(te_text), _multiplier(unet_text)
        if te is None or unet is None:
            bad = te_text if te is None else unet_text
            problems.append(f"{written!r}: the weight {bad.strip()!r} is not a number; write e.g. <{kind}:{name}:0.8>")
            continue
        tags.append(NetworkTag(kind, name, te, unet, written))
    return tags, problems


def lora_matches(tag_name: str, model_name: str) -> bool:
    """A tag names a LoRA by its file name or the file name's stem (A1111's alias)."""
    base = model_name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return tag_name in (model_name, base, stem)


def strip_network_tags(text: str) -> str:
    """The prompt without its extra-network tags, as A1111 conditions on it."""
    return _EXTRA_NETWORK.sub("", text)


def _multiplier(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and abs(value) <= _MAX_MULTIPLIER else None


def resolve_sampler(
    name: str | None,
    scheduler: str | None = None,
    *,
    prefix: str = "payload",
    sampler_field: str = "sampler_name",
    scheduler_field: str = "scheduler",
    parameters: Mapping[str, Any] | None = None,
) -> SamplerChoice:
    """A sampler name (alias, or combined "DPM++ 2M Karras") and schedule type, resolved as a
    payload's are; with ``parameters`` (eta, s_*), those the sampler ignores are refused too.
    Raises PayloadRejected naming the field."""
    checker = _Checker(prefix)
    choice = checker._resolve(name or CONTRACT["default_sampler"], scheduler, sampler_field, scheduler_field)
    if choice is not None and parameters:
        checker._sampler_params(dict(parameters), choice)
    checker.finish()
    assert choice is not None
    return choice


# ------------------------------------------------------------------------------------------------
# Tables built once from the data

_FIELDS: dict[str, dict[str, Mapping[str, Any]]] = {
    task: {f["name"]: f for f in spec["fields"]} for task, spec in CONTRACT["tasks"].items()
}
_SAMPLER_KEYS: dict[str, Mapping[str, Any]] = {}
for _s in CONTRACT["samplers"]:
    for _key in (_s["name"], *_s["aliases"]):
        _SAMPLER_KEYS[_key.lower()] = _s
_SCHEDULE_KEYS: dict[str, Mapping[str, Any]] = {}
for _c in CONTRACT["schedulers"]:
    for _key in (_c["name"], _c["label"], *_c["aliases"]):
        _SCHEDULE_KEYS[_key.lower()] = _c
_SCHEDULE_BY_NAME = {c["name"]: c for c in CONTRACT["schedulers"]}
_AUTOMATIC = "automatic"
_EXTRA_NETWORK = re.compile(CONTRACT["prompts"]["extra_network_tag"])
_NETWORK_KINDS: tuple[str, ...] = tuple(CONTRACT["prompts"]["extra_network_kinds"])
_NETWORK_PROMPTS: tuple[str, ...] = tuple(CONTRACT["prompts"]["extra_network_fields"])
_MAX_MULTIPLIER = 100.0  # A1111 has no bound; beyond this a weight is a typo, not a style
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_TEXT_SCAN_LIMIT = 10_000  # strings looked at for lone surrogates; past it the payload is refused anyway


def describe(value: Any) -> str:
    """A short, safe rendering of a JSON value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {ascii(shown)[1:-1]!r}" if _has_surrogate(shown) else f"the string {shown!r}"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return repr(value)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _fmt(number: float) -> str:
    if isinstance(number, int) or (isinstance(number, float) and number.is_integer() and abs(number) < 1e15):
        return str(int(number))
    return f"{number:g}"


class _TooMany(Exception):
    pass


class _Checker:
    def __init__(self, prefix: str, loras: Collection[str] | None = None) -> None:
        self.prefix = prefix
        self.loras = loras
        self.problems: list[Problem] = []
        self.overflow = 0
        self.bad: set[str] = set()

    # -- bookkeeping ------------------------------------------------------------------------------

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def add(self, name: str, message: str, code: str = INVALID) -> None:
        top = name.split(".", 1)[0].split("[", 1)[0]
        self.bad.add(top)
        if len(self.problems) >= LIMITS["max_problems"]:
            self.overflow += 1
            return
        self.problems.append(Problem(self.path(name), message, code))

    def finish(self) -> None:
        if self.overflow:
            self.problems.append(
                Problem(self.prefix, f"and {self.overflow} more problem(s) not listed; fix the ones above first")
            )
        if self.problems:
            raise PayloadRejected(self.problems)

    # -- the checks, in order ---------------------------------------------------------------------

    def run(self, task: Any, payload: Any, decode_images: bool) -> CheckedPayload:
        if task not in TASKS:
            raise PayloadRejected([Problem("task", f"unknown task {describe(task)}; expected one of: {', '.join(TASKS)}")])
        if not isinstance(payload, dict):
            raise PayloadRejected(
                [Problem(self.prefix, f"must be an object of WebUI {task} fields (got {describe(payload)})")]
            )
        specs = _FIELDS[task]
        self._unknown_keys(task, payload, specs)
        self._texts(payload)
        values = self._kinds(payload, specs)
        self._refusals(payload, values, specs)
        self._ranges(task, values, specs)
        self._prompts(values)
        clip_skip = self._override_settings(values.get("override_settings") or {})
        sampler = self._first_pass_sampler(values)
        params = self._sampler_params(values, sampler)
        hires = self._hires(task, values, sampler) if task == "txt2img" else None
        strength = values.get("denoising_strength")
        if hires is not None:
            strength = hires.denoising_strength
        batch_size = values.get("batch_size", 1)
        images: list[Any] = []
        if task == "img2img":
            images, batch_size = self._init_images(values, decode_images)
        self.finish()
        assert sampler is not None
        return CheckedPayload(
            task=task,
            values=values,
            sampler=sampler,
            sampler_params=params,
            clip_skip=clip_skip,
            batch_size=batch_size,
            denoising_strength=strength,
            hires=hires,
            init_images=images,
        )

    def _unknown_keys(self, task: str, payload: Mapping[str, Any], specs: Mapping[str, Any]) -> None:
        other = "img2img" if task == "txt2img" else "txt2img"
        unknown = [key for key in payload if key not in specs]
        shown = LIMITS["max_problems"] // 2
        for key in unknown[:shown]:
            name = key if isinstance(key, str) and not _has_surrogate(key) else ascii(key)
            hint = ""
            if name in _FIELDS[other]:
                hint = f" (it is an {other} field)"
            else:
                close = difflib.get_close_matches(name, list(specs), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.add(name, f"unknown field {name!r} for {task}{hint}; see GET /v1/contract for the fields")
        if len(unknown) > shown:
            self.problems.append(
                Problem(self.prefix, f"{len(unknown) - shown} more unknown field(s) not listed ({len(unknown)} in all)")
            )

    def _texts(self, payload: Mapping[str, Any]) -> None:
        """Every string in the payload must be real Unicode: a lone surrogate (\\ud800) cannot be
        stored, tokenized or encoded as UTF-8."""
        stack: list[tuple[str, Any]] = [(k, v) for k, v in payload.items() if isinstance(k, str)]
        seen = 0
        while stack and seen < _TEXT_SCAN_LIMIT:
            name, value = stack.pop()
            seen += 1
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as exc:
                    char = value[exc.start]
                    self.add(
                        name,
                        f"contains a lone surrogate (U+{ord(char):04X}) at character {exc.start}; send valid Unicode text",
                    )
            elif isinstance(value, dict):
                stack.extend((f"{name}.{k}", v) for k, v in value.items() if isinstance(k, str))
            elif isinstance(value, list):
                stack.extend((f"{name}[{i}]", v) for i, v in enumerate(value))

    def _kinds(self, payload: Mapping[str, Any], specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in specs.items():
            raw = payload.get(name)
            if raw is None or name in self.bad:
                values[name] = _copy(spec["default"])
                continue
            ok, value, message = _coerce(spec["kind"], raw)
            if ok:
                values[name] = value
            else:
                values[name] = _copy(spec["default"])
                self.add(name, message)
        return values

    def _refusals(self, payload: Mapping[str, Any], values: dict[str, Any], specs: Mapping[str, Any]) -> None:
        for name in payload:
            spec = specs.get(name)
            if spec is None or name in self.bad:
                continue
            refusal = spec.get("refused")
            if refusal is None or values[name] is None:
                continue
            if values[name] in refusal["allowed"] or _empty_like(values[name], refusal["allowed"]):
                continue
            if name == "alwayson_scripts":
                for script in values[name]:
                    self.add(
                        f"alwayson_scripts.{script}",
                        f"always-on script {script!r} does not run in the cloud; {refusal['instead']}",
                        UNSUPPORTED,
                    )
                continue
            self.add(name, f"{refusal['reason']}; {refusal['instead']}", UNSUPPORTED)

    def _ranges(self, task: str, values: dict[str, Any], specs: Mapping[str, Mapping[str, Any]]) -> None:
        hires_on = task == "txt2img" and values.get("enable_hr") is True
        for name, spec in specs.items():
            rng = spec.get("range")
            value = values.get(name)
            if rng is None or value is None or name in self.bad:
                continue
            if spec.get("only_with") == "enable_hr" and not hires_on:
                continue
            if value in rng.get("special", ()):
                continue
            low, high, multiple = rng.get("minimum"), rng.get("maximum"), rng.get("multiple_of")
            if multiple and value % multiple:
                self.add(name, f"{name} must be a multiple of {multiple} (got {_fmt(value)})")
                continue
            if (low is not None and value < low) or (high is not None and value > high):
                special = rng.get("special_meaning")
                between = f"between {_fmt(low)} and {_fmt(high)}"
                message = f"must be {special} or {between}" if special else f"{name} must be {between}"
                self.add(name, f"{message} (got {_fmt(value)})")
        if "width" not in self.bad and "height" not in self.bad:
            self._pixels(values["width"], values["height"], "width", "size")

    def _pixels(self, width: int, height: int, name: str, what: str) -> None:
        limit = LIMITS["max_pixels"]
        if width * height > limit:
            self.add(
                name,
                f"{what} {width}x{height} is {width * height} pixels; the limit is {limit} pixels "
                f"(e.g. {LIMITS['max_side']}x{limit // LIMITS['max_side']})",
            )

    def _prompts(self, values: dict[str, Any]) -> None:
        limit = LIMITS["max_prompt_chars"]
        for name in CONTRACT["prompts"]["fields"]:
            text = values.get(name)
            if not isinstance(text, str) or name in self.bad:
                continue
            if len(text) > limit:
                self.add(name, f"is {len(text)} characters long; the limit is {limit}", TOO_LARGE)
                continue
            self._network_tags(name, text)

    def _network_tags(self, name: str, text: str) -> None:
        tags, problems = network_tags(text)
        for message in problems:
            self.add(name, message, UNSUPPORTED)
        if tags and name not in _NETWORK_PROMPTS:
            # A1111 activates networks from the prompt only; in other prompts a tag is dead text.
            self.add(
                name,
                f"LoRA tags ({tags[0].text!r}) are applied from the prompt only (A1111 reads them nowhere "
                "else); move the tag into the prompt, or leave this field empty to reuse the prompt",
                UNSUPPORTED,
            )
            return
        if self.loras is None:
            return
        for tag in tags:
            if not any(lora_matches(tag.name, model) for model in self.loras):
                self.add(
                    name,
                    f"LoRA {tag.name!r} ({tag.text!r}) has no reference in the job's models.loras; "
                    "submit through the middleware, which resolves the tags to library models",
                )

    def _override_settings(self, overrides: Mapping[str, Any]) -> int:
        allowed: Mapping[str, Mapping[str, Any]] = CONTRACT["override_settings"]
        clip_skip = 1
        if "override_settings" in self.bad:
            return clip_skip
        for key, value in overrides.items():
            name = f"override_settings.{key}"
            spec = allowed.get(key)
            if spec is None:
                self.add(
                    name,
                    f"override setting {key!r} is not supported; supported: {', '.join(allowed)}",
                    UNSUPPORTED,
                )
                continue
            if value is None:
                continue
            ok, value, message = _coerce(spec["kind"], value)
            if not ok:
                self.add(name, message)
                continue
            low, high = spec.get("minimum"), spec.get("maximum")
            if low is not None and not low <= value <= high:
                if low == high:
                    self.add(name, f"{key} other than {_fmt(low)} is not supported (got {_fmt(value)})", UNSUPPORTED)
                else:
                    self.add(name, f"{key} must be between {_fmt(low)} and {_fmt(high)} (got {_fmt(value)})")
                continue
            if key == "CLIP_stop_at_last_layers":
                clip_skip = value
        return clip_skip

    # -- samplers ----------------------------------------------------------------------------------

    def _first_pass_sampler(self, values: dict[str, Any]) -> SamplerChoice | None:
        if values.get("sampler_name"):
            name, sampler_field = values["sampler_name"], "sampler_name"
        else:
            name, sampler_field = values.get("sampler_index") or CONTRACT["default_sampler"], "sampler_index"
        if sampler_field in self.bad or "scheduler" in self.bad:
            return None
        return self._resolve(name, values.get("scheduler"), sampler_field, "scheduler")

    def _resolve(
        self, raw_name: str, scheduler: str | None, sampler_field: str, scheduler_field: str
    ) -> SamplerChoice | None:
        supported = supported_samplers()
        raw_name = raw_name.strip() or CONTRACT["default_sampler"]
        sampler = _SAMPLER_KEYS.get(raw_name.lower())
        suffix = None
        if sampler is None:
            base, suffix = _split_combined_name(raw_name)
            sampler = _SAMPLER_KEYS.get(base.lower()) if suffix is not None else None
        if sampler is None:
            self.add(sampler_field, f"unknown sampler {raw_name!r}; supported samplers: {', '.join(supported)}")
            return None
        if not sampler["supported"]:
            self.add(
                sampler_field,
                f"sampler {sampler['name']!r} is not supported ({sampler['unsupported_reason']}); "
                f"supported samplers: {', '.join(supported)}",
                UNSUPPORTED,
            )
            return None
        accepted = sampler["schedulers"]
        requested = (scheduler or "").strip()
        if requested and requested.lower() != _AUTOMATIC:
            chosen = _SCHEDULE_KEYS.get(requested.lower())
            if chosen is None:
                self.add(
                    scheduler_field,
                    f"unknown schedule type {requested!r}; schedule types for {sampler['name']!r}: {', '.join(accepted)}",
                )
                return None
            problem_field = scheduler_field
        elif suffix is not None:
            chosen, problem_field = suffix, sampler_field
        else:
            chosen, problem_field = _SCHEDULE_BY_NAME[_AUTOMATIC], scheduler_field
        if chosen["name"] not in accepted:
            why = (
                f"is not supported: {chosen['unsupported_reason']}"
                if not chosen["supported"]
                else f"cannot be used with sampler {sampler['name']!r}"
            )
            self.add(
                problem_field,
                f"schedule type {chosen['label']!r} {why}; schedule types for {sampler['name']!r}: {', '.join(accepted)}",
                UNSUPPORTED,
            )
            return None
        effective = chosen
        if chosen["name"] == _AUTOMATIC and sampler["default_scheduler"]:
            effective = _SCHEDULE_BY_NAME[sampler["default_scheduler"]]
        asked = _scheduler_asked(sampler, chosen, explicit=bool(requested and requested.lower() != _AUTOMATIC))
        return SamplerChoice(sampler["name"], effective["name"], effective["label"], asked)

    def _sampler_params(self, values: dict[str, Any], sampler: SamplerChoice | None) -> dict[str, float]:
        if sampler is None:
            return {}
        entry = _SAMPLER_KEYS[sampler.sampler.lower()]
        params: dict[str, float] = {}
        for name, default in CONTRACT["sampler_parameters"].items():
            value = values.get(name)
            if value is None or name in self.bad:
                continue
            if name in entry["parameters"]:
                params[name] = value
            elif default is not None and value == default:
                continue  # the WebUI's own default: nothing to honour
            else:
                users = [s["name"] for s in CONTRACT["samplers"] if s["supported"] and name in s["parameters"]]
                self.add(
                    name,
                    f"sampler {sampler.sampler!r} does not use {name}; leave it null, or choose a sampler that "
                    f"does: {', '.join(users)}",
                    UNSUPPORTED,
                )
        return params

    # -- hires fix ----------------------------------------------------------------------------------

    def _hires(self, task: str, values: dict[str, Any], sampler: SamplerChoice | None) -> HiresPlan | None:
        if values.get("enable_hr") is not True:
            return None
        hr = CONTRACT["hires"]
        upscaler = values.get("hr_upscaler")
        if upscaler is not None and upscaler not in hr["upscalers"] and "hr_upscaler" not in self.bad:
            self.add(
                "hr_upscaler",
                f"hires upscaler {upscaler!r} is not available in the cloud; choose one of: {', '.join(hr['upscalers'])}",
                UNSUPPORTED,
            )
        sizes_ok = not ({"width", "height", "hr_scale", "hr_resize_x", "hr_resize_y"} & self.bad)
        plan_sizes = (0, 0, 0, 0)
        if sizes_ok:
            plan_sizes = hires_target(
                values["width"], values["height"], values["hr_scale"], values["hr_resize_x"], values["hr_resize_y"]
            )
            up_w, up_h, final_w, final_h = plan_sizes
            source = "hr_scale" if values["hr_resize_x"] == 0 and values["hr_resize_y"] == 0 else "hr_resize_x"
            low, high = LIMITS["min_side"], LIMITS["max_side"]
            for side, label in ((final_w, "width"), (final_h, "height")):
                if not low <= side <= high:
                    self.add(source, f"hires fix target {label} {side} must be between {low} and {high}")
            self._pixels(final_w, final_h, source, "hires fix target")
            self._pixels(up_w, up_h, source, "hires fix upscale (before cropping to the target)")
        strength = values.get("denoising_strength")
        strength = hr["default_denoising_strength"] if strength is None else strength

        hr_sampler = None
        name = values.get("hr_sampler_name")
        name = None if name in (None, *hr["same_sampler"]) else name
        sched = values.get("hr_scheduler")
        sched = None if sched in (None, *hr["same_scheduler"]) else sched
        if sampler is not None and (name is not None or sched is not None) and not (
            {"hr_sampler_name", "hr_scheduler"} & self.bad
        ):
            hr_sampler = self._resolve(
                name or sampler.sampler,
                sched if sched is not None else sampler.scheduler_asked,
                "hr_sampler_name",
                "hr_scheduler",
            )
            if hr_sampler is not None and (hr_sampler.sampler, hr_sampler.scheduler) == (
                sampler.sampler,
                sampler.scheduler,
            ):
                hr_sampler = None
        return HiresPlan(
            upscale_width=plan_sizes[0],
            upscale_height=plan_sizes[1],
            target_width=plan_sizes[2],
            target_height=plan_sizes[3],
            upscaler=upscaler or hr["default_upscaler"],
            second_pass_steps=values["hr_second_pass_steps"],
            denoising_strength=strength,
            sampler=hr_sampler,
        )

    # -- init images --------------------------------------------------------------------------------

    def _init_images(self, values: dict[str, Any], decode: bool) -> tuple[list[Any], int]:
        """Like the WebUI: one image serves the whole batch; 2..batch_size images set the batch
        size to their count; more than batch_size is an error."""
        batch_size = values.get("batch_size", 1)
        listed = values.get("init_images")
        if "init_images" in self.bad:
            return [], batch_size
        if not listed:
            self.add("init_images", "img2img needs at least one image in init_images (base64 PNG, JPEG or WebP)")
            return [], batch_size
        if len(listed) > 1 and len(listed) > batch_size:
            self.add(
                "init_images",
                f"got {len(listed)} init images for batch_size {batch_size}; send one image, or at most batch_size images",
            )
            return [], batch_size
        images = []
        for i, item in enumerate(listed):
            problem, image = decode_image(item, f"init_images[{i}]")
            if problem is not None:
                self.add(f"init_images[{i}]", problem.message, problem.code)
            elif decode:
                images.append(image)
        return images, (batch_size if len(listed) == 1 else len(listed))


# ------------------------------------------------------------------------------------------------
# Pieces


def _copy(value: Any) -> Any:
    return type(value)(value) if isinstance(value, list | dict) else value


def _empty_like(value: Any, allowed: list[Any]) -> bool:
    """An empty list or object counts as the allowed empty value ([] or {})."""
    return isinstance(value, list | dict) and not value and any(isinstance(a, list | dict) and not a for a in allowed)


def _coerce(kind: str, value: Any) -> tuple[bool, Any, str]:
    """(ok, value, message): the value in its JSON kind, as the WebUI's pydantic models take it."""
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, None, f"must be an integer (got {describe(value)})"
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                return False, None, f"must be an integer (got {value!r})"
            return True, int(value), ""
        return True, value, ""
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, None, f"must be a number (got {describe(value)})"
        if not math.isfinite(value):
            return False, None, f"must be a finite number (got {value!r})"
        return True, float(value), ""
    if kind == "bool":
        if not isinstance(value, bool):
            return False, None, f"must be true or false (got {describe(value)})"
        return True, value, ""
    if kind in ("str", "image"):
        if not isinstance(value, str):
            return False, None, f"must be a string (got {describe(value)})"
        return True, value, ""
    if kind == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return False, None, f"must be a list of strings (got {describe(value)})"
        return True, list(value), ""
    if kind == "image_list":
        if not isinstance(value, list):
            return False, None, f"must be a list of base64 images (got {describe(value)})"
        return True, list(value), ""
    if kind == "list":
        if not isinstance(value, list):
            return False, None, f"must be a list (got {describe(value)})"
        return True, list(value), ""
    if kind == "dict":
        if not isinstance(value, dict):
            return False, None, f"must be an object (got {describe(value)})"
        return True, dict(value), ""
    return True, value, ""  # "any"


def _split_combined_name(name: str) -> tuple[str, Mapping[str, Any] | None]:
    """Split a trailing schedule label ("DPM++ 2M Karras") off a sampler name, as the WebUI's API
    does: every label or alias found at the end is stripped, the last one found winning."""
    found = None
    for sched in CONTRACT["schedulers"]:
        for option in (sched["label"], *sched["aliases"]):
            if name.lower().endswith(" " + option.lower()):
                found = sched
                name = name[: -(len(option) + 1)]
                break
    return name, found


def _scheduler_asked(sampler: Mapping[str, Any], chosen: Mapping[str, Any], *, explicit: bool) -> str | None:
    """The schedule type the request names itself, as the WebUI stores it in ``p.scheduler``;
    None when automatic. A suffix naming the sampler's own default turns back into automatic."""
    if chosen["name"] == _AUTOMATIC:
        return None
    if explicit:
        return chosen["label"]
    if chosen["name"] == sampler["default_scheduler"]:
        return None
    return chosen["label"]


def hires_target(width: int, height: int, scale: float, resize_x: int, resize_y: int) -> tuple[int, int, int, int]:
    """The WebUI's hires-fix sizes (processing.calculate_target_resolution): (upscale_w, upscale_h,
    final_w, final_h); the upscale is cropped to the final size when both resize_x and resize_y
    are given with another aspect ratio."""
    if resize_x == 0 and resize_y == 0:
        w, h = int(width * scale), int(height * scale)
        return w, h, w, h
    if resize_y == 0:
        w, h = resize_x, resize_x * height // width
        return w, h, w, h
    if resize_x == 0:
        w, h = resize_y * width // height, resize_y
        return w, h, w, h
    if width / height < resize_x / resize_y:
        up_w, up_h = resize_x, resize_x * height // width
    else:
        up_w, up_h = resize_y * width // height, resize_y
    return up_w, up_h, resize_x, resize_y


def decode_image(data: Any, field_name: str) -> tuple[Problem | None, Any]:
    """Decode one base64 image (plain or data: URL) into an upright RGB PIL image.

    The size in the header is checked before any pixel is decoded (decompression bombs), and
    PIL's process-wide limits are left alone. Returns (problem, None) or (None, image).
    """
    formats = tuple(CONTRACT["images"]["formats"])
    max_bytes, max_pixels = LIMITS["max_init_image_bytes"], LIMITS["max_init_image_pixels"]
    if not isinstance(data, str):
        return Problem(field_name, f"must be a base64-encoded image string (got {describe(data)})"), None
    text = data
    if text.startswith(("http://", "https://")):
        return Problem(field_name, "image URLs are not fetched; send the image as base64 (optionally as a data: URL)", UNSUPPORTED), None
    if text.startswith("data:"):
        match = _DATA_URL.match(text)
        if not match:
            return Problem(field_name, "a data: URL must look like data:image/png;base64,<base64 bytes>"), None
        text = text[match.end():]
    text = _WHITESPACE.sub("", text)
    if not text:
        return Problem(field_name, "is empty; send a base64-encoded PNG, JPEG or WebP image"), None
    if (len(text) // 4) * 3 > max_bytes + 3:  # refuse before allocating the decoded copy
        return Problem(field_name, f"image is larger than {max_bytes} bytes (about {len(text) * 3 // 4} bytes of base64 data)", TOO_LARGE), None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return Problem(field_name, "is not valid base64 image data"), None
    if len(raw) > max_bytes:
        return Problem(field_name, f"image is larger than {max_bytes} bytes ({len(raw)} bytes)", TOO_LARGE), None

    from PIL import Image, ImageOps, UnidentifiedImageError

    bomb = Problem(field_name, f"image decodes to more than {max_pixels} pixels (decompression bomb guard)", TOO_LARGE)
    try:
        image = Image.open(io.BytesIO(raw), formats=formats)
    except Image.DecompressionBombError:
        return bomb, None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return Problem(field_name, f"is not a readable image; accepted formats: {', '.join(formats)}"), None
    width, height = image.size
    if width <= 0 or height <= 0:
        return Problem(field_name, f"image has no pixels ({width}x{height})"), None
    if width * height > max_pixels:
        return Problem(field_name, f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels", TOO_LARGE), None
    try:
        image.load()
    except Image.DecompressionBombError:
        return bomb, None
    except (OSError, ValueError, SyntaxError, EOFError):
        return Problem(field_name, "image data is truncated or corrupt"), None
    image = ImageOps.exif_transpose(image) or image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa"):
        # The WebUI flattens transparent init images onto its default (white) background.
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*CONTRACT["images"]["background"], 255))
        flat.alpha_composite(rgba)
        return None, flat.convert("RGB")
    return None, image.convert("RGB")
