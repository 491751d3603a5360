"""Schedule types: name, label and aliases (no sigma functions here)."""

from __future__ import annotations

import dataclasses

from modules._standin import FORGE


@dataclasses.dataclass
class Scheduler:
    name: str
    label: str
    function: object = None
    default_rho: float = -1
    need_inner_model: bool = False
    aliases: list = None

_A1111 = [
    Scheduler('automatic', 'Automatic', aliases=None),
    Scheduler('uniform', 'Uniform', aliases=None),
    Scheduler('karras', 'Karras', aliases=None),
    Scheduler('exponential', 'Exponential', aliases=None),
    Scheduler('polyexponential', 'Polyexponential', aliases=None),
    Scheduler('sgm_uniform', 'SGM Uniform', aliases=['SGMUniform']),
    Scheduler('kl_optimal', 'KL Optimal', aliases=None),
    Scheduler('align_your_steps', 'Align Your Steps', aliases=None),
    Scheduler('simple', 'Simple', aliases=None),
    Scheduler('normal', 'Normal', aliases=None),
    Scheduler('ddim', 'DDIM', aliases=None),
    Scheduler('beta', 'Beta', aliases=None),
]
_FORGE = [  # A1111's, then Forge's own
    *_A1111,
    Scheduler('turbo', 'Turbo', aliases=None),
    Scheduler('align_your_steps_GITS', 'Align Your Steps GITS', aliases=None),
    Scheduler('align_your_steps_11', 'Align Your Steps 11', aliases=None),
    Scheduler('align_your_steps_32', 'Align Your Steps 32', aliases=None),
]

schedulers = _FORGE if FORGE else _A1111
schedulers_map = {**{x.name: x for x in schedulers}, **{x.label: x for x in schedulers}}
