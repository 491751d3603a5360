"""The WebUI stand-in matches the real extension API (../shared/webui/*.json) name for name and
signature for signature, for both flavours, and behaves as the real WebUIs were seen to behave."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.local_processes import REPO

STANDIN = REPO / "tests" / "extension" / "webui_standin"
MANIFESTS = {"a1111": REPO.parent / "shared" / "webui" / "a1111-v1.10.1.json",
             "forge": REPO.parent / "shared" / "webui" / "forge.json"}

# The stand-in modules with a manifest entry; every public function and class they define is checked.
CHECKED = ["launch", "modules.script_callbacks", "modules.scripts", "modules.processing", "modules.shared",
           "modules.options", "modules.shared_state", "modules.sd_samplers", "modules.sd_schedulers",
           "modules.infotext_utils", "modules.images", "modules.call_queue", "modules.script_loading",
           "modules.txt2img", "modules.img2img", "modules.paths_internal", "modules.errors", "modules.ui_common"]
# What sdcloud touches beyond the manifests, as the real WebUIs' README records it.
# (images: the manifest lists only save_image and save_image_with_geninfo; image_grid is the
# WebUI's grid maker, which process_images_inner calls.)
NOT_IN_MANIFEST = {"modules.sd_models": {"reload_model_weights", "model_data"}, "modules.images": {"image_grid"}}


def _compare(flavour: str) -> list[str]:
    """Differences between the stand-in (imported in this process) and the flavour's manifest."""
    import importlib

    manifest = json.loads(MANIFESTS[flavour].read_text())["modules"]
    problems: list[str] = []

    def params_of(sig_json):
        return [(p["name"], p["kind"], p.get("default"), p.get("annotation")) for p in sig_json["parameters"]]

    def params_here(fn):
        out = []
        for p in inspect.signature(fn).parameters.values():
            default = None if p.default is inspect.Parameter.empty else p.default
            annotation = None if p.annotation is inspect.Parameter.empty else p.annotation
            out.append((p.name, p.kind.name, default, annotation))
        return out

    def same(where, fn, sig_json):
        here, there = params_here(fn), params_of(sig_json)
        if [(n, k) for n, k, _, _ in here] != [(n, k) for n, k, _, _ in there]:
            problems.append(f"{where}: parameters {[(n, k) for n, k, _, _ in here]} != {[(n, k) for n, k, _, _ in there]}")
            return
        for (name, _, d_here, a_here), (_, _, d_there, a_there) in zip(here, there, strict=True):
            if (d_here is None) != (d_there is None) and d_there != "None":
                problems.append(f"{where}({name}): default {d_here!r} vs manifest {d_there!r}")
            elif d_there is not None:
                try:
                    literal = ast.literal_eval(d_there)
                except (ValueError, SyntaxError):
                    continue  # a name or a call in the source: presence is what can be compared
                if literal != d_here:
                    problems.append(f"{where}({name}): default {d_here!r} vs manifest {d_there!r}")
            if a_there is not None and isinstance(a_here, str) and a_here != a_there:
                problems.append(f"{where}({name}): annotation {a_here!r} vs manifest {a_there!r}")

    for name in CHECKED:
        module = importlib.import_module(name)
        entry = manifest[name]
        names = {n["name"] for n in entry.get("names", [])} | {f["name"] for f in entry.get("functions", [])}
        functions = {f["name"]: f for f in entry.get("functions", [])}
        if name == "launch":
            functions.update({x["name"]: x for x in entry["reexports_from_launch_utils"] if x["kind"] == "function"})
        classes = {c["name"]: c for c in entry.get("classes", [])}
        for attr, value in vars(module).items():
            if attr.startswith("_") or not (inspect.isfunction(value) or inspect.isclass(value)):
                continue
            if getattr(value, "__module__", None) not in (module.__name__, "modules.launch_utils"):
                continue
            where = f"{name}.{attr}"
            if names and attr not in names and "scope" not in entry:  # images: the manifest covers two
                problems.append(f"{where}: not a name of the real module")
            elif inspect.isfunction(value) and attr in functions:
                same(where, value, functions[attr]["signature"])
            elif inspect.isclass(value) and attr in classes:
                spec = classes[attr]
                methods: dict[str, list] = {}
                for m in spec.get("methods", []):
                    methods.setdefault(m["name"], []).append(m["signature"])
                for mname, member in vars(value).items():
                    if mname.startswith("_") and mname not in ("__init__", "__enter__", "__exit__", "__setattr__",
                                                                 "__getattr__", "__post_init__"):
                        continue
                    if isinstance(member, property):
                        sigs = methods.get(mname)
                        if sigs is None:
                            problems.append(f"{where}.{mname}: property not in the manifest")
                            continue
                        same(f"{where}.{mname}", member.fget, sigs[0])
                        if member.fset is not None and len(sigs) > 1:
                            same(f"{where}.{mname}.setter", member.fset, sigs[1])
                    elif inspect.isfunction(member):
                        if mname not in methods:
                            if not (dataclasses.is_dataclass(value) and mname in ("__init__", "__setattr__")):
                                problems.append(f"{where}.{mname}: method not in the manifest")
                            continue
                        same(f"{where}.{mname}", member, methods[mname][0])
                if spec.get("dataclass"):
                    here = [f.name for f in dataclasses.fields(value)]
                    there = spec.get("dataclass_all_fields_order") or [
                        f["name"] if isinstance(f, dict) else f for f in spec.get("fields", [])]
                    if here != there:
                        problems.append(f"{where}: dataclass fields {here} != {there}")
                    for p in spec.get("dataclass_init_params", []):
                        field = next((f for f in dataclasses.fields(value) if f.name == p["name"]), None)
                        if field is None or p.get("default_is_property_object"):
                            continue
                        try:
                            literal = ast.literal_eval(p["default"])
                        except (ValueError, SyntaxError):
                            continue
                        if field.default is not dataclasses.MISSING and field.default != literal:
                            problems.append(f"{where}.{p['name']}: default {field.default!r} vs {p['default']}")
                attrs = {a["name"]: a for a in spec.get("class_attributes", [])}
                for a, info in attrs.items():
                    if "value" in info and info.get("value_kind", "literal") == "literal" and hasattr(value, a):
                        if getattr(value, a) != info["value"] and not isinstance(getattr(value, a), property):
                            problems.append(f"{where}.{a}: {getattr(value, a)!r} vs manifest {info['value']!r}")
    return problems


