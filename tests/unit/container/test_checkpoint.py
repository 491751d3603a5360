import shutil
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from inference_container.engine import architectures as archs
from inference_container.engine import checkpoint as ck
from inference_container.engine import model_files as files
from inference_container.engine.types import ModelRef
from inference_container.errors import ModelRefused, ModelUnavailable, UnsupportedFeature

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"


def _write(path: Path, keys: dict[str, tuple[int, ...]], metadata: dict[str, str] | None = None) -> Path:
    save_file({k: torch.zeros(shape) for k, shape in keys.items()}, str(path), metadata=metadata)
    return path


def _ref(path: Path, sha: str = "a" * 64) -> ModelRef:
    return ModelRef(path.name, path.as_uri(), sha, path.stat().st_size)


# --- format sniffing ---------------------------------------------------------------------------


def test_sniff_tells_safetensors_from_pickle(tmp_path):
    st = _write(tmp_path / "m.safetensors", {UNET_IN: (8, 4, 3, 3)})
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": {UNET_IN: torch.zeros(2)}}, ckpt)
    assert files.sniff_format(st) == "safetensors"
    assert files.sniff_format(ckpt) == "pickle"


def test_sniff_goes_by_content_not_name(tmp_path):
    disguised = tmp_path / "model.safetensors"
    torch.save({UNET_IN: torch.zeros(2)}, disguised)
    assert files.sniff_format(disguised) == "pickle"
    with pytest.raises(ModelRefused, match="pickle"):
        archs.detect_architecture(disguised)


def test_garbage_file_is_unavailable_with_a_clear_message(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a model at all")
    with pytest.raises(ModelUnavailable, match="neither safetensors nor a PyTorch checkpoint"):
        files.sniff_format(junk)


def test_truncated_safetensors_is_unavailable(tmp_path):
    full = _write(tmp_path / "full.safetensors", {UNET_IN: (64, 4, 3, 3)})
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(full.read_bytes()[:-100])
    with pytest.raises(ModelUnavailable, match="truncated"):
        files.read_safetensors_header(cut)


def test_missing_file_is_unavailable(tmp_path):
    with pytest.raises(ModelUnavailable, match="cannot read"):
        files.sniff_format(tmp_path / "nope.safetensors")


# --- architecture detection ---------------------------------------------------------------------


def test_tiny_model_declares_itself(tiny_checkpoint):
    assert archs.detect_architecture(tiny_checkpoint) == archs.ARCH_TINY


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            {
                UNET_IN: (8, 4, 3, 3),
                "cond_stage_model.transformer.text_model.final_layer_norm.weight": (768,),
            },
            "sd15",
        ),
        ({UNET_IN: (8, 4, 3, 3), "cond_stage_model.model.token_embedding.weight": (4, 1024)}, "sd2"),
        (
            {
                UNET_IN: (8, 4, 3, 3),
                "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": (768,),
                "conditioner.embedders.1.model.positional_embedding": (77, 1280),
            },
            "sdxl",
        ),
    ],
)
def test_key_heuristics(tmp_path, keys, expected):
    assert archs.detect_architecture(_write(tmp_path / "m.safetensors", keys)) == expected


def test_modelspec_architecture_overrides_keys(tmp_path):
    path = _write(
        tmp_path / "m.safetensors",
        {UNET_IN: (8, 4, 3, 3), "cond_stage_model.transformer.text_model.final_layer_norm.weight": (8,)},
        {"modelspec.architecture": "stable-diffusion-xl-v1-base"},
    )
    assert archs.detect_architecture(path) == "sdxl"


def test_lora_is_refused(tmp_path):
    path = _write(tmp_path / "lora.safetensors", {"lora_unet_down_blocks_0.alpha": (1,)})
    with pytest.raises(ModelRefused, match="LoRA"):
        archs.detect_architecture(path)


def test_inpainting_model_is_unsupported(tmp_path):
    path = _write(
        tmp_path / "inpaint.safetensors",
        {UNET_IN: (8, 9, 3, 3), "cond_stage_model.transformer.text_model.final_layer_norm.weight": (8,)},
    )
    with pytest.raises(UnsupportedFeature, match="9-channel"):
        archs.detect_architecture(path)


def test_sdxl_refiner_is_unsupported(tmp_path):
    path = _write(
        tmp_path / "refiner.safetensors",
        {UNET_IN: (8, 4, 3, 3), "conditioner.embedders.0.model.ln_final.weight": (8,)},
    )
    with pytest.raises(UnsupportedFeature, match="refiner"):
        archs.detect_architecture(path)


