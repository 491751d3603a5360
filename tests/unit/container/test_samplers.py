"""The sampler catalog against the WebUI manifest, and request names resolved through it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference_container.engine import samplers
from inference_container.engine.samplers import resolve_sampler, supported_samplers
from inference_container.engine.sampling import catalog
from inference_container.errors import InvalidRequest, UnsupportedFeature

REPO = Path(__file__).resolve().parents[3]
MANIFEST = REPO / ".." / "shared" / "webui" / "a1111-v1.10.1.json"
UNSUPPORTED = ["DPM fast", "DPM adaptive", "Restart", "DDIM CFG++"]


def _manifest() -> dict:
    if not MANIFEST.exists():
        pytest.skip(f"WebUI manifest not found at {MANIFEST} (it lives in ../shared/webui/)")
    return json.loads(MANIFEST.read_text())


def _manifest_samplers() -> list[dict]:
    return _manifest()["samplers"]["list"] if MANIFEST.exists() else []


def _manifest_schedulers() -> list[dict]:
    return _manifest()["schedulers"] if MANIFEST.exists() else []


def test_every_manifest_sampler_is_in_the_catalog_with_its_options() -> None:
    listed = _manifest_samplers()
    assert [s["name"] for s in listed] == [s.name for s in catalog.SAMPLERS]
    for raw in listed:
        entry = samplers.sampler_entry(raw["name"])
        assert entry is not None
        options = raw["options"]
        assert list(entry.aliases) == raw["aliases"]
        assert entry.default_scheduler == raw["default_scheduler"]
        assert entry.uses_ensd == bool(options.get("uses_ensd", False))
        assert entry.discard_penultimate_sigma == bool(options.get("discard_next_to_last_sigma", False))
        assert entry.second_order == bool(options.get("second_order", False))
        assert entry.supported != bool(entry.unsupported_reason)
        assert entry.kind == {"k_diffusion": "kdiffusion", "timesteps": "timesteps", "lcm": "lcm"}[raw["family"]]


def test_every_manifest_scheduler_is_in_the_catalog() -> None:
    listed = _manifest_schedulers()
    assert [(s["name"], s["label"], tuple(s["aliases"] or ())) for s in listed] == [
        (s.name, s.label, s.aliases) for s in catalog.SCHEDULERS
    ]
    assert all(s.supported and not s.unsupported_reason for s in catalog.SCHEDULERS)


def test_catalog_is_pure_data() -> None:
    import subprocess
    import sys

    code = "import sys, inference_container.engine.sampling.catalog; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_catalog_fields_are_consistent() -> None:
    for s in catalog.SAMPLERS:
        assert set(s.parameters) <= set(catalog.SAMPLER_PARAMETERS)
        assert (s.eta_default is not None) == ("eta" in s.parameters)
        if s.supported:
            assert s.schedulers[0] == "automatic"
        else:
            assert s.schedulers == ()
        assert s.ignores_schedule_type == (s.kind == "timesteps")


def test_parameter_table_follows_a1111() -> None:
    params = {s.name: set(s.parameters) for s in catalog.SAMPLERS if s.supported}
    churn = {"s_churn", "s_tmin", "s_tmax", "s_noise"}
    assert params["Euler"] == params["Heun"] == params["DPM2"] == churn
    assert params["Euler a"] == {"eta"}
    for name in ("DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"):
        assert params[name] == {"eta", "s_noise"}, name
    assert params["DDIM"] == {"eta"}
    for name in ("LMS", "DPM++ 2M", "PLMS", "UniPC", "LCM"):
        assert params[name] == set(), name
    assert catalog.SAMPLERS[0].eta_default is None
    assert samplers.sampler_entry("Euler a").eta_default == 1.0
    assert samplers.sampler_entry("DDIM").eta_default == 0.0


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_unsupported_samplers_are_refused_with_the_list(name: str) -> None:
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
    if scheduler == "automatic":
        default = samplers.sampler_entry(sampler).default_scheduler
        assert spec.scheduler == (default or "automatic")
    else:
        assert spec.scheduler == scheduler


def test_every_kdiffusion_and_timestep_sampler_takes_every_schedule_type() -> None:
    names = [s.name for s in catalog.SCHEDULERS]
    for name, allowed in supported_samplers().items():
        assert allowed == (["automatic"] if name == "LCM" else names), name


def test_automatic_uses_the_samplers_own_default_schedule() -> None:
    assert resolve_sampler("DPM++ 2M", "automatic").scheduler_label == "Karras"
    assert resolve_sampler("DPM++ 2M SDE", None).scheduler == "exponential"
    euler = resolve_sampler("Euler", "Automatic")
    assert (euler.scheduler, euler.scheduler_label) == ("automatic", "Automatic")


def test_no_sampler_means_the_api_default_euler() -> None:
    for empty in (None, ""):
        spec = resolve_sampler(empty, None)
        assert (spec.name, spec.scheduler, spec.kind) == ("Euler", "automatic", "kdiffusion")


def test_timestep_samplers_keep_the_requested_schedule_type_for_the_infotext() -> None:
    spec = resolve_sampler("DDIM", "Karras")
    assert (spec.kind, spec.scheduler, spec.scheduler_label) == ("timesteps", "karras", "Karras")
    assert resolve_sampler("DDIM Karras", None).scheduler == "karras"


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
    assert "automatic, uniform, karras" in info.value.message


def test_lcm_takes_only_its_own_schedule() -> None:
    with pytest.raises(UnsupportedFeature) as info:
        resolve_sampler("LCM", "Karras")
    assert info.value.field == "payload.scheduler"
    with pytest.raises(UnsupportedFeature) as info:
        resolve_sampler("LCM Karras", None)
    assert info.value.field == "payload.sampler_name"


def test_ensd_flag_follows_the_webui() -> None:
    assert resolve_sampler("Euler a", None).uses_ensd
    assert resolve_sampler("DPM2 a", None).uses_ensd
    assert not resolve_sampler("Euler", None).uses_ensd


def test_discard_penultimate_sigma_follows_the_webui() -> None:
    assert [s.name for s in catalog.SAMPLERS if s.discard_penultimate_sigma] == ["DPM++ 3M SDE", "DPM2", "DPM2 a"]


# --- sampler parameters ---------------------------------------------------------------------------


def test_parameters_resolve_to_the_values_the_sampler_uses() -> None:
    spec = resolve_sampler("Euler a", None)
    assert (spec.eta, spec.eta_default) == (1.0, 1.0)
    assert resolve_sampler("Euler a", None, parameters={"eta": 0.3}).eta == 0.3
    assert resolve_sampler("DDIM", None).eta == 0.0
    euler = resolve_sampler("Euler", None, parameters={"s_churn": 0.5, "s_tmin": 0.1, "s_tmax": 10, "s_noise": 0.9})
    assert (euler.eta, euler.s_churn, euler.s_tmin, euler.s_tmax, euler.s_noise) == (None, 0.5, 0.1, 10.0, 0.9)
    sde = resolve_sampler("DPM++ SDE", None, parameters={"eta": 0.5, "s_noise": 0.8, "s_churn": None})
    assert (sde.eta, sde.s_noise, sde.s_churn) == (0.5, 0.8, 0.0)


@pytest.mark.parametrize(
    ("sampler", "parameter"),
    [("Euler", "eta"), ("DPM++ 2M", "eta"), ("Euler a", "s_noise"), ("DPM++ SDE", "s_churn"),
     ("LMS", "s_tmax"), ("DDIM", "s_noise"), ("UniPC", "eta"), ("LCM", "s_tmin")],
)
def test_a_parameter_the_sampler_ignores_is_refused_by_name(sampler: str, parameter: str) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        resolve_sampler(sampler, None, parameters={parameter: 0.5})
    assert info.value.field == f"payload.{parameter}"
    assert sampler in info.value.message and parameter in info.value.message
    # The hires pass takes what it uses of the request's parameters and leaves the rest.
    spec = resolve_sampler(sampler, None, parameters={parameter: 0.5}, refuse_unused_parameters=False)
    assert spec.name == sampler
