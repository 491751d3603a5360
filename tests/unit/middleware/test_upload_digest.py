"""RunningDigest: the sha256 of parts arriving in any order, or None when it cannot vouch."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from middleware.adapters.upload_digest import RunningDigest

PART = 1000


def _parts(data: bytes) -> list[tuple[int, bytes]]:
    return [(off, data[off : off + PART]) for off in range(0, len(data), PART)]


def _receive(digest: RunningDigest, data: bytes, order: list[int], live_chunk: int = 300) -> None:
    """Each part written in chunks (written()), then received(); reads come from `data`."""
    parts = _parts(data)
    for index in order:
        offset, body = parts[index]
        digest.rewriting(offset)
        for at in range(0, len(body), live_chunk):
            digest.written(offset + at, [body[at : at + live_chunk]])
        digest.received(offset, len(body), lambda at, n: data[at : at + n])


@pytest.mark.parametrize("seed", range(6))
def test_any_arrival_order_gives_the_files_sha256(seed):
    data = os.urandom(PART * 7 + 123)
    order = list(range(8))
    random.Random(seed).shuffle(order)
    digest = RunningDigest()
    _receive(digest, data, order)
    assert digest.result(len(data)) == hashlib.sha256(data).hexdigest()


def test_in_order_parts_are_hashed_as_they_are_written_without_reading_back():
    data = os.urandom(PART * 3)
    digest = RunningDigest()
    reads = []
    for offset, body in _parts(data):
        digest.rewriting(offset)
        digest.written(offset, [body])
        digest.received(offset, len(body), lambda at, n: reads.append((at, n)) or data[at : at + n])
    assert reads == []
    assert digest.result(len(data)) == hashlib.sha256(data).hexdigest()


def test_a_missing_part_leaves_no_result():
    data = os.urandom(PART * 3)
    digest = RunningDigest()
    _receive(digest, data, [0, 2])
    assert digest.result(len(data)) is None


def test_writing_a_hashed_part_again_gives_up():
    data = os.urandom(PART * 2)
    digest = RunningDigest()
    _receive(digest, data, [0, 1])
    digest.rewriting(0)  # a retried PUT of part 1: its bytes may differ now
    assert digest.result(len(data)) is None


def test_a_live_part_stopped_midway_gives_up():
    data = os.urandom(PART * 2)
    digest = RunningDigest()
    digest.rewriting(0)
    digest.written(0, [data[:300]])  # hashed live: the prefix ran into it
    digest.discarded(0, 300)
    _receive(digest, data, [0, 1])
    assert digest.result(len(data)) is None


def test_a_part_ahead_of_the_prefix_stopped_midway_is_harmless():
    data = os.urandom(PART * 2)
    digest = RunningDigest()
    digest.rewriting(PART)
    digest.written(PART, [data[PART : PART + 300]])  # not at the prefix: nothing hashed
    digest.discarded(PART, 300)
    _receive(digest, data, [0, 1])
    assert digest.result(len(data)) == hashlib.sha256(data).hexdigest()


def test_a_failed_read_back_gives_up():
    data = os.urandom(PART * 2)
    digest = RunningDigest()
    digest.rewriting(PART)
    digest.written(PART, [data[PART:]])
    digest.received(PART, PART, lambda at, n: data[at : at + n])
    digest.rewriting(0)
    digest.written(0, [data[:PART]])

    def broken(at, n):
        raise OSError("disk gone")

    digest.received(0, PART, broken)  # part 1 was live; part 2 must be read back and cannot
    assert digest.result(len(data)) is None