def test_pickle_refused_without_opt_in_and_read_with_it(tmp_path):
    path = tmp_path / "old.ckpt"
    torch.save(
        {
            "state_dict": {
                UNET_IN: torch.zeros(8, 4, 3, 3),
                "cond_stage_model.transformer.text_model.x": torch.zeros(1),
            }
        },
        path,
    )
    with pytest.raises(ModelRefused, match="SDCLOUD_ALLOW_PICKLE"):
        archs.detect_architecture(path)
    assert archs.detect_architecture(path, allow_pickle=True) == "sd15"


def test_declared_prediction_type(tmp_path):
    v = _write(
        tmp_path / "v.safetensors", {UNET_IN: (1,)}, {"modelspec.architecture": "stable-diffusion-v2-768-v"}
    )
    eps = _write(tmp_path / "e.safetensors", {UNET_IN: (1,)}, {"modelspec.prediction_type": "epsilon"})
    plain = _write(tmp_path / "p.safetensors", {UNET_IN: (1,)})
    assert archs.declared_prediction_type(v) == "v_prediction"
    assert archs.declared_prediction_type(eps) == "epsilon"
    assert archs.declared_prediction_type(plain) is None


# --- configs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", archs.ARCHITECTURES)
def test_shipped_configs_are_complete(arch):
    folder = archs.config_dir(arch)
    for name in (
        "model_index.json",
        "unet/config.json",
        "vae/config.json",
        "text_encoder/config.json",
        "scheduler/scheduler_config.json",
    ):
        assert (folder / name).is_file(), name
    assert not list(folder.rglob("*.safetensors")) and not list(folder.rglob("vocab.json"))


def test_prepared_config_adds_tokenizers(engine_work_dir):
    folder = archs.prepared_config_dir("sdxl", engine_work_dir)
    assert (folder / "tokenizer" / "vocab.json").is_file()
    assert (folder / "tokenizer_2" / "merges.txt").is_file()
    assert '"!"' in (folder / "tokenizer_2" / "tokenizer_config.json").read_text()
    assert archs.prepared_config_dir("sdxl", engine_work_dir) == folder


# --- the loader ------------------------------------------------------------------------------------


def test_tiny_model_loads_on_cpu_in_fp32(tiny_model, tiny_ref):
    assert tiny_model.architecture == archs.ARCH_TINY
    assert tiny_model.device.type == "cpu" and tiny_model.dtype == torch.float32
    assert tiny_model.rng_name == "CPU"
    assert tiny_model.vae_scale_factor == 8 and tiny_model.latent_channels == 4
    assert tiny_model.ref == tiny_ref
    # img2img shares the very same modules.
    assert tiny_model.img2img.unet is tiny_model.txt2img.unet
    assert tiny_model.img2img.vae is tiny_model.txt2img.vae


def test_loader_reuses_a_loaded_model(loader, tiny_model, tiny_checkpoint, tiny_ref):
    assert loader.load(tiny_checkpoint, tiny_ref) is tiny_model


def test_lru_evicts_the_oldest(engine_work_dir, tiny_checkpoint):
    small = ck.PipelineLoader(device="cpu", max_cached=1, work_dir=engine_work_dir)
    a = small.load(tiny_checkpoint, _ref(tiny_checkpoint, "a" * 64))
    assert small.cached_keys() == [("a" * 64, None)]
    b = small.load(tiny_checkpoint, _ref(tiny_checkpoint, "b" * 64))
    assert small.cached_keys() == [("b" * 64, None)]
    assert a is not b
    assert small.load(tiny_checkpoint, _ref(tiny_checkpoint, "b" * 64)) is b


def test_concurrent_loads_of_one_model_build_it_once(engine_work_dir, tiny_checkpoint):
    shared = ck.PipelineLoader(device="cpu", max_cached=2, work_dir=engine_work_dir)
    results = []
    ref = _ref(tiny_checkpoint, "c" * 64)
    threads = [
        threading.Thread(target=lambda: results.append(shared.load(tiny_checkpoint, ref))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(r is results[0] for r in results)


def test_loader_refuses_pickle_without_opt_in(tmp_path, engine_work_dir):
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {UNET_IN: torch.zeros(1)}}, path)
    strict = ck.PipelineLoader(device="cpu", allow_pickle=False, work_dir=engine_work_dir)
    with pytest.raises(ModelRefused, match=r"\.ckpt"):
        strict.load(path, _ref(path))


def test_allow_pickle_comes_from_the_environment(monkeypatch, engine_work_dir):
    monkeypatch.setenv("SDCLOUD_ALLOW_PICKLE", "1")
    assert ck.PipelineLoader(device="cpu", work_dir=engine_work_dir).allow_pickle is True
    monkeypatch.setenv("SDCLOUD_ALLOW_PICKLE", "0")
    assert ck.PipelineLoader(device="cpu", work_dir=engine_work_dir).allow_pickle is False


