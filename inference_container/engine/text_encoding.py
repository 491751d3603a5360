"""Prompt conditioning the way the WebUI computes it: emphasis, 75-token chunks, BREAK, clip skip.

A prompt is split into ``(text, weight)`` runs (``prompt_parser``), tokenised without special
tokens, and packed into chunks of 75 tokens. A chunk that fills up breaks after its last comma
when that comma is within the last 20 tokens (the rest moves to the next chunk); ``BREAK``
starts a new chunk. Each chunk becomes ``BOS + 75 tokens + EOS`` (77), is encoded on its own,
scaled token by token by its weights with the chunk's overall mean restored, and the chunks are
concatenated. So prompts longer than 77 tokens work and ``(word:1.3)`` changes the result
exactly as in the WebUI.

Which hidden layer feeds the UNet depends on the model family:
- SD 1.x: the last layer, or with clip skip N the N-th from last, then the final layer norm;
- SD 2.x: the penultimate layer of OpenCLIP plus its final norm (our 23-layer config's last
  layer; the WebUI ignores clip skip here);
- SDXL: the penultimate layer of both encoders without final norm, concatenated; the pooled
  embedding comes from the second encoder's first chunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from inference_container.engine.prompt_parser import parse_prompt_attention

CHUNK_LENGTH = 75
COMMA_BACKTRACK = 20  # the WebUI's default "comma_padding_backtrack"
BREAK_MARKER = ("BREAK", -1.0)

ParseFn = Callable[[str], list[tuple[str, float]]]
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def tokenizable(text: str) -> str:
    """``text`` with lone UTF-16 surrogates (from JSON ``\\ud800`` escapes) replaced by U+FFFD.

    The job validator refuses such prompts; this keeps any other caller from crashing the
    tokenizer, which cannot encode them.
    """
    return _LONE_SURROGATE.sub("\ufffd", text)


@dataclass
class PromptChunk:
    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)
    # (offset among the chunk's tokens, embedding): placeholders the embedding's vectors replace.
    fixes: list[tuple[int, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TokenIds:
    bos: int
    eos: int
    comma: int | None


def token_ids(tokenizer: Any) -> TokenIds:
    # get_vocab() copies all 49,408 entries (~15 ms); look up the one token we need instead.
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    return TokenIds(
        bos=int(tokenizer.bos_token_id),
        eos=int(tokenizer.eos_token_id),
        comma=None if comma in (None, tokenizer.unk_token_id) else int(comma),
    )


def _embedding_lookup(tokenizer: Any, embeddings: Sequence[Any]) -> dict[int, list[tuple[list[int], Any]]]:
    """First token id -> [(the name's token ids, embedding)], longest names first (A1111's ids_lookup)."""
    lookup: dict[int, list[tuple[list[int], Any]]] = {}
    for embedding in embeddings:
        name_ids = tokenizer([embedding.name], truncation=False, add_special_tokens=False)["input_ids"][0]
        if name_ids:
            lookup.setdefault(name_ids[0], []).append((list(name_ids), embedding))
    for entries in lookup.values():
        entries.sort(key=lambda entry: len(entry[0]), reverse=True)
    return lookup


def tokenize_chunks(
    tokenizer: Any, text: str, *, parse: ParseFn = parse_prompt_attention, embeddings: Sequence[Any] = ()
) -> tuple[list[PromptChunk], int]:
    """The prompt's 77-token chunks (BOS/EOS included) and its token count, as the WebUI builds them.

    Where an embedding's name occurs, its vectors' worth of placeholder tokens (id 0, as A1111)
    stand in the chunk and the chunk records the fix; an embedding never straddles two chunks.
    """
    ids = token_ids(tokenizer)
    lookup = _embedding_lookup(tokenizer, embeddings) if embeddings else {}
    parsed = parse(text)
    texts = [tokenizable(piece) for piece, _ in parsed]
    tokenized = tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"] if texts else []

    chunks: list[PromptChunk] = []
    chunk = PromptChunk()
    token_count = 0
    last_comma = -1

    def next_chunk(is_last: bool = False) -> None:
        nonlocal chunk, token_count, last_comma
        token_count += len(chunk.tokens) if is_last else CHUNK_LENGTH
        to_add = CHUNK_LENGTH - len(chunk.tokens)
        if to_add > 0:
            chunk.tokens += [ids.eos] * to_add
            chunk.multipliers += [1.0] * to_add
        chunk.tokens = [ids.bos] + chunk.tokens + [ids.eos]
        chunk.multipliers = [1.0] + chunk.multipliers + [1.0]
        last_comma = -1
        chunks.append(chunk)
        chunk = PromptChunk()

    for tokens, (piece, weight) in zip(tokenized, parsed, strict=True):
        if (piece, weight) == BREAK_MARKER:
            next_chunk()
            continue
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == ids.comma:
                last_comma = len(chunk.tokens)
            elif (
                len(chunk.tokens) == CHUNK_LENGTH
                and last_comma != -1
                and len(chunk.tokens) - last_comma <= COMMA_BACKTRACK
            ):
                # Break after the last comma and carry the words after it into the next chunk.
                cut = last_comma + 1
                moved_tokens, moved_mults = chunk.tokens[cut:], chunk.multipliers[cut:]
                moved_fixes = [(offset - cut, e) for offset, e in chunk.fixes if offset >= cut]
                chunk.fixes = [(offset, e) for offset, e in chunk.fixes if offset < cut]
                chunk.tokens, chunk.multipliers = chunk.tokens[:cut], chunk.multipliers[:cut]
                next_chunk()
                chunk.tokens, chunk.multipliers, chunk.fixes = moved_tokens, moved_mults, moved_fixes
            if len(chunk.tokens) == CHUNK_LENGTH:
                next_chunk()
            found = _embedding_at(lookup, tokens, position) if lookup else None
            if found is None:
                chunk.tokens.append(token)
                chunk.multipliers.append(weight)
                position += 1
                continue
            embedding, matched = found
            count = min(embedding.vector_count, CHUNK_LENGTH)
            if len(chunk.tokens) + count > CHUNK_LENGTH:
                next_chunk()
            chunk.fixes.append((len(chunk.tokens), embedding))
            chunk.tokens += [0] * count
            chunk.multipliers += [weight] * count
            position += matched

    if chunk.tokens or not chunks:
        next_chunk(is_last=True)
    return chunks, token_count


def _embedding_at(lookup: dict[int, list[tuple[list[int], Any]]], tokens: Sequence[int], position: int) -> Any:
    for name_ids, embedding in lookup.get(tokens[position], ()):
        if list(tokens[position : position + len(name_ids)]) == name_ids:
            return embedding, len(name_ids)
    return None


def empty_chunk(ids: TokenIds) -> PromptChunk:
    return PromptChunk([ids.bos] + [ids.eos] * (CHUNK_LENGTH + 1), [1.0] * (CHUNK_LENGTH + 2))


@dataclass(frozen=True)
class TextEncoderView:
    """One text encoder and how the WebUI reads it.

    ``hidden_index`` picks ``hidden_states[hidden_index]`` (-1 = last layer); ``final_norm``
    applies the encoder's final layer norm to it; ``pad_id`` replaces every token after the
    first EOS (OpenCLIP pads with id 0, OpenAI CLIP with EOS itself).
    """

    tokenizer: Any
    encoder: Any
    hidden_index: int = -1
    final_norm: bool = True
    pad_id: int | None = None
    pooled: bool = False
    embedding_key: str = ""  # which of an embedding's vector sets this encoder reads (SDXL: clip_l / clip_g)


@dataclass
class Conditioning:
    """What the pipelines take as ``prompt_embeds`` & co.; batch dimension 1 until ``repeat``."""

    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor
    pooled_prompt_embeds: torch.Tensor | None = None
    negative_pooled_prompt_embeds: torch.Tensor | None = None
    token_count: int = 0

    @property
    def chunk_count(self) -> int:
        return self.prompt_embeds.shape[1] // (CHUNK_LENGTH + 2)

    def repeat(self, batch: int) -> Conditioning:
        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.repeat(batch, *([1] * (t.ndim - 1)))

        return Conditioning(
            rep(self.prompt_embeds),
            rep(self.negative_prompt_embeds),
            rep(self.pooled_prompt_embeds),
            rep(self.negative_pooled_prompt_embeds),
            self.token_count,
        )

    def pipeline_kwargs(self) -> dict[str, torch.Tensor]:
        kwargs = {"prompt_embeds": self.prompt_embeds, "negative_prompt_embeds": self.negative_prompt_embeds}
        if self.pooled_prompt_embeds is not None:
            kwargs["pooled_prompt_embeds"] = self.pooled_prompt_embeds
            kwargs["negative_pooled_prompt_embeds"] = self.negative_pooled_prompt_embeds
        return kwargs


def encoder_views(pipe: Any, architecture: str, clip_skip: int = 1) -> list[TextEncoderView]:
    """How each of the pipeline's text encoders is read for ``architecture`` (see module docstring)."""
    if architecture == "sdxl":
        return [
            TextEncoderView(pipe.tokenizer, pipe.text_encoder, hidden_index=-2, final_norm=False,
                            embedding_key="clip_l"),
            TextEncoderView(
                pipe.tokenizer_2,
                pipe.text_encoder_2,
                hidden_index=-2,
                final_norm=False,
                pad_id=0,
                pooled=True,
                embedding_key="clip_g",
            ),
        ]
    if architecture == "sd2":
        return [
            TextEncoderView(pipe.tokenizer, pipe.text_encoder, hidden_index=-1, final_norm=True, pad_id=0)
        ]
    layers = int(pipe.text_encoder.config.num_hidden_layers)
    skip = min(max(int(clip_skip or 1), 1), layers)
    return [TextEncoderView(pipe.tokenizer, pipe.text_encoder, hidden_index=-skip, final_norm=True)]


def _final_layer_norm(encoder: Any) -> Any:
    inner = getattr(encoder, "text_model", encoder)
    return inner.final_layer_norm


def _encode_chunks(
    view: TextEncoderView, chunks: Sequence[PromptChunk]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(z of shape (chunks, 77, dim) with emphasis applied, pooled (chunks, dim) or None)."""
    encoder = view.encoder
    device = encoder.device
    ids = token_ids(view.tokenizer)
    rows = []
    for chunk in chunks:
        tokens = list(chunk.tokens)
        if view.pad_id is not None and view.pad_id != ids.eos:
            first_eos = tokens.index(ids.eos)
            tokens[first_eos + 1 :] = [view.pad_id] * (len(tokens) - first_eos - 1)
        rows.append(tokens)
    input_ids = torch.tensor(rows, dtype=torch.long, device=device)
    with torch.no_grad(), _embedding_fixes(view, chunks):
        out = encoder(input_ids=input_ids, output_hidden_states=True)
        z = out.hidden_states[view.hidden_index]
        if view.final_norm:
            z = _final_layer_norm(encoder)(z)
        pooled = None
        if view.pooled:
            pooled = getattr(out, "text_embeds", None)
            if pooled is None:
                pooled = out.pooler_output
        multipliers = torch.tensor([c.multipliers for c in chunks], dtype=torch.float32, device=device)
        z = apply_emphasis(z, multipliers)
    return z, pooled


@contextmanager
def _embedding_fixes(view: TextEncoderView, chunks: Sequence[PromptChunk]) -> Iterator[None]:
    """For one encoder call, put each embedding's vectors where its placeholders sit (after BOS).

    A forward hook on the token embedding, removed when the call returns: A1111's
    EmbeddingsWithFixes without changing the model for anyone else.
    """
    if not any(chunk.fixes for chunk in chunks):
        yield
        return
    inner = getattr(view.encoder, "text_model", view.encoder)

    def fix(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        fixed = output.clone()
        for row, chunk in enumerate(chunks):
            for offset, embedding in chunk.fixes:
                vectors = embedding.vectors[view.embedding_key]
                count = min(vectors.shape[0], CHUNK_LENGTH - offset)
                fixed[row, offset + 1 : offset + 1 + count] = vectors[:count].to(fixed.device, fixed.dtype)
        return fixed

    handle = inner.embeddings.token_embedding.register_forward_hook(fix)
    try:
        yield
    finally:
        handle.remove()


def apply_emphasis(z: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
    """Scale each token by its weight, then restore each chunk's mean (the WebUI's "Original" emphasis)."""
    z32 = z.float()
    original_mean = z32.mean(dim=(1, 2), keepdim=True)
    z32 = z32 * multipliers.unsqueeze(-1)
    new_mean = z32.mean(dim=(1, 2), keepdim=True)
    # A mean of exactly 0 (a layer norm without bias, as in random-weight models) would make 0/0;
    # the WebUI's formula means "no rescale" there.
    ratio = torch.where(new_mean == 0, torch.ones_like(new_mean), original_mean / new_mean)
    z32 = z32 * ratio
    return z32.to(z.dtype)


def encode_prompt_pair(
    views: Sequence[TextEncoderView],
    prompt: str,
    negative_prompt: str,
    *,
    parse: ParseFn = parse_prompt_attention,
    embeddings: Sequence[Any] = (),
) -> Conditioning:
    """Positive and negative conditioning, padded to the same number of chunks with empty-prompt chunks."""
    first = views[0].tokenizer
    positive, token_count = tokenize_chunks(first, prompt, parse=parse, embeddings=embeddings)
    negative, _ = tokenize_chunks(first, negative_prompt, parse=parse, embeddings=embeddings)
    count = max(len(positive), len(negative))
    blank = empty_chunk(token_ids(first))
    positive = positive + [blank] * (count - len(positive))
    negative = negative + [blank] * (count - len(negative))

    pos_parts, neg_parts = [], []
    pooled = neg_pooled = None
    for view in views:
        # One encoder call for both prompts: the chunks are independent rows.
        z, pooled_rows = _encode_chunks(view, positive + negative)
        pos_parts.append(z[:count])
        neg_parts.append(z[count:])
        if pooled_rows is not None:
            # The WebUI pools the first chunk only.
            pooled, neg_pooled = pooled_rows[0:1], pooled_rows[count : count + 1]
    pos = torch.cat(pos_parts, dim=-1)
    neg = torch.cat(neg_parts, dim=-1)
    # (chunks, 77, dim) -> (1, chunks * 77, dim): chunks follow one another along the sequence.
    pos = pos.reshape(1, -1, pos.shape[-1])
    neg = neg.reshape(1, -1, neg.shape[-1])
    return Conditioning(pos, neg, pooled, neg_pooled, token_count)


def encode_for_model(model: Any, prompt: str, negative_prompt: str, clip_skip: int = 1) -> Conditioning:
    """Conditioning for a ``LoadedModel``'s pipelines (with the job's embeddings, if it has any)."""
    return encode_prompt_pair(
        encoder_views(model.txt2img, model.architecture, clip_skip),
        prompt,
        negative_prompt,
        embeddings=getattr(model, "embeddings", ()),
    )
