"""LoRA files in the kohya / A1111 layout, merged into a loaded pipeline for one job and taken out after.

A kohya file holds, per adapted layer, ``<prefix><layer>.lora_down.weight`` (rank x in),
``<prefix><layer>.lora_up.weight`` (out x rank) and optionally ``<prefix><layer>.alpha``; the
layer name is the module path with ``_`` for ``.``, under ``lora_unet_`` or ``lora_te_`` (SDXL:
``lora_te1_``/``lora_te2_``). UNet layers come named the diffusers way (kohya's SD 1.x files) or
the original LDM way (``input_blocks_1_1_...``, kohya's SDXL files); both are indexed.

We merge like A1111 does by default: ``W += multiplier * alpha / rank * up @ down``, with the
layer's original weight kept aside and copied back when the job ends, so nothing leaks into the
next job (a restore, not a subtraction: no float drift builds up over jobs). diffusers'
``load_lora_weights`` would need the PEFT package and wraps modules; a merge keeps the UNet as it
is and applies LoCon's convolution layers too. LyCORIS' other layouts (LoHa, LoKr, DoRA) are
refused by name.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from inference_container.engine.model_files import pickle_refused, sniff_format
from inference_container.engine.types import LoraUse
from inference_container.errors import ModelRefused, ModelUnavailable

log = logging.getLogger(__name__)

# kohya prefix -> (pipeline attribute, which multiplier applies)
PREFIXES: Mapping[str, tuple[str, str]] = {
    "lora_unet_": ("unet", "unet"),
    "lora_te_": ("text_encoder", "te"),
    "lora_te1_": ("text_encoder", "te"),
    "lora_te2_": ("text_encoder_2", "te"),
}
_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")
# Key fragments of LyCORIS layouts we do not implement, with their names for the refusal.
_OTHER_LAYOUTS = {"hada_w1": "LoHa", "lokr_w1": "LoKr", "dora_scale": "DoRA", ".diff": "full-weight diff",
                  "lora_mid": "LoCon with a mid (Tucker) layer"}


@dataclass(frozen=True)
class LoraLayer:
    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    def delta(self, shape: torch.Size) -> torch.Tensor:
        """``alpha / rank * up @ down`` in the layer's weight shape (float32)."""
        up = self.up.float().flatten(1)
        down = self.down.float().flatten(1)
        delta = up @ down
        if self.down.ndim == 4 and tuple(self.down.shape[2:]) != (1, 1):
            # LoCon: a k x k down convolution then a 1 x 1 up one compose into one k x k kernel.
            delta = delta.reshape(up.shape[0], *self.down.shape[1:])
        scale = 1.0 if self.alpha is None else self.alpha / self.rank
        return (delta * scale).reshape(shape)


def read_lora(path: Path, name: str, *, allow_pickle: bool) -> dict[str, LoraLayer]:
    """The file's layers by full kohya name (``lora_unet_...``); refuses what we cannot apply."""
    fmt = sniff_format(path)
    if fmt == "pickle":
        if not allow_pickle:
            raise pickle_refused(Path(name))
        tensors = torch.load(str(path), map_location="cpu", weights_only=True)
        if not isinstance(tensors, dict):
            raise ModelRefused(f"LoRA {name} holds no tensors by name", field="models.loras")
    else:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        for fragment, layout in _OTHER_LAYOUTS.items():
            if fragment in key:
                raise ModelRefused(
                    f"LoRA {name} uses the {layout} layout, which this engine does not apply; "
                    "use a LoRA / LoCon file (lora_down / lora_up weights)",
                    field="models.loras",
                )
        suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
        if suffix is None or not any(key.startswith(p) for p in PREFIXES):
            continue  # e.g. kohya's metadata-like extras; A1111 skips them too
        groups.setdefault(key[: -len(suffix)], {})[suffix] = tensor
    layers = {}
    for layer, parts in groups.items():
        if ".lora_down.weight" not in parts or ".lora_up.weight" not in parts:
            raise ModelRefused(f"LoRA {name}: layer {layer!r} lacks its lora_down or lora_up weight",
                               field="models.loras")
        alpha = parts.get(".alpha")
        layers[layer] = LoraLayer(parts[".lora_down.weight"], parts[".lora_up.weight"],
                                  None if alpha is None else float(alpha))
    if not layers:
        raise ModelRefused(
            f"LoRA {name} has no kohya LoRA layers (lora_unet_* / lora_te_* with lora_down / lora_up)",
            field="models.loras",
        )
    return layers


