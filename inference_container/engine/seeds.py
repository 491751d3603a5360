"""A1111 seed semantics, as pure functions.

-1 means "pick one at random"; images in a job take consecutive seeds (seed + i) unless a
variation seed is mixed in, in which case every image keeps the main seed and the variation
seeds advance instead (modules/processing.py does the same).
"""

from __future__ import annotations

import random

# A1111 draws random seeds with random.randrange(4294967294): the largest value a 32-bit
# unsigned seed can take, minus the -1 sentinel.
MAX_SEED = 4294967294


def resolve_seed(seed: int, rng: random.Random | None = None) -> int:
    """Replace A1111's ``-1`` (and any negative value) with a random seed."""
    if seed is None or seed < 0:
        return (rng or random).randrange(MAX_SEED)
    return int(seed)


def batch_seeds(seed: int, subseed: int, subseed_strength: float, count: int) -> tuple[list[int], list[int]]:
    """Seeds and variation seeds for ``count`` images, with seeds already resolved."""
    seeds = [seed + (i if subseed_strength == 0 else 0) for i in range(count)]
    subseeds = [subseed + i for i in range(count)]
    return seeds, subseeds
