from types import SimpleNamespace

import pytest
import torch

from inference_container.engine import text_encoding as te
from inference_container.engine.prompt_parser import parse_prompt_attention

BOS, EOS, COMMA = 49406, 49407, 267


def _words(n: int) -> str:
    return " ".join(["cat"] * n)  # "cat" is one token


# --- chunking ------------------------------------------------------------------------------------


def test_short_prompt_is_one_padded_chunk(clip_tokenizer):
    chunks, count = te.tokenize_chunks(clip_tokenizer, "a photo of a cat")
    assert count == 5
    assert len(chunks) == 1
    tokens = chunks[0].tokens
    assert len(tokens) == 77
    assert tokens[:7] == [BOS, 320, 1125, 539, 320, 2368, EOS]
    assert set(tokens[7:]) == {EOS}
    assert chunks[0].multipliers == [1.0] * 77


def test_empty_prompt_is_one_empty_chunk(clip_tokenizer):
    chunks, count = te.tokenize_chunks(clip_tokenizer, "")
    assert count == 0
    assert len(chunks) == 1 and chunks[0].tokens == te.empty_chunk(te.token_ids(clip_tokenizer)).tokens


def test_prompt_longer_than_75_tokens_spills_into_a_second_chunk(clip_tokenizer):
    chunks, count = te.tokenize_chunks(clip_tokenizer, _words(80))
    assert count == 80
    assert len(chunks) == 2
    assert chunks[0].tokens.count(2368) == 75
    assert chunks[1].tokens.count(2368) == 5
    assert all(len(c.tokens) == 77 and c.tokens[0] == BOS and c.tokens[-1] == EOS for c in chunks)


def test_full_chunk_breaks_after_a_recent_comma(clip_tokenizer):
    # 70 words, a comma, then 10 more: the chunk fills at 75 and the 4 words after the comma move on.
    chunks, _ = te.tokenize_chunks(clip_tokenizer, _words(70) + ", " + _words(10))
    assert len(chunks) == 2
    first = chunks[0].tokens[1:-1]
    assert first[:71] == [2368] * 70 + [COMMA]
    assert set(first[71:]) == {EOS}
    assert chunks[1].tokens[1:11] == [2368] * 10


def test_comma_too_far_back_does_not_move_words(clip_tokenizer):
    chunks, _ = te.tokenize_chunks(clip_tokenizer, _words(40) + ", " + _words(40))
    assert chunks[0].tokens[1:-1].count(2368) == 74  # filled to 75 tokens (74 words + the comma)


def test_break_starts_a_new_chunk(clip_tokenizer):
    chunks, _ = te.tokenize_chunks(clip_tokenizer, "a cat BREAK a dog")
    assert len(chunks) == 2
    assert chunks[0].tokens[:4] == [BOS, 320, 2368, EOS]
    assert chunks[1].tokens[:4] == [BOS, 320, 1929, EOS]


def test_weights_become_token_multipliers(clip_tokenizer):
    chunks, _ = te.tokenize_chunks(clip_tokenizer, "a (cat:1.5) [dog]")
    tokens, mults = chunks[0].tokens, chunks[0].multipliers
    assert mults[tokens.index(2368)] == 1.5
    assert mults[tokens.index(1929)] == pytest.approx(1 / 1.1)
    assert mults[tokens.index(320)] == 1.0


def test_a_custom_parser_can_stand_in(clip_tokenizer):
    chunks, _ = te.tokenize_chunks(clip_tokenizer, "ignored", parse=lambda text: [("a cat", 2.0)])
    assert chunks[0].multipliers[1:3] == [2.0, 2.0]


# --- encoding -------------------------------------------------------------------------------------


def _views(model, clip_skip=1):
    return te.encoder_views(model.txt2img, model.architecture, clip_skip)


def test_long_prompt_gives_two_chunks_and_negative_is_padded(tiny_model):
    cond = te.encode_prompt_pair(_views(tiny_model), _words(100), "blurry")
    assert cond.prompt_embeds.shape == (1, 154, 32)
    assert cond.negative_prompt_embeds.shape == (1, 154, 32)
    assert cond.chunk_count == 2
    assert cond.pooled_prompt_embeds is None
    # The negative's padding chunk is the empty prompt's encoding.
    empty = te.encode_prompt_pair(_views(tiny_model), "", "").prompt_embeds
    assert torch.allclose(cond.negative_prompt_embeds[:, 77:], empty, atol=1e-6)


