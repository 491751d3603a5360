"""The engine facade: a validated job in, the A1111 response (or a small output document) out.

It strings the parts together in the order a job needs them: fetch the model through the cache,
load (or reuse) its pipeline, generate, then write infotext into each PNG. Each phase is reported
through the progress callback so the server can expose it.
"""

from __future__ import annotations

import base64
import json
import random
from contextlib import ExitStack
from typing import Any

from inference_container.engine.infotext import build_info, build_infotext
from inference_container.engine.png import encode_png
from inference_container.engine.request import DEFAULT_LIMITS, Limits, parse_job
from inference_container.engine.types import GenerationRequest, ModelRef, Progress, ProgressCallback
from inference_container.errors import InvalidRequest
from inference_container.outputs import OutputStore

VERSION = "sdcloud-0.1.0"


class Engine:
    def __init__(self, cache: Any, loader: Any, *, limits: Limits = DEFAULT_LIMITS,
                 output_store: OutputStore | None = None) -> None:
        self._cache = cache
        self._loader = loader
        self._limits = limits
        self._output_store = output_store
        self._rng = random.Random()

    def validate(self, job: Any) -> GenerationRequest:
        """Cheap checks done before a job may wait for the GPU (raises InvalidRequest & co.)."""
        request = parse_job(job, limits=self._limits, rng=self._rng)
        if request.output_prefix and self._output_store is None:
            raise InvalidRequest(
                "this container has no output store configured (SDCLOUD_OUTPUT_STORE); "
                "omit output.prefix to get the images in the response",
                field="output.prefix",
            )
        return request

    def load_model(self, request: GenerationRequest) -> Any:
        return self.load_model_ref(request.checkpoint, request.vae)

    def load_model_ref(self, checkpoint: ModelRef, vae: ModelRef | None = None) -> Any:
        # Load while the cache pins the files, so another process's eviction cannot pull them away.
        with ExitStack() as pins:
            checkpoint_path = pins.enter_context(self._cache.use(checkpoint))
            vae_path = pins.enter_context(self._cache.use(vae)) if vae else None
            return self._loader.load(checkpoint_path, checkpoint, vae_path, vae)

    def run(self, request: GenerationRequest, on_progress: ProgressCallback) -> dict[str, Any]:
        from inference_container.engine.generate import generate
        from inference_container.engine.generate import total_steps as count_steps

        total_steps = count_steps(request)
        on_progress(Progress(request.job_id, "loading_model", 0, total_steps))
        model = self.load_model(request)
        images = generate(model, request, on_progress)  # torch is imported only when a job runs
        infotexts = [
            build_infotext(request, index=i, seed=img.seed, subseed=img.subseed, prompt=img.prompt,
                           negative_prompt=img.negative_prompt, rng=model.rng_name, version=VERSION)
            for i, img in enumerate(images)
        ]
        pngs = [encode_png(img.image, text) for img, text in zip(images, infotexts, strict=True)]
        info = json.dumps(build_info(request, images, infotexts, version=VERSION))
        body: dict[str, Any] = {"parameters": request.parameters, "info": info}
        if request.output_prefix and self._output_store is not None:
            on_progress(Progress(request.job_id, "uploading", total_steps, total_steps))
            keys = []
            for n, png in enumerate(pngs):
                key = f"{request.output_prefix}images/{n}.png"
                self._output_store.put(key, png, "image/png")
                keys.append({"key": key})
            body.update({"id": request.job_id, "output": {"images": keys}})
        else:
            body["images"] = [base64.b64encode(png).decode("ascii") for png in pngs]
        return body

