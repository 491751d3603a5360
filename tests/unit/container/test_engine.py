"""The engine facade on the tiny model: the A1111 response inline, or PNGs in the output store."""

from __future__ import annotations

import base64
import json

import pytest
from PIL import Image

from inference_container.engine.facade import Engine
from inference_container.engine.png import read_parameters
from inference_container.engine.types import GeneratedImage, GenerationResult
from inference_container.errors import InvalidRequest
from inference_container.models.cache import ModelCache
from inference_container.models.fetchers import FileFetcher
from inference_container.outputs import FolderOutputStore


def _job(ref, **extra) -> dict:
    job = {"id": "job-7", "task": "txt2img",
           "models": {"checkpoint": {"name": ref.name, "uri": ref.uri, "sha256": ref.sha256, "size": ref.size}},
           "payload": {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 5, "batch_size": 2}}
    job.update(extra)
    return job


@pytest.fixture
def cache(tmp_path, tiny_checkpoint):
    return ModelCache(tmp_path / "cache", 10**9, fetchers={"file": FileFetcher([tiny_checkpoint.parent])})


class RecordingStore(FolderOutputStore):
    """The folder store, remembering the order of writes."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.written: list[str] = []

    def put(self, key: str, data: bytes, content_type: str) -> None:
        super().put(key, data, content_type)
        self.written.append(key)


def _partial_generate(model, request, on_progress, control):
    """A generator interrupted after the first image of a two-image batch."""
    assert control is not None
    image = GeneratedImage(Image.new("RGB", (64, 64), "red"), request.seed, request.subseed, request.prompt,
                           request.negative_prompt)
    return GenerationResult([image], interrupted=True, skipped_iterations=(1,))


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


def test_result_document_is_written_last_and_equals_the_response(loader, tiny_ref, cache, tmp_path):
    store = RecordingStore(tmp_path / "blobs")
    engine = Engine(cache, loader, output_store=store)
    body = engine.run(engine.validate(_job(tiny_ref, output={"prefix": "jobs/job-7/"})), lambda p: None)
    assert store.written == ["jobs/job-7/images/0.png", "jobs/job-7/images/1.png", "jobs/job-7/result.json"]
    assert json.loads((tmp_path / "blobs/jobs/job-7/result.json").read_text()) == body
    assert body["interrupted"] is False and body["skipped_iterations"] == []


def test_a_model_named_without_a_suffix_runs(loader, tiny_ref, cache):
    engine = Engine(cache, loader)
    job = _job(tiny_ref)
    job["models"]["checkpoint"]["name"] = "my tiny model"
    body = engine.run(engine.validate(job), lambda p: None)
    assert len(body["images"]) == 2


def test_an_interrupted_generation_returns_its_images_with_infotext(loader, tiny_ref, cache, tmp_path):
    store = RecordingStore(tmp_path / "blobs")
    engine = Engine(cache, loader, output_store=store, generate=_partial_generate)
    request = engine.validate(_job(tiny_ref, output={"prefix": "jobs/job-7/"}))
    body = engine.run(request, lambda p: None, control=object())
    assert body["interrupted"] is True and body["skipped_iterations"] == [1]
    assert body["output"]["images"] == [{"key": "jobs/job-7/images/0.png"}]
    infotext = json.loads(body["info"])["infotexts"][0]
    assert infotext.startswith("a cat\n") and "Seed: 5" in infotext
    assert read_parameters((tmp_path / "blobs/jobs/job-7/images/0.png").read_bytes()) == infotext
    assert json.loads((tmp_path / "blobs/jobs/job-7/result.json").read_text()) == body


def test_interrupted_before_start_answers_an_empty_result(loader, tiny_ref, cache, tmp_path):
    store = RecordingStore(tmp_path / "blobs")
    engine = Engine(cache, loader, output_store=store)
    body = engine.interrupted_result(engine.validate(_job(tiny_ref, output={"prefix": "jobs/job-7/"})))
    assert body["interrupted"] is True and body["output"]["images"] == []
    assert store.written == ["jobs/job-7/result.json"]
    assert cache.stats()["models"] == 0  # nothing was fetched