def layer_index(pipe: Any) -> dict[str, tuple[str, torch.nn.Module]]:
    """Every Linear / Conv2d of the pipeline under each kohya name it may be given."""
    index: dict[str, tuple[str, torch.nn.Module]] = {}
    for prefix, (attribute, kind) in PREFIXES.items():
        component = getattr(pipe, attribute, None)
        if component is None or (prefix == "lora_te_" and getattr(pipe, "text_encoder_2", None) is not None):
            continue  # SDXL names its encoders te1 / te2
        modules = {n: m for n, m in component.named_modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)}
        for module_name, module in modules.items():
            index[prefix + kohya_layer_name(attribute, module_name)] = (kind, module)
        if attribute == "unet":
            for module_name, ldm_name in _ldm_unet_names(component.config, modules):
                index.setdefault(prefix + ldm_name.replace(".", "_"), (kind, modules[module_name]))
    return index


def kohya_layer_name(component: str, module_name: str) -> str:
    """A module's layer name in kohya files. kohya names CLIP layers from ``text_model.``, which
    transformers 5 no longer has as a level of its own (``encoder.layers.0...`` sits at the top)."""
    if component.startswith("text_encoder") and not module_name.startswith("text_model."):
        module_name = "text_model." + module_name
    return module_name.replace(".", "_")


def _ldm_unet_names(config: Mapping[str, Any], modules: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(diffusers module name, LDM module name) for the UNet, through the checkpoint converter's map."""
    from inference_container.tiny import UNET_RESNET_NAMES, rename_inner, unet_prefix_map

    pairs = sorted(unet_prefix_map(config), key=lambda p: len(p[0]), reverse=True)
    for module_name in modules:
        for d_prefix, l_prefix, kind in pairs:
            if module_name == d_prefix or module_name.startswith(d_prefix + "."):
                rest = module_name[len(d_prefix) + 1 :]
                if kind == "resnet" and rest:
                    rest = rename_inner(rest, UNET_RESNET_NAMES)
                yield module_name, f"{l_prefix}.{rest}" if rest else l_prefix
                break


# One lock per pipeline: a job with LoRAs merged must not share the weights with any other job.
_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def pipeline_lock(pipe: Any) -> threading.Lock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(pipe.unet)
        if lock is None:
            lock = _LOCKS[pipe.unet] = threading.Lock()
        return lock


@contextmanager
def merged_loras(pipe: Any, uses: Sequence[tuple[LoraUse, Path]], *, allow_pickle: bool) -> Iterator[None]:
    """Merge each LoRA into ``pipe`` for the ``with`` block; the original weights come back after,
    whatever happens inside. The caller holds ``pipeline_lock(pipe)``."""
    backups: dict[torch.nn.Module, torch.Tensor] = {}
    try:
        if uses:
            index = layer_index(pipe)
            for use, path in uses:
                _merge(index, use, read_lora(path, use.ref.name, allow_pickle=allow_pickle), backups)
        yield
    finally:
        with torch.no_grad():
            for module, original in backups.items():
                module.weight.copy_(original)


def _merge(
    index: Mapping[str, tuple[str, torch.nn.Module]],
    use: LoraUse,
    layers: Mapping[str, LoraLayer],
    backups: dict[torch.nn.Module, torch.Tensor],
) -> None:
    unknown = [name for name in layers if name not in index]
    if len(unknown) == len(layers):
        raise ModelRefused(
            f"LoRA {use.ref.name} fits no layer of this checkpoint (e.g. {unknown[0]!r}): "
            "it was made for another model family",
            field="models.loras",
        )
    if unknown:
        # A1111 skips layers it cannot place; say so in the log rather than fail the job.
        log.warning("LoRA %s: %d of %d layers match nothing in this checkpoint", use.ref.name,
                    len(unknown), len(layers))
    with torch.no_grad():
        for name, layer in layers.items():
            if name not in index:
                continue
            kind, module = index[name]
            multiplier = use.te_multiplier if kind == "te" else use.unet_multiplier
            weight = module.weight
            if (layer.up.shape[0] != weight.shape[0] or layer.down.flatten(1).shape[1] != _fan_in(weight)
                    or layer.up.flatten(1).shape[1] != layer.rank):
                raise ModelUnavailable(
                    f"LoRA {use.ref.name}: layer {name!r} has shape {tuple(layer.up.shape)} x "
                    f"{tuple(layer.down.shape)}, the checkpoint's is {tuple(weight.shape)}: another model family",
                    field="models.loras",
                )
            if multiplier == 0:
                continue
            if module not in backups:
                backups[module] = weight.detach().clone()
            delta = layer.delta(weight.shape).to(weight.device)
            weight.copy_((weight.float() + multiplier * delta).to(weight.dtype))


def _fan_in(weight: torch.Tensor) -> int:
    return int(weight[0].numel())
