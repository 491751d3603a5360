"""A job's extra networks switched on around its generation, and off again whatever happens.

The pipeline is cached across jobs, so everything a job adds is scoped to it: LoRA weights are
merged for the job and the originals copied back (``lora``); embeddings ride on a per-job copy
of the ``LoadedModel`` that shares the pipelines (``embeddings``); a VAE override is a cache
swapped into both pipelines for the job and the checkpoint's own put back. Files come through the model cache by sha256
and stay pinned while the job reads them. One job at a time per pipeline: merged weights are
visible to anything else sampling on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from inference_container.engine.embeddings import check_fits, read_embedding
from inference_container.engine.lora import merged_loras, pipeline_lock
from inference_container.engine.types import GenerationRequest, ModelRef


@contextmanager
def activated(
    model: Any,
    request: GenerationRequest,
    cache: Any,
    *,
    allow_pickle: bool,
    load_vae: Callable[[Any, Path, ModelRef], Any] | None = None,
) -> Iterator[Any]:
    """The model to generate ``request`` with: its VAE override swapped in (``load_vae`` builds
    it; without one the loader already built the pipeline with it), its LoRAs merged and its
    embeddings attached."""
    with ExitStack() as stack:
        pipe = getattr(model, "txt2img", None)
        if pipe is None:  # a stand-in model without pipelines (tests of the facade): nothing to apply
            yield model
            return
        stack.enter_context(pipeline_lock(pipe))
        embeddings = tuple(
            read_embedding(stack.enter_context(cache.use(ref)), ref, allow_pickle=allow_pickle)
            for ref in request.embeddings
        )
        if embeddings:
            check_fits(embeddings, _encoder_widths(model))
        loras = [(use, stack.enter_context(cache.use(use.ref))) for use in request.loras]
        stack.enter_context(merged_loras(pipe, loras, allow_pickle=allow_pickle))
        job_model = dataclasses.replace(model, embeddings=embeddings) if embeddings else model
        if request.vae is not None and load_vae is not None:
            vae = load_vae(model, stack.enter_context(cache.use(request.vae)), request.vae)
            stack.enter_context(_swapped_vae(model, vae))
            job_model = dataclasses.replace(job_model, vae_key=request.vae.sha256)
        yield job_model


@contextmanager
def _swapped_vae(model: Any, vae: Any) -> Iterator[None]:
    """``vae`` in both pipelines (they share their modules) for the block; the checkpoint's own after."""
    own = model.txt2img.vae
    pipes = [p for p in (model.txt2img, model.img2img) if p is not None]
    try:
        for pipe in pipes:
            pipe.vae = vae
        yield
    finally:
        for pipe in pipes:
            pipe.vae = own


def _encoder_widths(model: Any) -> dict[str, int]:
    pipe = model.txt2img
    if getattr(pipe, "text_encoder_2", None) is not None:
        return {"clip_l": int(pipe.text_encoder.config.hidden_size), "clip_g": int(pipe.text_encoder_2.config.hidden_size)}
    return {"": int(pipe.text_encoder.config.hidden_size)}
