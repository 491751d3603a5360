"""Live previews: the WebUI's cheap latent → RGB approximation, every N steps, as small JPEGs."""

from __future__ import annotations

import io

import torch
from PIL import Image

from inference_container.engine import generate as gen
from inference_container.engine.previews import cheap_rgb, preview_jpeg, wants_preview
from inference_container.engine.types import Progress
from inference_container.progress import ProgressBoard
from tests.support.generation import make_request


def test_cheap_rgb_is_the_linear_map_of_the_webuis_coefficients():
    latents = torch.zeros(1, 4, 2, 2)
    latents[0, 0] = 1.0  # channel 0 alone: (0.298, 0.207, 0.208), mapped from [-1, 1] to [0, 1]
    rgb = cheap_rgb(latents, is_sdxl=False)
    assert torch.allclose(rgb[0, :, 0, 0], torch.tensor([(1 + 0.298) / 2, (1 + 0.207) / 2, (1 + 0.208) / 2]))
    sdxl = cheap_rgb(latents, is_sdxl=True)
    assert torch.allclose(sdxl[0, :, 0, 0], torch.tensor([(1 + 0.3448) / 2, (1 + 0.4168) / 2, (1 + 0.4395) / 2]))
    assert cheap_rgb(torch.full((1, 4, 1, 1), 50.0), is_sdxl=False).max() == 1.0  # clamped


def test_a_batch_previews_as_one_row_at_latent_resolution():
    jpeg = preview_jpeg(torch.randn(3, 4, 8, 8), is_sdxl=False)
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == (24, 8)


def test_every_n_steps_and_off():
    assert [s for s in range(1, 11) if wants_preview(s, 4)] == [4, 8]
    assert not any(wants_preview(s, 0) for s in range(1, 11))
    assert not any(wants_preview(s, -1) for s in range(1, 11))


def test_generation_reports_previews_every_n_steps(tiny_model, tiny_ref):
    events: list[Progress] = []
    gen.generate(tiny_model, make_request(tiny_ref, steps=4, preview_every_n_steps=2), events.append)
    previews = [e for e in events if e.preview is not None]
    assert [e.preview_step for e in previews] == [2, 4]
    assert Image.open(io.BytesIO(previews[0].preview)).size == (8, 8)  # 64x64 image, 8x8 latents

    quiet: list[Progress] = []
    gen.generate(tiny_model, make_request(tiny_ref, steps=4, preview_every_n_steps=0), quiet.append)
    assert all(e.preview is None for e in quiet)


def test_the_board_keeps_the_latest_preview_until_a_new_one():
    board = ProgressBoard()
    board.report(Progress("j", "sampling", 2, 4, preview=b"jpeg-2", preview_step=2))
    board.report(Progress("j", "sampling", 3, 4))
    kept = board.of_job("j")
    assert kept is not None and (kept.step, kept.preview, kept.preview_step) == (3, b"jpeg-2", 2)
    assert kept.to_dict()["preview"] == "anBlZy0y"
