"""The model library's pure rules: names, declarations, part plans, upload states, the
streaming digest, and safetensors header validation."""

from __future__ import annotations

import hashlib
import struct

import pytest

from middleware.domain import model_library as rules
from middleware.domain.errors import InvalidInput
from middleware.domain.safetensors_header import HeaderError, validate_header
from tests.contract.model_files import raw_file, safetensors_bytes

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "non-empty"),
        ("a/b.safetensors", "/"),
        ("a\\b.safetensors", "/"),
        ("..", ".."),
        ("x..safetensors", ".."),
        ("bad\x01.safetensors", "control"),
        (" lead.safetensors", "spaces"),
        ("x" * 256, "255"),
    ],
)
def test_bad_names(name, problem):
    assert problem in rules.name_problem(name)


def test_good_names_keep_their_extension():
    assert rules.name_problem("style (v2).safetensors") is None
    assert rules.format_of("Old.CKPT") == "pickle"
    assert rules.format_of("emb.pt") == "pickle"
    assert rules.format_of("x.safetensors") == "safetensors"
    assert rules.format_of("x.exe") is None


def test_declaration_names_every_bad_field():
    with pytest.raises(InvalidInput) as caught:
        rules.validate_declaration("../x", "sampler", 0, "ABC", "friends", max_bytes=10)
    assert [e.field for e in caught.value.errors] == ["name", "type", "size", "sha256", "visibility"]
    with pytest.raises(InvalidInput, match="limit"):
        rules.validate_declaration("x.safetensors", "lora", 11, "a" * 64, "private", max_bytes=10)
    assert rules.validate_declaration("x.ckpt", "checkpoint", 5, "a" * 64, "public", max_bytes=10) == "pickle"


def test_part_plans():
    assert rules.part_size_for(10 * MIB) == 10 * MIB  # one part for a small file
    assert rules.part_size_for(2 * 1024 * MIB) == 64 * MIB
    # Past 10,000 parts of 64 MiB the part grows (whole MiB), up to 128 MiB.
    big = 10_000 * 64 * MIB + 1
    size = rules.part_size_for(big)
    assert 64 * MIB < size <= 128 * MIB and size % MIB == 0 and -(-big // size) <= rules.MAX_PARTS
    with pytest.raises(InvalidInput):
        rules.part_size_for(10_000 * 128 * MIB + 1)
    parts = rules.plan_parts(10, 4)
    assert [(p.number, p.offset, p.size) for p in parts] == [(1, 0, 4), (2, 4, 4), (3, 8, 2)]
    assert [p.size for p in rules.plan_parts(8, 4)] == [4, 4]


def upload(status="uploading") -> rules.Upload:
    return rules.Upload(
        id="u", owner="a", name="m.safetensors", type="lora", size=10, sha256="a" * 64, visibility="private",
        format="safetensors", part_size=4, status=status, created_at=0, expires_at=1,
    )


def test_upload_states():
    assert upload().moved_to("complete").status == "complete"
    assert upload().moved_to("aborted").status == "aborted"
    for terminal in ("complete", "failed", "aborted"):
        with pytest.raises(ValueError, match="cannot become"):
            upload(terminal).moved_to("uploading")
    assert upload().part(3).size == 2 and upload().part(4) is None and upload().part(0) is None


def test_import_urls():
    assert rules.import_url_problem("https://huggingface.co/x/y.safetensors") is None
    assert rules.import_url_problem("s3://bucket/key") is None
    for url in ("http://example.com/x", "file:///etc/passwd", "ftp://x/y", "https://user:pw@host/x", "https://"):
        assert rules.import_url_problem(url) is not None, url
    assert rules.import_url_problem("http://127.0.0.1/x", allow_http=True) is None
    assert rules.shown_url("https://h/p?X-Amz-Signature=s#f") == "https://h/p"


def test_digest_keeps_just_the_header_while_hashing_everything():
    data = safetensors_bytes({"w": ("U8", [1000], bytes(1000))})
    digest = rules.ContentDigest(safetensors=True)
    for i in range(0, len(data), 7):  # odd chunk sizes: the length straddles chunks
        digest.feed(data[i : i + 7])
    (length,) = struct.unpack("<Q", data[:8])
    assert digest.head == data[: 8 + length]
    assert digest.size == len(data) and digest.hexdigest() == hashlib.sha256(data).hexdigest()
    validate_header(digest.head, digest.size)


def test_valid_headers():
    data = safetensors_bytes(
        {"a": ("F16", [2, 3], bytes(12)), "b": ("BF16", [], bytes(2)), "c": ("F8_E4M3", [0], b"")},
        metadata={"format": "pt"},
    )
    header = validate_header(data, len(data))
    assert header["a"]["shape"] == [2, 3]


@pytest.mark.parametrize(
    ("header", "data", "reason"),
    [
        ({"w": {"dtype": "X9", "shape": [1], "data_offsets": [0, 1]}}, bytes(1), "unknown dtype"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, bytes(4), "span"),
        ({"w": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}}, bytes(1), "non-negative"),
        ({"w": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}}, bytes(4), "outside"),
        ({"w": {"dtype": "U8", "shape": [1], "data_offsets": [1]}}, bytes(2), "begin, end"),
        (
            {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
             "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}},
            bytes(6),
            "overlap",
        ),
        ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
        ({"w": "tensor"}, b"", "not an object"),
    ],
)
def test_header_refusals(header, data, reason):
    blob = raw_file(header, data)
    with pytest.raises(HeaderError, match=reason):
        validate_header(blob, len(blob))


def test_header_length_refusals():
    with pytest.raises(HeaderError, match="shorter"):
        validate_header(b"\x01\x02", 2)
    huge = struct.pack("<Q", 200_000_000) + b"{}"
    with pytest.raises(HeaderError, match="limit"):
        validate_header(huge, 10**12)
    claims = struct.pack("<Q", 100) + b"{}"
    with pytest.raises(HeaderError, match="only"):
        validate_header(claims, len(claims))
    not_json = struct.pack("<Q", 4) + b"{{{{"
    with pytest.raises(HeaderError, match="not JSON"):
        validate_header(not_json, len(not_json))
