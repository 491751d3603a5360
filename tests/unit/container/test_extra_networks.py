"""LoRA, textual-inversion embeddings and VAE overrides on the tiny model, through the engine facade.

Each network is a file our own code writes in the layout artists bring (``tiny_networks``); each
must change the image against the same seed without it, be named in the infotext the way A1111
names it, and be gone in the next job on the same cached pipeline.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inference_container.engine.facade import Engine
from inference_container.engine.infotext import parse_infotext
from inference_container.engine.lora import layer_index, read_lora
from inference_container.errors import InvalidRequest, ModelRefused
from inference_container.models.cache import ModelCache
from inference_container.models.fetchers import FileFetcher
from inference_container.tiny_networks import (
    write_tiny_embedding,
    write_tiny_lora,
    write_tiny_pickle_embedding,
    write_tiny_vae,
)


def _ref(path: Path, name: str | None = None) -> dict:
    return {"name": name or path.name, "uri": path.as_uri(), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "size": path.stat().st_size}


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    folder = tiny_checkpoint.parent  # the file fetcher serves this folder
    return {
        "lora": write_tiny_lora(folder / "inkStyle.safetensors"),
        "lora_ldm": write_tiny_lora(folder / "ldmStyle.safetensors", ldm_names=True),
        "embedding": write_tiny_embedding(folder / "charTurner.safetensors"),
        "pickle_embedding": write_tiny_pickle_embedding(folder / "oldStyle.pt"),
        "vae": write_tiny_vae(folder / "kl-f8-tiny.safetensors"),
    }


@pytest.fixture
def engine(tmp_path, tiny_checkpoint, loader):
    cache = ModelCache(tmp_path / "cache", 10**9, fetchers={"file": FileFetcher([tiny_checkpoint.parent])})
    return Engine(cache, loader)


def _job(tiny_ref, prompt="a cat", negative="", **models) -> dict:
    checkpoint = {"name": tiny_ref.name, "uri": tiny_ref.uri, "sha256": tiny_ref.sha256, "size": tiny_ref.size}
    return {"id": "job-x", "task": "txt2img", "models": {"checkpoint": checkpoint, **models},
            "payload": {"prompt": prompt, "negative_prompt": negative, "steps": 2, "width": 64, "height": 64,
                        "seed": 11, "cfg_scale": 5}}


def _run(engine, job) -> tuple[np.ndarray, dict[str, str]]:
    body = engine.run(engine.validate(job), lambda p: None)
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    return np.asarray(image).astype(int), parse_infotext(json.loads(body["info"])["infotexts"][0])


def test_a_lora_changes_the_image_is_in_the_infotext_and_is_gone_in_the_next_job(engine, tiny_ref, files,
                                                                                 tiny_model):
    before_weights = {k: v.clone() for k, v in tiny_model.txt2img.unet.state_dict().items()}
    plain, plain_info = _run(engine, _job(tiny_ref))
    lora = _ref(files["lora"])
    styled, info = _run(engine, _job(tiny_ref, "a cat <lora:inkStyle:0.8>", loras=[lora]))
    assert np.abs(styled - plain).mean() > 1
    assert info["Lora hashes"] == f"inkStyle: {lora['sha256'][:12]}"
    assert info["Prompt"] == "a cat <lora:inkStyle:0.8>"  # the infotext keeps the tag, as A1111's does
    assert "Lora hashes" not in plain_info
    again, _ = _run(engine, _job(tiny_ref))
    assert np.array_equal(again, plain)  # nothing leaked into the cached pipeline
    after = tiny_model.txt2img.unet.state_dict()
    assert all(torch.equal(before_weights[k], after[k]) for k in before_weights)


def test_lora_weight_zero_is_the_plain_image_and_te_unet_multipliers_apply_apart(engine, tiny_ref, files):
    lora = _ref(files["lora"])
    plain, _ = _run(engine, _job(tiny_ref, "a cat"))
    # The tag is stripped before encoding, so weight 0 conditions exactly like the plain prompt.
    zero, _ = _run(engine, _job(tiny_ref, "a cat<lora:inkStyle:0>", loras=[lora]))
    assert np.array_equal(zero, plain)
    disabled_job = _job(tiny_ref, "a cat<lora:inkStyle:1>", loras=[lora])
    disabled_job["payload"]["disable_extra_networks"] = True  # A1111: tag stripped, nothing applied
    disabled, disabled_info = _run(engine, disabled_job)
    assert np.array_equal(disabled, plain) and "Lora hashes" not in disabled_info
    te_only, _ = _run(engine, _job(tiny_ref, "a cat<lora:inkStyle:1:0>", loras=[lora]))
    unet_only, _ = _run(engine, _job(tiny_ref, "a cat<lora:inkStyle:0:1>", loras=[lora]))
    assert not np.array_equal(te_only, plain) and not np.array_equal(unet_only, plain)
    assert not np.array_equal(te_only, unet_only)


def test_kohya_names_in_both_unet_layouts_reach_every_layer(tiny_model, files):
    index = layer_index(tiny_model.txt2img)
    for key in ("lora", "lora_ldm"):
        layers = read_lora(files[key], key, allow_pickle=False)
        assert set(layers) <= set(index), sorted(set(layers) - set(index))[:3]
    ldm = read_lora(files["lora_ldm"], "ldm", allow_pickle=False)
    assert any(k.startswith("lora_unet_input_blocks_1_1_") for k in ldm)
    # kohya's CLIP names, as real files carry them (transformers 5 dropped the text_model level).
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj" in ldm
    assert any(v.down.ndim == 4 and v.down.shape[2] == 3 for v in ldm.values())  # the LoCon 3x3 layer


def test_an_embedding_changes_the_image_by_name_and_is_in_the_infotext(engine, tiny_ref, files):
    plain, _ = _run(engine, _job(tiny_ref, "a charTurner cat"))
    emb = _ref(files["embedding"])
    used, info = _run(engine, _job(tiny_ref, "a charTurner cat", embeddings=[emb]))
    assert np.abs(used - plain).mean() > 1
    assert info["TI hashes"] == f"charTurner: {emb['sha256'][:12]}"
    # Carried but not named in the prompt: no effect and no infotext entry, as in A1111.
    unused, unused_info = _run(engine, _job(tiny_ref, "a cat", embeddings=[emb]))
    assert np.array_equal(unused, _run(engine, _job(tiny_ref, "a cat"))[0]) and "TI hashes" not in unused_info
    again, _ = _run(engine, _job(tiny_ref, "a charTurner cat"))
    assert np.array_equal(again, plain)


def test_a_pickle_embedding_is_refused_without_the_operators_opt_in(engine, tiny_ref, files):
    job = _job(tiny_ref, "oldStyle cat", embeddings=[_ref(files["pickle_embedding"])])
    with pytest.raises(ModelRefused, match="pickle"):
        engine.run(engine.validate(job), lambda p: None)


def test_a_vae_override_changes_the_decode_and_is_named_in_the_infotext(engine, tiny_ref, files, tiny_model,
                                                                         loader):
    own_vae = tiny_model.txt2img.vae
    plain, plain_info = _run(engine, _job(tiny_ref))
    vae = _ref(files["vae"])
    swapped, info = _run(engine, _job(tiny_ref, vae=vae))
    assert np.abs(swapped - plain).mean() > 1
    assert info["VAE"] == "kl-f8-tiny.safetensors" and info["VAE hash"] == vae["sha256"][:10]
    assert "VAE" not in plain_info
    # Swapped into the one cached pipeline for that job, and the checkpoint's own put back.
    assert tiny_model.txt2img.vae is own_vae and tiny_model.img2img.vae is own_vae
    assert all(vae_key is None for _, vae_key in loader.cached_keys())
    assert np.array_equal(_run(engine, _job(tiny_ref))[0], plain)


def test_infotext_keys_follow_a1111s_order(engine, tiny_ref, files):
    lora, emb, vae = _ref(files["lora"]), _ref(files["embedding"]), _ref(files["vae"])
    body = engine.run(engine.validate(_job(tiny_ref, "charTurner <lora:inkStyle>", loras=[lora],
                                           embeddings=[emb], vae=vae)), lambda p: None)
    last = json.loads(body["info"])["infotexts"][0].splitlines()[-1]
    keys = [part.split(":")[0] for part in last.split(", ") if ": " in part and not part.startswith(" ")]
    order = [k for k in ("Model", "VAE hash", "VAE", "Lora hashes", "TI hashes", "Version") if k in keys]
    assert order == ["Model", "VAE hash", "VAE", "Lora hashes", "TI hashes", "Version"]
    assert f'Lora hashes: "inkStyle: {lora["sha256"][:12]}"' in last


@pytest.mark.parametrize(
    ("prompt", "match"),
    [
        ("a cat <lora:inkStyle:0.8>", "no reference in the job's models.loras"),
        ("a cat <hypernet:ink:1>", "only lora, lyco tags"),
        ("a cat <lora:inkStyle:0.8:0.5:dyn=4>", "dynamic LoRA dimension"),
        ("a cat <lora:inkStyle:heavy>", "is not a number"),
    ],
)
def test_tags_that_cannot_be_applied_are_refused_before_any_work(engine, tiny_ref, prompt, match):
    with pytest.raises(InvalidRequest, match=match):
        engine.validate(_job(tiny_ref, prompt))


def test_lora_tags_outside_the_prompt_are_refused(engine, tiny_ref, files):
    with pytest.raises(InvalidRequest, match="from the prompt only") as refused:
        engine.validate(_job(tiny_ref, "a cat", "<lora:inkStyle:1>", loras=[_ref(files["lora"])]))
    assert refused.value.field == "payload.negative_prompt"


def test_a_lora_for_another_model_family_is_refused(engine, tiny_ref, tmp_path, tiny_checkpoint):
    from safetensors.torch import save_file

    path = tiny_checkpoint.parent / "sdxlOnly.safetensors"
    save_file({"lora_unet_label_emb_9_0.lora_down.weight": torch.zeros(2, 8),
               "lora_unet_label_emb_9_0.lora_up.weight": torch.zeros(8, 2)}, str(path))
    with pytest.raises(ModelRefused, match="another model family"):
        engine.run(engine.validate(_job(tiny_ref, "<lora:sdxlOnly>", loras=[_ref(path)])), lambda p: None)


def test_a_pickle_embedding_loads_when_the_operator_opted_in(tmp_path, tiny_checkpoint, tiny_ref, files,
                                                             engine_work_dir):
    from inference_container.engine.checkpoint import PipelineLoader

    cache = ModelCache(tmp_path / "cache", 10**9, fetchers={"file": FileFetcher([tiny_checkpoint.parent])})
    opted_in = Engine(cache, PipelineLoader(device="cpu", allow_pickle=True, work_dir=engine_work_dir))
    plain, _ = _run(opted_in, _job(tiny_ref, "oldStyle cat"))
    used, info = _run(opted_in, _job(tiny_ref, "oldStyle cat", embeddings=[_ref(files["pickle_embedding"])]))
    assert np.abs(used - plain).mean() > 1 and info["TI hashes"].startswith("oldStyle: ")


def test_the_lora_comes_out_even_when_the_job_fails(tmp_path, tiny_checkpoint, tiny_ref, files, loader, tiny_model):
    before = {k: v.clone() for k, v in tiny_model.txt2img.text_encoder.state_dict().items()}
    seen = {}

    def failing_generate(model, request, on_progress, control):
        state = model.txt2img.text_encoder.state_dict()
        seen["changed"] = any(not torch.equal(v, before[k]) for k, v in state.items())
        raise RuntimeError("the GPU fell over")

    cache = ModelCache(tmp_path / "cache", 10**9, fetchers={"file": FileFetcher([tiny_checkpoint.parent])})
    engine = Engine(cache, loader, generate=failing_generate)
    with pytest.raises(RuntimeError, match="fell over"):
        engine.run(engine.validate(_job(tiny_ref, "<lora:inkStyle:1>", loras=[_ref(files["lora"])])), lambda p: None)
    assert seen["changed"]  # merged while the job ran
    after = tiny_model.txt2img.text_encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
