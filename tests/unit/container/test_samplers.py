"""The sampler table against the WebUI manifest and against the installed diffusers."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import diffusers
import pytest

from inference_container.engine import samplers
from inference_container.engine.samplers import resolve_sampler, supported_samplers
from inference_container.errors import InvalidRequest, UnsupportedFeature

REPO = Path(__file__).resolve().parents[3]
MANIFEST = REPO / ".." / "shared" / "webui" / "a1111-v1.10.1.json"
SD15_SCHEDULER_CONFIG = (
    REPO / "inference_container" / "engine" / "configs" / "sd15" / "scheduler" / "scheduler_config.json"
)

# The scheduler config every SD 1.x checkpoint ships with (PNDM, scaled-linear betas).
STANDARD_SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


def _manifest() -> dict:
    if not MANIFEST.exists():
        pytest.skip(f"WebUI manifest not found at {MANIFEST} (it lives in ../shared/webui/)")
    return json.loads(MANIFEST.read_text())


def _manifest_samplers() -> list[dict]:
    return _manifest()["samplers"]["list"] if MANIFEST.exists() else []


def _manifest_schedulers() -> list[dict]:
    return _manifest()["schedulers"] if MANIFEST.exists() else []


def _base_config() -> dict:
    if SD15_SCHEDULER_CONFIG.exists():
        return json.loads(SD15_SCHEDULER_CONFIG.read_text())
    return dict(STANDARD_SD15_SCHEDULER)


def test_every_manifest_sampler_is_in_the_table_with_its_aliases_and_defaults() -> None:
    listed = _manifest_samplers()
    assert [s["name"] for s in listed] == [s.name for s in samplers.SAMPLERS]
    for raw in listed:
        entry = samplers.sampler_entry(raw["name"])
        assert entry is not None
        assert list(entry.aliases) == raw["aliases"]
        assert entry.default_scheduler == raw["default_scheduler"]
        assert entry.uses_ensd == bool(raw["options"].get("uses_ensd", False))
        assert (entry.diffusers_class is None) == bool(entry.unsupported_reason)


def test_every_manifest_scheduler_is_in_the_table() -> None:
    listed = _manifest_schedulers()
    assert [(s["name"], s["label"], tuple(s["aliases"] or ())) for s in listed] == [
        (s.name, s.label, s.aliases) for s in samplers.SCHEDULERS
    ]
    for sched in samplers.SCHEDULERS:
        assert (sched.config is None) == bool(sched.unsupported_reason)


def test_accepted_overrides_match_the_installed_diffusers_signatures() -> None:
    keys = set().union(*samplers.ACCEPTED_OVERRIDES.values())
    for class_name, accepted in samplers.ACCEPTED_OVERRIDES.items():
        params = set(inspect.signature(getattr(diffusers, class_name).__init__).parameters)
        assert params & keys == accepted, class_name


@pytest.mark.parametrize(
    ("name", "cls", "config"),
    [
        ("DPM++ 2M", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
        ("DPM++ SDE", "DPMSolverSDEScheduler", {}),
        ("DPM++ 2M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
        (
            "DPM++ 2M SDE Heun",
            "DPMSolverMultistepScheduler",
            {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"},
        ),
        (
            "DPM++ 3M SDE",
            "DPMSolverMultistepScheduler",
            {"algorithm_type": "sde-dpmsolver++", "solver_order": 3},
        ),
        ("Euler a", "EulerAncestralDiscreteScheduler", {}),
        ("Euler", "EulerDiscreteScheduler", {}),
        ("LMS", "LMSDiscreteScheduler", {}),
        ("Heun", "HeunDiscreteScheduler", {}),
        ("DPM2", "KDPM2DiscreteScheduler", {}),
        ("DPM2 a", "KDPM2AncestralDiscreteScheduler", {}),
        ("DDIM", "DDIMScheduler", {}),
        ("PLMS", "PNDMScheduler", {"skip_prk_steps": True}),
        ("UniPC", "UniPCMultistepScheduler", {}),
        ("LCM", "LCMScheduler", {}),
    ],
)
def test_sampler_maps_to_the_agreed_diffusers_class(name: str, cls: str, config: dict) -> None:
    spec = resolve_sampler(name, None)
    assert spec.name == name
    assert spec.diffusers_class == cls
    assert config.items() <= spec.config.items()


@pytest.mark.parametrize("name", ["DPM++ 2S a", "DPM fast", "DPM adaptive", "Restart", "DDIM CFG++"])
def test_samplers_without_a_diffusers_equivalent_are_refused_with_the_list(name: str) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        resolve_sampler(name, None)
    assert info.value.field == "payload.sampler_name"
    assert "not supported" in info.value.message
    assert "DPM++ 2M" in info.value.message and "Euler a" in info.value.message
    assert name not in supported_samplers()


def _every_combination() -> list[tuple[str, str]]:
    scheds = [s["name"] for s in _manifest_schedulers()]
    return [(s["name"], sched) for s in _manifest_samplers() for sched in scheds]


@pytest.mark.skipif(
    not MANIFEST.exists(), reason="WebUI manifest ../shared/webui/a1111-v1.10.1.json is absent"
)
@pytest.mark.parametrize(("sampler", "scheduler"), _every_combination())
def test_every_sampler_and_schedule_type_resolves_or_is_refused_clearly(sampler: str, scheduler: str) -> None:
    table = supported_samplers()
    try:
        spec = resolve_sampler(sampler, scheduler)
    except InvalidRequest as error:
        assert error.field in ("payload.sampler_name", "payload.scheduler")
        if error.field == "payload.sampler_name":
            assert sampler not in table
            assert ", ".join(table) in error.message
        else:
            assert scheduler not in table[sampler]
            assert ", ".join(table[sampler]) in error.message
        return

    assert scheduler in table[sampler]
    cls = getattr(diffusers, spec.diffusers_class)
    instance = cls.from_config({**_base_config(), **spec.config})
    for key, value in spec.config.items():
        assert instance.config[key] == value, (key, instance.config[key])
    instance.set_timesteps(10)
    assert len(instance.timesteps) >= 10
    if scheduler == "automatic":
        default = samplers.sampler_entry(sampler).default_scheduler
        assert spec.scheduler == (default or "automatic")
    else:
        assert spec.scheduler == scheduler


def test_automatic_uses_the_samplers_own_default_schedule() -> None:
    assert resolve_sampler("DPM++ 2M", "automatic").scheduler_label == "Karras"
    assert resolve_sampler("DPM++ 2M SDE", None).config["use_exponential_sigmas"] is True
    euler = resolve_sampler("Euler", "Automatic")
    assert (euler.scheduler, euler.scheduler_label) == ("automatic", "Automatic")


@pytest.mark.parametrize(
    ("sampler", "config"),
    [
        # k-diffusion's own schedule under "Automatic": timesteps linspace(999, 0, n).
        ("Euler", {"timestep_spacing": "linspace"}),
        ("Euler a", {"timestep_spacing": "linspace"}),
        ("LMS", {"timestep_spacing": "linspace"}),
        ("Heun", {"timestep_spacing": "linspace"}),
        # The WebUI's timestep samplers: range(0, 1000, 1000 // n) + 1.
        ("DDIM", {"timestep_spacing": "leading", "steps_offset": 1}),
        ("PLMS", {"skip_prk_steps": True, "timestep_spacing": "leading", "steps_offset": 1}),
        ("UniPC", {"timestep_spacing": "leading", "steps_offset": 1}),
        ("LCM", {}),
    ],
)
def test_automatic_without_a_default_uses_the_webuis_own_spacing(sampler: str, config: dict) -> None:
    assert resolve_sampler(sampler, None).config == config


def test_automatic_timesteps_match_the_webui() -> None:
    base = _base_config()
    euler = diffusers.EulerDiscreteScheduler.from_config({**base, **resolve_sampler("Euler", None).config})
    euler.set_timesteps(5)
    assert [round(float(t)) for t in euler.timesteps] == [999, 749, 500, 250, 0]  # linspace(999, 0, 5)
    ddim = diffusers.DDIMScheduler.from_config({**base, **resolve_sampler("DDIM", None).config})
    ddim.set_timesteps(5)
    assert [int(t) for t in ddim.timesteps] == [801, 601, 401, 201, 1]  # range(0, 1000, 200) + 1, reversed


def test_no_sampler_means_the_api_default_euler() -> None:
    for empty in (None, ""):
        spec = resolve_sampler(empty, None)
        assert (spec.name, spec.scheduler, spec.diffusers_class) == (
            "Euler",
            "automatic",
            "EulerDiscreteScheduler",
        )


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("k_euler_a", "Euler a"),
        ("k_euler_ancestral", "Euler a"),
        ("k_dpmpp_2m", "DPM++ 2M"),
        ("K_LMS", "LMS"),
        ("plms", "PLMS"),
        ("k_lcm", "LCM"),
        ("euler A", "Euler a"),
    ],
)
def test_aliases_and_case_resolve(alias: str, name: str) -> None:
    assert resolve_sampler(alias, None).name == name


@pytest.mark.parametrize(
    ("scheduler", "name"),
    [
        ("Karras", "karras"),
        ("SGMUniform", "sgm_uniform"),
        ("SGM Uniform", "sgm_uniform"),
        ("sgm_uniform", "sgm_uniform"),
        ("EXPONENTIAL", "exponential"),
    ],
)
def test_scheduler_names_labels_and_aliases_resolve(scheduler: str, name: str) -> None:
    assert resolve_sampler("Euler", scheduler).scheduler == name


@pytest.mark.parametrize(
    ("combined", "explicit", "name", "scheduler"),
    [
        ("DPM++ 2M Karras", None, "DPM++ 2M", "karras"),
        ("DPM++ 2M SDE Exponential", None, "DPM++ 2M SDE", "exponential"),
        ("DPM++ 2M SDE Karras", "Automatic", "DPM++ 2M SDE", "karras"),
        ("Euler a SGMUniform", "", "Euler a", "sgm_uniform"),
        ("k_dpmpp_2m Karras", None, "DPM++ 2M", "karras"),
        ("Euler Uniform", None, "Euler", "uniform"),
        # An explicit schedule type wins over the one in the name, as in the WebUI's API.
        ("DPM++ 2M Karras", "exponential", "DPM++ 2M", "exponential"),
        # "DPM++ 2M SDE Heun" is a sampler name, not "DPM++ 2M SDE" + a schedule type.
        ("DPM++ 2M SDE Heun", None, "DPM++ 2M SDE Heun", "exponential"),
    ],
)
def test_combined_names_split_off_the_schedule_type(combined, explicit, name, scheduler) -> None:
    spec = resolve_sampler(combined, explicit)
    assert (spec.name, spec.scheduler) == (name, scheduler)


def test_unknown_sampler_names_the_field_and_lists_samplers() -> None:
    with pytest.raises(InvalidRequest) as info:
        resolve_sampler("Eulr", None, field_prefix="payload", sampler_field="hr_sampler_name")
    assert not isinstance(info.value, UnsupportedFeature)
    assert info.value.field == "payload.hr_sampler_name"
    assert "'Eulr'" in info.value.message and "DPM++ 2M, DPM++ SDE" in info.value.message


def test_unknown_schedule_type_names_the_field_and_lists_the_samplers_schedules() -> None:
    with pytest.raises(InvalidRequest) as info:
        resolve_sampler("DDIM", "Karras-ish")
    assert info.value.field == "payload.scheduler"
    assert "automatic, uniform, sgm_uniform, simple, normal, ddim" in info.value.message


def test_combination_the_class_cannot_express_is_refused() -> None:
    with pytest.raises(UnsupportedFeature) as info:
        resolve_sampler("Euler a", "Karras")
    assert info.value.field == "payload.scheduler"
    assert "use_karras_sigmas" in info.value.message
    with pytest.raises(UnsupportedFeature) as info:
        resolve_sampler("DDIM Karras", None)
    assert info.value.field == "payload.sampler_name"


def test_unsupported_schedule_types_say_why() -> None:
    for name in ("kl_optimal", "align_your_steps"):
        with pytest.raises(UnsupportedFeature) as info:
            resolve_sampler("Euler", name)
        assert "not supported" in info.value.message
        assert all(name not in allowed for allowed in supported_samplers().values())


def test_ensd_flag_follows_the_webui() -> None:
    assert resolve_sampler("Euler a", None).uses_ensd
    assert resolve_sampler("DPM2 a", None).uses_ensd
    assert not resolve_sampler("Euler", None).uses_ensd


def test_resolved_config_is_a_copy() -> None:
    spec = resolve_sampler("DPM++ 2M", None)
    spec.config["solver_order"] = 99
    assert resolve_sampler("DPM++ 2M", None).config["solver_order"] == 2
