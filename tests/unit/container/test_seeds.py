import random

from inference_container.engine.seeds import MAX_SEED, batch_seeds, resolve_seed


def test_minus_one_picks_a_seed_in_a1111_range():
    rng = random.Random(5)
    seeds = {resolve_seed(-1, rng) for _ in range(50)}
    assert len(seeds) > 40
    assert all(0 <= s < MAX_SEED for s in seeds)


def test_explicit_seed_is_kept():
    assert resolve_seed(1234) == 1234


def test_batch_seeds_advance_per_image():
    assert batch_seeds(100, 7, 0.0, 3) == ([100, 101, 102], [7, 8, 9])


def test_variation_seed_keeps_main_seed_fixed():
    assert batch_seeds(100, 7, 0.3, 3) == ([100, 100, 100], [7, 8, 9])
