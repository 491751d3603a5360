"""Submit-time resolution of LoRA tags, embedding words and sd_vae into the job's model references."""

from __future__ import annotations

import json

import pytest

from middleware.domain.errors import ModelUnavailable
from middleware.domain.extra_networks import embeddings_used, lora_mentions, vae_override
from middleware.domain.generation_rules import validate_generation
from middleware.ports import User
from middleware.services.inferences import InferenceService
from middleware.services.job_events import JobEventHandler
from middleware.services.model_refs import VAE_FIELD, find_model, resolve_extra_models
from tests.fakes.memory_ports import FakeCompute, FakeNotifier, MemoryBlobStore, MemoryJobStore
from tests.fakes.model_library import MemoryLibraryCatalog, library_model

LIBRARY = (
    ("tiny-sd15.safetensors", "checkpoint"),
    ("filmGrain.safetensors", "lora"),
    ("inkStyle_v2.safetensors", "lora"),
    ("styles/watercolor.safetensors", "lora"),
    ("bad-hands.pt", "embedding"),
    ("charTurner.safetensors", "embedding"),
    ("vae-ft-mse-840000.safetensors", "vae"),
)


@pytest.fixture
def catalog() -> MemoryLibraryCatalog:
    return MemoryLibraryCatalog(LIBRARY)


# -- parsing (pure) ----------------------------------------------------------------------------------


def test_lora_mentions_come_from_the_prompt_once_each_in_order():
    payload = {"prompt": "a <lora:filmGrain:0.8> cat <lyco:watercolor:1:0.5> <lora:filmGrain:0.2>", "hr_prompt": 7}
    assert [(m.name, m.field) for m in lora_mentions(payload)] == [("filmGrain", "prompt"), ("watercolor", "prompt")]


def test_a_tag_in_the_negative_prompt_is_refused_by_the_rules_before_any_lookup():
    [error] = validate_generation("txt2img", {"negative_prompt": "<lora:filmGrain:1>"})
    assert error.field == "payload.negative_prompt" and "from the prompt only" in error.message


def test_embedding_words_match_whole_words_case_insensitively():
    names = ["bad-hands.pt", "charTurner.safetensors", "cat.pt"]
    assert embeddings_used(["a CHARTURNER sheet, (bad-hands:1.2)"], names) == ["bad-hands.pt", "charTurner.safetensors"]
    assert embeddings_used(["cats and bad-handsome people"], names) == []
    assert embeddings_used(["my_cat"], names) == ["cat.pt"]  # CLIP splits at '_' too


@pytest.mark.parametrize(("value", "expected"), [
    ("vae-ft-mse-840000.safetensors", "vae-ft-mse-840000.safetensors"), ("Automatic", None), ("None", None),
    ("", None), (None, None), (3, None)])
def test_the_vae_setting(value, expected):
    assert vae_override({"override_settings": {"sd_vae": value}}) == expected
    assert vae_override({}) is None


# -- resolution over the catalog port --------------------------------------------------------------


def test_tags_words_and_vae_resolve_to_exact_references(catalog):
    payload = {"prompt": "charTurner, <lora:filmGrain:0.8>, <lora:watercolor>",
               "negative_prompt": "bad-hands", "override_settings": {"sd_vae": "vae-ft-mse-840000"}}
    models = resolve_extra_models(catalog, payload)
    assert models == {
        "loras": [library_model("filmGrain.safetensors", "lora").ref(),
                  library_model("styles/watercolor.safetensors", "lora").ref()],
        "embeddings": [library_model("bad-hands.pt", "embedding").ref(),
                       library_model("charTurner.safetensors", "embedding").ref()],
        "vae": library_model("vae-ft-mse-840000.safetensors", "vae").ref(),
    }


def test_nothing_asked_means_empty_lists_and_no_vae(catalog):
    assert resolve_extra_models(catalog, {"prompt": "a cat", "override_settings": {"sd_vae": "Automatic"}}) == {
        "loras": [], "embeddings": []}