def _run_in_flavour(flavour: str, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SDCLOUD_WEBUI_FLAVOUR": flavour, "PYTHONPATH": f"{STANDIN}{os.pathsep}{REPO}",
           "COMMANDLINE_ARGS": "--nowebui"}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=120)


@pytest.mark.parametrize("flavour", ["a1111", "forge"])
def test_standin_matches_the_manifest(flavour: str) -> None:
    if not MANIFESTS[flavour].is_file():
        pytest.skip(f"{MANIFESTS[flavour]} is not here (CI has ../shared/webui/)")
    code = ("import json, tests.extension.test_webui_standin as t; "
            f"print(json.dumps(t._compare({flavour!r})))")
    done = _run_in_flavour(flavour, code)
    assert done.returncode == 0, done.stderr[-3000:]
    problems = json.loads(done.stdout.strip().splitlines()[-1])
    assert problems == [], "\n".join(problems)


def test_sdcloud_touches_only_real_names() -> None:
    """Every modules.X.Y sdcloud/webui.py uses exists in the manifests (or is recorded in the
    WebUI README: sd_models.reload_model_weights / model_data)."""
    manifests = [json.loads(m.read_text())["modules"] for m in MANIFESTS.values() if m.is_file()]
    if not manifests:
        pytest.skip("no manifests here")
    tree = ast.parse((REPO / "sdcloud" / "webui.py").read_text())
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "modules":
            for a in node.names:
                aliases[a.asname or a.name] = f"modules.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("modules."):
                    aliases[a.asname or a.name] = a.name
    used = {(aliases[n.value.id], n.attr) for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases}
    assert used, "sdcloud.webui uses no WebUI names?"
    missing = []
    for module, attr in sorted(used):
        if attr in NOT_IN_MANIFEST.get(module, set()):
            continue
        found = any(
            attr in {x["name"] for x in m.get(module, {}).get("names", [])}
            | {f["name"] for f in m.get(module, {}).get("functions", [])}
            for m in manifests
        )
        if not found:
            missing.append(f"{module}.{attr}")
    assert missing == [], missing


STOCK = """
import os, sys
sys.path.insert(0, {standin!r})
import webui as standin
from modules import processing, shared, sd_models, scripts, _standin
import modules.api.api as api
ui = standin.start([{repo!r}], nowebui=True)
out = ui.txt2img(prompt="x", width=64, height=64)
print("ERROR", out[-1].split("</div>")[0])
print("API_BOUND_ORIGINAL", api.process_images is processing.process_images)
print("DEMO_NONE", ui.started_with_demo is None)
print("UI_BUILT", [s.title() for s in ui.tabs["txt2img"].runner.alwayson_scripts])
print("SYSPATH_RESTORED", {repo!r} not in sys.path)
"""


@pytest.mark.parametrize("flavour", ["a1111", "forge"])
def test_standin_reproduces_the_recorded_behaviours(flavour: str, tmp_path: Path) -> None:
    env_code = STOCK.format(standin=str(STANDIN), repo=str(REPO))
    env = {**os.environ, "SDCLOUD_WEBUI_FLAVOUR": flavour, "COMMANDLINE_ARGS": f"--nowebui --data-dir {tmp_path}",
           "SDCLOUD_UI_SETTINGS": str(tmp_path / "s.json")}
    done = subprocess.run([sys.executable, "-c", env_code], cwd=tmp_path, env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    if flavour == "a1111":
        assert lines["ERROR"].startswith("<div class='error'>FileNotFoundError: No checkpoints found")
    else:
        assert lines["ERROR"].startswith("<div class='error'>ValueError: You do not have any model!")
    assert lines["API_BOUND_ORIGINAL"] == "True"
    assert lines["DEMO_NONE"] == "True"
    assert "SD Cloud" in lines["UI_BUILT"]  # ui() ran under --nowebui
    assert lines["SYSPATH_RESTORED"] == "True"  # the extension root was on sys.path only while loading
