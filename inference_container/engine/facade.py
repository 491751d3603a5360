"""The engine facade: a validated job in, the A1111 response (and, with ``output.prefix``, its PNGs
and result document in the output store) out.

It strings the parts together in the order a job needs them: fetch the model through the cache,
load (or reuse) its pipeline, generate, then write infotext into each PNG. Each phase is reported
through the progress callback so the server can expose it.

With ``output.prefix`` the PNGs go to ``<prefix>images/<n>.png`` and then ``<prefix>result.json``
(the same JSON the call answers, image keys instead of base64). The result document is written
last: once it exists, every image it names exists too, so local and AWS mode read one result path.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from inference_container.engine.infotext import build_info, build_infotext
from inference_container.engine.png import encode_png
from inference_container.engine.request import parse_job
from inference_container.engine.types import (
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    ModelRef,
    Progress,
    ProgressCallback,
    SamplingControl,
)
from inference_container.errors import InvalidRequest
from inference_container.outputs import OutputStore

VERSION = "sdcloud-0.1.0"
RESULT_DOCUMENT = "result.json"


class Engine:
    def __init__(self, cache: Any, loader: Any, *,
                 output_store: OutputStore | None = None, generate: Callable[..., Any] | None = None) -> None:
        """``generate`` defaults to ``engine.generate.generate`` (imported when a job runs: torch)."""
        self._cache = cache
        self._loader = loader
        self._output_store = output_store
        self._generate = generate
        self._rng = random.Random()

    def validate(self, job: Any) -> GenerationRequest:
        """Cheap checks done before a job may wait for the GPU (raises InvalidRequest & co.)."""
        request = parse_job(job, rng=self._rng)
        if request.output_prefix and self._output_store is None:
            raise InvalidRequest(
                "this container has no output store configured (SDCLOUD_OUTPUT_STORE); "
                "omit output.prefix to get the images in the response",
                field="output.prefix",
            )
        return request

    def load_model(self, request: GenerationRequest) -> Any:
        if self._vae_loader() is not None:
            # The VAE override is swapped in per job (extra_networks): one cached pipeline serves all.
            return self.load_model_ref(request.checkpoint)
        return self.load_model_ref(request.checkpoint, request.vae)

    def _vae_loader(self) -> Callable[..., Any] | None:
        load_vae = getattr(self._loader, "load_vae", None)
        return load_vae if callable(load_vae) else None

    def load_model_ref(self, checkpoint: ModelRef, vae: ModelRef | None = None) -> Any:
        # Load while the cache pins the files, so another process's eviction cannot pull them away.
        with ExitStack() as pins:
            checkpoint_path = pins.enter_context(self._cache.use(checkpoint))
            vae_path = pins.enter_context(self._cache.use(vae)) if vae else None
            return self._loader.load(checkpoint_path, checkpoint, vae_path, vae)

    def run(self, request: GenerationRequest, on_progress: ProgressCallback,
            control: SamplingControl | None = None) -> dict[str, Any]:
        """Generate; ``control`` may interrupt the job or skip a batch iteration between steps."""
        from inference_container.engine.generate import total_steps as count_steps

        total_steps = count_steps(request)
        last = Progress(request.job_id, "loading_model", 0, total_steps)
        on_progress(last)

        def report(progress: Progress) -> None:
            nonlocal last
            last = progress
            on_progress(progress)

        model = self.load_model(request)
        from inference_container.engine.extra_networks import activated

        allow_pickle = bool(getattr(self._loader, "allow_pickle", False))
        # LoRAs and embeddings exist only inside this block: the cached model is clean after it.
        with activated(model, request, self._cache, allow_pickle=allow_pickle,
                       load_vae=self._vae_loader()) as job_model:
            outcome: GenerationResult = self._generate_fn()(job_model, request, report, control)
        return self._respond(request, outcome.images, interrupted=outcome.interrupted,
                             skipped=outcome.skipped_iterations, rng_name=model.rng_name,
                             on_progress=on_progress, last=last)

    def interrupted_result(self, request: GenerationRequest) -> dict[str, Any]:
        """The answer for a job interrupted before it sampled anything: no images, ``interrupted``."""
        return self._respond(request, [], interrupted=True, skipped=(), rng_name="", on_progress=None,
                             last=None)

    def _generate_fn(self) -> Callable[..., Any]:
        if self._generate is None:
            from inference_container.engine.generate import generate

            self._generate = generate
        return self._generate

    def _respond(self, request: GenerationRequest, images: Sequence[GeneratedImage], *, interrupted: bool,
                 skipped: Sequence[int], rng_name: str, on_progress: ProgressCallback | None,
                 last: Progress | None) -> dict[str, Any]:
        infotexts = [
            build_infotext(request, index=i, seed=img.seed, subseed=img.subseed, prompt=img.prompt,
                           negative_prompt=img.negative_prompt, rng=rng_name, version=VERSION)
            for i, img in enumerate(images)
        ]
        pngs = [encode_png(img.image, text) for img, text in zip(images, infotexts, strict=True)]
        info = json.dumps(build_info(request, list(images), infotexts, version=VERSION))
        body: dict[str, Any] = {"parameters": request.parameters, "info": info, "interrupted": interrupted,
                                "skipped_iterations": sorted(skipped)}
        store = self._output_store
        if request.output_prefix and store is not None:
            if on_progress is not None and last is not None:
                # The step stays where sampling ended: an interrupted job did not sample the rest.
                on_progress(Progress(request.job_id, "uploading", last.step, last.steps))
            keys = []
            for n, png in enumerate(pngs):
                key = f"{request.output_prefix}images/{n}.png"
                store.put(key, png, "image/png")
                keys.append({"key": key})
            body.update({"id": request.job_id, "output": {"images": keys}})
            # The commit point: written last, atomically (the store's put replaces whole objects).
            store.put(f"{request.output_prefix}{RESULT_DOCUMENT}",
                      json.dumps(body, ensure_ascii=False).encode("utf-8"), "application/json")
        else:
            body["images"] = [base64.b64encode(png).decode("ascii") for png in pngs]
        return body