def test_unknown_lora_and_vae_are_refused_with_close_matches_naming_each_field(catalog):
    payload = {"prompt": "<lora:filmgrian:1>", "override_settings": {"sd_vae": "vae-ft-mse"}}
    with pytest.raises(ModelUnavailable) as refused:
        resolve_extra_models(catalog, payload)
    errors = {e.field: e.message for e in refused.value.errors}
    assert errors["payload.prompt"] == "unknown LoRA 'filmgrian'; did you mean 'filmGrain.safetensors'?"
    assert "vae-ft-mse-840000.safetensors" in errors[VAE_FIELD] and "unknown VAE 'vae-ft-mse'" in errors[VAE_FIELD]


def test_an_empty_library_says_so():
    message = find_model(MemoryLibraryCatalog(()), "film", "lora")
    assert message == "unknown LoRA 'film'; there are none in the model library yet: upload it first"


def test_the_rules_check_tag_syntax_and_leave_names_to_the_catalog():
    assert validate_generation("txt2img", {"prompt": "<lora:anything:0.5>"}) == []
    [error] = validate_generation("txt2img", {"prompt": "<hypernet:x:1>"})
    assert error.field == "payload.prompt" and "hypernet" in error.message


# -- through the submit path --------------------------------------------------------------------------


@pytest.fixture
def service(catalog):
    store, blobs, notifier = MemoryJobStore(), MemoryBlobStore(), FakeNotifier()
    events = JobEventHandler(store, blobs, notifier, heartbeat_interval_s=2.0)
    compute = FakeCompute()
    return InferenceService(store, blobs, catalog, compute, notifier, events, endpoint_names=("local",)), blobs, compute


def test_submit_puts_the_references_into_the_job_document(service):
    inferences, blobs, _ = service
    payload = {"prompt": "charTurner <lora:inkStyle_v2:0.7>", "override_settings": {"sd_vae": "vae-ft-mse-840000.safetensors"}}
    job, _ = inferences.submit(User("ann", "artist"), "txt2img", payload, "tiny-sd15.safetensors")
    models = json.loads(blobs.get_bytes(f"jobs/{job.id}/request.json"))["models"]
    assert [r["name"] for r in models["loras"]] == ["inkStyle_v2.safetensors"]
    assert [r["name"] for r in models["embeddings"]] == ["charTurner.safetensors"]
    assert models["vae"]["sha256"] == library_model("vae-ft-mse-840000.safetensors", "vae").sha256


def test_submit_with_an_unknown_lora_writes_nothing(service):
    inferences, blobs, compute = service
    with pytest.raises(ModelUnavailable) as refused:
        inferences.submit(User("ann", "artist"), "txt2img", {"prompt": "<lora:nope>"}, "tiny-sd15.safetensors")
    assert refused.value.errors[0].field == "payload.prompt"
    assert blobs.keys() == [] and compute.submitted == []


class _PerUserCatalog(MemoryLibraryCatalog):
    """A library view per user, as the library catalog offers it (``for_user``)."""

    def for_user(self, user: str) -> MemoryLibraryCatalog:
        return MemoryLibraryCatalog((*LIBRARY, (f"{user}Private.safetensors", "lora")))


def test_submit_resolves_in_the_submitting_users_view_of_the_library():
    store, blobs, notifier = MemoryJobStore(), MemoryBlobStore(), FakeNotifier()
    events = JobEventHandler(store, blobs, notifier, heartbeat_interval_s=2.0)
    inferences = InferenceService(store, blobs, _PerUserCatalog(LIBRARY), FakeCompute(), notifier, events)
    job, _ = inferences.submit(User("ann", "artist"), "txt2img", {"prompt": "<lora:annPrivate>"}, "tiny-sd15.safetensors")
    assert json.loads(blobs.get_bytes(f"jobs/{job.id}/request.json"))["models"]["loras"][0]["name"] == "annPrivate.safetensors"
    with pytest.raises(ModelUnavailable):
        inferences.submit(User("bob", "artist"), "txt2img", {"prompt": "<lora:annPrivate>"}, "tiny-sd15.safetensors")
