"""Turn a resolved A1111 sampler (``SamplerSpec``) into a diffusers scheduler for one model.

The model's own scheduler config carries what belongs to the checkpoint (beta schedule,
prediction type); the spec adds what belongs to the sampler (class, Karras sigmas, solver order).
"""

from __future__ import annotations

from typing import Any

from inference_container.engine.types import SamplerSpec
from inference_container.errors import UnsupportedFeature


def make_scheduler(base_scheduler: Any, spec: SamplerSpec, *, field: str = "payload.sampler_name") -> Any:
    """A fresh scheduler of ``spec.diffusers_class`` configured from ``base_scheduler.config``."""
    import diffusers

    cls = getattr(diffusers, spec.diffusers_class, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise UnsupportedFeature(
            f"sampler {spec.name!r} needs diffusers.{spec.diffusers_class}, which this engine's diffusers lacks",
            field=field,
        )
    return cls.from_config(base_scheduler.config, **spec.config)