def test_short_prompt_matches_the_plain_encoder_output(tiny_model):
    pipe = tiny_model.txt2img
    ids = pipe.tokenizer(
        "a photo of a cat", padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    plain = pipe.text_encoder(ids).last_hidden_state
    cond = te.encode_prompt_pair(_views(tiny_model), "a photo of a cat", "")
    assert torch.allclose(cond.prompt_embeds, plain, atol=1e-5)


def test_emphasis_changes_the_embedding_and_keeps_its_mean(tiny_model):
    plain = te.encode_prompt_pair(_views(tiny_model), "a cat on a sofa", "").prompt_embeds
    weighted = te.encode_prompt_pair(_views(tiny_model), "a (cat:1.5) on a sofa", "").prompt_embeds
    assert not torch.allclose(plain, weighted)
    assert weighted.mean().item() == pytest.approx(plain.mean().item(), abs=1e-5)


def test_apply_emphasis_restores_each_chunks_mean():
    z = torch.randn(2, 77, 8) + 0.5
    mults = torch.ones(2, 77)
    mults[:, 3] = 2.0
    out = te.apply_emphasis(z, mults)
    assert torch.allclose(out.mean(dim=(1, 2)), z.mean(dim=(1, 2)), atol=1e-5)
    assert not torch.allclose(out, z)


def test_clip_skip_2_is_the_normed_penultimate_layer(tiny_model):
    pipe = tiny_model.txt2img
    skip1 = te.encode_prompt_pair(_views(tiny_model, 1), "a cat", "").prompt_embeds
    skip2 = te.encode_prompt_pair(_views(tiny_model, 2), "a cat", "").prompt_embeds
    assert not torch.allclose(skip1, skip2)
    ids = torch.tensor([te.tokenize_chunks(pipe.tokenizer, "a cat")[0][0].tokens])
    hidden = pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
    assert torch.allclose(skip2, pipe.text_encoder.final_layer_norm(hidden), atol=1e-5)


def test_clip_skip_is_clamped_to_the_layer_count(tiny_model):
    views = _views(tiny_model, 99)
    assert views[0].hidden_index == -12


class _RecordingEncoder(torch.nn.Module):
    """Wraps a real text encoder and keeps the token ids it was given."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.final_layer_norm = inner.final_layer_norm
        self.seen: list[torch.Tensor] = []

    @property
    def device(self):
        return self.inner.device

    def forward(self, input_ids, **kwargs):
        self.seen.append(input_ids.clone())
        return self.inner(input_ids=input_ids, **kwargs)


def test_open_clip_view_pads_after_the_first_end_token(tiny_model):
    pipe = tiny_model.txt2img
    recorder = _RecordingEncoder(pipe.text_encoder)
    view = te.TextEncoderView(pipe.tokenizer, recorder, pad_id=0)
    te.encode_prompt_pair([view], "a cat", "")
    row = recorder.seen[0][0].tolist()
    assert row[:4] == [BOS, 320, 2368, EOS]
    assert set(row[4:]) == {0}


def test_sdxl_concatenates_both_encoders_and_pools_the_second(clip_tokenizer, engine_work_dir):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from inference_container.engine.tokenizer import load_clip_tokenizer

    common = dict(
        vocab_size=49408,
        max_position_embeddings=77,
        num_attention_heads=2,
        intermediate_size=16,
        num_hidden_layers=3,
        eos_token_id=EOS,
        bos_token_id=BOS,
    )
    torch.manual_seed(0)
    text_l = CLIPTextModel(CLIPTextConfig(hidden_size=8, **common)).eval()
    text_g = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=12, projection_dim=6, **common)).eval()
    pipe = SimpleNamespace(
        tokenizer=clip_tokenizer,
        text_encoder=text_l,
        tokenizer_2=load_clip_tokenizer("open_clip", engine_work_dir / "clip-tokenizer"),
        text_encoder_2=text_g,
    )
    views = te.encoder_views(pipe, "sdxl", clip_skip=2)
    cond = te.encode_prompt_pair(views, _words(80), "ugly")
    assert cond.prompt_embeds.shape == (1, 154, 20)
    assert cond.negative_prompt_embeds.shape == (1, 154, 20)
    assert cond.pooled_prompt_embeds.shape == (1, 6)
    assert cond.negative_pooled_prompt_embeds.shape == (1, 6)
    assert set(cond.pipeline_kwargs()) == {
        "prompt_embeds",
        "negative_prompt_embeds",
        "pooled_prompt_embeds",
        "negative_pooled_prompt_embeds",
    }
    # The first 8 features are CLIP-L's penultimate layer, without its final norm.
    ids = torch.tensor([te.tokenize_chunks(clip_tokenizer, _words(80))[0][0].tokens])
    penultimate = text_l(ids, output_hidden_states=True).hidden_states[-2]
    assert torch.allclose(cond.prompt_embeds[:, :77, :8], penultimate, atol=1e-5)


def test_repeat_makes_a_batch(tiny_model):
    cond = te.encode_prompt_pair(_views(tiny_model), "a cat", "dog").repeat(3)
    assert cond.prompt_embeds.shape[0] == 3 and cond.negative_prompt_embeds.shape[0] == 3
    assert torch.equal(cond.prompt_embeds[0], cond.prompt_embeds[2])


def test_uses_the_shared_prompt_parser():
    assert te.parse_prompt_attention is parse_prompt_attention


def test_a_lone_surrogate_does_not_crash_the_tokenizer(clip_tokenizer):
    # The validator refuses such prompts; any other caller gets U+FFFD tokens, not a TypeError.
    chunks, _ = te.tokenize_chunks(clip_tokenizer, "a \ud800 cat")
    same, _ = te.tokenize_chunks(clip_tokenizer, "a \ufffd cat")
    assert chunks[0].tokens == same[0].tokens
