"""The engine facade on the tiny model: the A1111 response inline, or PNGs in the output store."""

from __future__ import annotations

import base64
import json

import pytest

from inference_container.engine.engine import Engine
from inference_container.engine.png import read_parameters
from inference_container.errors import InvalidRequest
from inference_container.models.cache import ModelCache
from inference_container.outputs import FolderOutputStore


def _job(ref, **extra) -> dict:
    job = {"id": "job-7", "task": "txt2img",
           "models": {"checkpoint": {"name": ref.name, "uri": ref.uri, "sha256": ref.sha256, "size": ref.size}},
           "payload": {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 5, "batch_size": 2}}
    job.update(extra)
    return job


@pytest.fixture
def cache(tmp_path):
    return ModelCache(tmp_path / "cache", 10**9)


def test_inline_response_has_images_info_and_infotext(loader, tiny_ref, cache):
    engine = Engine(cache, loader)
    phases = []
    body = engine.run(engine.validate(_job(tiny_ref)), lambda p: phases.append(p.phase))
    info = json.loads(body["info"])
    assert len(body["images"]) == 2 and info["all_seeds"] == [5, 6]
    assert read_parameters(base64.b64decode(body["images"][1])) == info["infotexts"][1]
    assert phases[0] == "loading_model" and "sampling" in phases


def test_output_prefix_writes_pngs_and_returns_only_their_keys(loader, tiny_ref, cache, tmp_path):
    store_root = tmp_path / "blobs"
    engine = Engine(cache, loader, output_store=FolderOutputStore(store_root))
    phases = []
    body = engine.run(engine.validate(_job(tiny_ref, output={"prefix": "jobs/job-7/"})),
                      lambda p: phases.append(p.phase))
    assert "images" not in body
    assert body["output"]["images"] == [{"key": "jobs/job-7/images/0.png"}, {"key": "jobs/job-7/images/1.png"}]
    infotexts = json.loads(body["info"])["infotexts"]
    for n, text in enumerate(infotexts):
        assert read_parameters((store_root / f"jobs/job-7/images/{n}.png").read_bytes()) == text
    assert "uploading" in phases


def test_output_prefix_without_a_store_is_refused_before_any_work(loader, tiny_ref, cache):
    with pytest.raises(InvalidRequest) as refused:
        Engine(cache, loader).validate(_job(tiny_ref, output={"prefix": "jobs/job-7/"}))
    assert refused.value.field == "output.prefix"
    assert cache.stats()["misses"] == 0 and cache.stats()["models"] == 0  # nothing was fetched