def test_missing_checkpoint_is_unavailable(tmp_path, engine_work_dir):
    path = tmp_path / "gone.safetensors"
    with pytest.raises(ModelUnavailable, match="missing"):
        ck.PipelineLoader(device="cpu", work_dir=engine_work_dir).load(
            path, ModelRef("gone", path.as_uri(), "d" * 64, 1)
        )


def test_wrong_shapes_are_unavailable_not_a_crash(tmp_path, engine_work_dir):
    # Claims to be the tiny model but holds almost nothing: loading must fail with a clear error.
    path = _write(
        tmp_path / "liar.safetensors",
        {UNET_IN: (8, 4, 3, 3)},
        {"modelspec.architecture": "sdcloud-tiny-sd-v1"},
    )
    with pytest.raises(ModelUnavailable, match="could not load checkpoint liar.safetensors"):
        ck.PipelineLoader(device="cpu", work_dir=engine_work_dir).load(path, _ref(path, "e" * 64))


def test_separate_vae_file_is_used(tmp_path, engine_work_dir, tiny_checkpoint):
    from safetensors import safe_open

    # A standalone VAE file in LDM layout: the checkpoint's first_stage_model.* without the prefix,
    # with one weight changed so we can see it was used.
    tensors = {}
    with safe_open(str(tiny_checkpoint), "pt") as f:
        for key in f.keys():
            if key.startswith("first_stage_model."):
                tensors[key.removeprefix("first_stage_model.")] = f.get_tensor(key)
    tensors["decoder.conv_out.bias"] = torch.full_like(tensors["decoder.conv_out.bias"], 0.25)
    vae_path = tmp_path / "vae.safetensors"
    save_file(tensors, str(vae_path))
    loader = ck.PipelineLoader(device="cpu", work_dir=engine_work_dir)
    vae_ref = _ref(vae_path, "f" * 64)
    model = loader.load(tiny_checkpoint, _ref(tiny_checkpoint, "9" * 64), vae_path, vae_ref=vae_ref)
    assert torch.all(model.txt2img.vae.decoder.conv_out.bias == 0.25)
    assert model.vae_key == "f" * 64


# Published parameter counts of each architecture's parts: the configs must reproduce them exactly.
_PUBLIC_PARAMETER_COUNTS = {
    "sd15": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd2": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sdxl": {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    },
}


@pytest.mark.parametrize("arch", sorted(_PUBLIC_PARAMETER_COUNTS))
def test_configs_reproduce_the_public_architectures(arch):
    import json

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = archs.config_dir(arch)

    def load(part):
        return json.loads((folder / part / "config.json").read_text())

    with torch.device("meta"):  # nothing allocated
        parts = {
            "unet": UNet2DConditionModel.from_config(load("unet")),
            "vae": AutoencoderKL.from_config(load("vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**load("text_encoder"))),
        }
        if arch == "sdxl":
            parts["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(**load("text_encoder_2")))
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}
    assert counts == _PUBLIC_PARAMETER_COUNTS[arch]


def test_sd2_config_is_the_768_v_model():
    import json

    scheduler = json.loads((archs.config_dir("sd2") / "scheduler" / "scheduler_config.json").read_text())
    unet = json.loads((archs.config_dir("sd2") / "unet" / "config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction"
    assert unet["sample_size"] == 96 and unet["use_linear_projection"] is True


def test_header_with_missing_offsets_is_unavailable(tmp_path):
    import json
    import struct

    header = json.dumps({"model.diffusion_model.x": {"dtype": "F16", "shape": [1]}}).encode()
    path = tmp_path / "odd.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0")
    with pytest.raises(ModelUnavailable, match="corrupt safetensors header"):
        archs.detect_architecture(path)


def test_a_checkpoint_named_without_a_suffix_loads_by_its_content(tmp_path, engine_work_dir, tiny_checkpoint):
    # The model cache stores files under their sha256 alone; diffusers goes by suffix.
    bare = tmp_path / ("e" * 64)
    shutil.copyfile(tiny_checkpoint, bare)
    loader = ck.PipelineLoader(device="cpu", max_cached=1, work_dir=engine_work_dir)
    model = loader.load(bare, ModelRef("my model", bare.as_uri(), "e" * 64, bare.stat().st_size))
    assert model.architecture == archs.ARCH_TINY
    assert model.txt2img.unet is not None


def test_named_for_format_links_only_when_the_suffix_is_wrong(tmp_path):
    right = _write(tmp_path / "m.safetensors", {UNET_IN: (8, 4, 3, 3)})
    with files.named_for_format(right, "safetensors") as named:
        assert named == right
    bare = tmp_path / ("f" * 64)
    shutil.copyfile(right, bare)
    with files.named_for_format(bare, "safetensors") as named:
        assert named.suffix == ".safetensors" and named.read_bytes() == bare.read_bytes()
    assert not named.exists() and bare.exists()
