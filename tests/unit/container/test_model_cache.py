"""The model cache against real files, real locks, threads and processes."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import subprocess
import threading
from pathlib import Path

import pytest

from inference_container.engine.types import ModelRef
from inference_container.errors import ModelUnavailable
from inference_container.models.cache import ModelCache
from inference_container.models.fetchers import FileFetcher
from tests.fakes.model_fetchers import CountingFetcher


def blob(tag: str, size: int = 100) -> bytes:
    return (tag.encode() * size)[:size]


def ref_for(name: str, data: bytes, uri: str | None = None) -> ModelRef:
    return ModelRef(name, uri or f"mem://{name}", hashlib.sha256(data).hexdigest(), len(data))


def make(root: Path, budget: int, blobs: dict[str, bytes], **kw) -> tuple[ModelCache, CountingFetcher]:
    fetcher = CountingFetcher(blobs, **kw)
    return ModelCache(root, budget, fetchers={"mem": fetcher}), fetcher


def cached_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != ".locks")


MODELS = {name: blob(name) for name in ("a", "b", "c", "d", "e")}
REFS = {name: ref_for(f"{name}.safetensors", data, f"mem://{name}") for name, data in MODELS.items()}
BLOBS = {f"mem://{name}": data for name, data in MODELS.items()}


def test_miss_then_hit(tmp_path: Path) -> None:
    cache, fetcher = make(tmp_path, 10_000, BLOBS)
    path = cache.get(REFS["a"])
    assert path == tmp_path / REFS["a"].sha256
    assert path.read_bytes() == MODELS["a"]
    assert cache.get(REFS["a"]) == path
    assert fetcher.opens == ["mem://a"]
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["models"], stats["used_bytes"]) == (1, 1, 1, 100)
    assert stats["fetched_bytes"] == 100 and stats["budget_bytes"] == 10_000


def test_same_bytes_under_two_names_are_stored_once(tmp_path: Path) -> None:
    cache, fetcher = make(tmp_path, 10_000, BLOBS)
    cache.get(REFS["a"])
    other = ModelRef("renamed.safetensors", "mem://a", REFS["a"].sha256, 100)
    assert cache.get(other) == cache.path_for(REFS["a"])
    assert len(fetcher.opens) == 1


def test_file_fetcher_end_to_end(tmp_path: Path) -> None:
    source = tmp_path / "models" / "my model.safetensors"
    source.parent.mkdir()
    source.write_bytes(MODELS["b"])
    ref = ref_for("my model.safetensors", MODELS["b"], source.as_uri())
    cache = ModelCache(tmp_path / "cache", 10_000, fetchers={"file": FileFetcher([source.parent])})
    path = cache.get(ref)
    assert path.read_bytes() == MODELS["b"] and path.parent == tmp_path / "cache"


def test_missing_file_names_the_model_and_path(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache", 10_000, fetchers={"file": FileFetcher([tmp_path])})
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelUnavailable) as info:
        cache.get(ModelRef("nope.safetensors", missing.as_uri(), "0" * 64, 10))
    assert "'nope.safetensors'" in info.value.message and str(missing) in info.value.message
    assert info.value.status == 422
    assert cached_files(tmp_path / "cache") == []


def test_hash_mismatch_leaves_nothing_behind(tmp_path: Path) -> None:
    cache, _ = make(tmp_path, 10_000, BLOBS)
    wrong = ModelRef("a.safetensors", "mem://a", "f" * 64, 100)
    with pytest.raises(ModelUnavailable) as info:
        cache.get(wrong)
    message = info.value.message
    assert "'a.safetensors'" in message and "does not match the reference" in message
    assert REFS["a"].sha256 not in message  # never what the file hashes to
    assert cached_files(tmp_path) == []
    assert cache.get(REFS["a"]).read_bytes() == MODELS["a"]


def test_size_mismatch_against_the_job(tmp_path: Path) -> None:
    cache, fetcher = make(tmp_path, 10_000, BLOBS)
    with pytest.raises(ModelUnavailable) as info:
        cache.get(ModelRef("a.safetensors", "mem://a", REFS["a"].sha256, 99))
    assert "99 bytes" in info.value.message and "100" not in info.value.message  # never the file's size
    assert fetcher.opens == []  # refused before downloading
    assert cached_files(tmp_path) == []


@pytest.mark.parametrize("claimed", [100, 50])
def test_source_serving_other_bytes_than_it_claims(tmp_path: Path, claimed: int) -> None:
    # size() agrees with the job, but the stream is longer or shorter.
    data = MODELS["a"][:claimed] if claimed < 100 else MODELS["a"] + b"extra"
    ref = ModelRef("a.safetensors", "mem://a", hashlib.sha256(data).hexdigest(), len(data))
    served = MODELS["a"] if claimed < 100 else MODELS["a"] + b"extra" + b"more"
    cache, _ = make(tmp_path, 10_000, {"mem://a": served}, claimed_sizes={"mem://a": len(data)}, max_chunk=7)
    with pytest.raises(ModelUnavailable) as info:
        cache.get(ref)
    assert "size mismatch" in info.value.message
    assert cached_files(tmp_path) == []


def test_unknown_scheme(tmp_path: Path) -> None:
    cache, _ = make(tmp_path, 10_000, BLOBS)
    with pytest.raises(ModelUnavailable) as info:
        cache.get(ModelRef("x.safetensors", "s3://bucket/x", "0" * 64, 1))
    assert "s3://" in info.value.message and "mem://" in info.value.message


def test_invalid_sha_never_becomes_a_path(tmp_path: Path) -> None:
    cache, _ = make(tmp_path, 10_000, BLOBS)
    with pytest.raises(ModelUnavailable):
        cache.get(ModelRef("x", "mem://a", "../../etc/passwd", 100))


def test_eviction_is_least_recently_used_and_survives_restart(tmp_path: Path) -> None:
    cache, _ = make(tmp_path, 300, BLOBS)
    for name in ("a", "b", "c"):
        cache.get(REFS[name])
    cache.get(REFS["a"])  # a is now more recent than b and c
    cache.get(REFS["d"])
    present = {n for n, r in REFS.items() if cache.path_for(r).exists()}
    assert present == {"a", "c", "d"}
    assert cache.stats()["evictions"] == 1

    restarted, _ = make(tmp_path, 300, BLOBS)  # order comes from the files, not from memory
    restarted.get(REFS["e"])
    present = {n for n, r in REFS.items() if restarted.path_for(r).exists()}
    assert present == {"a", "d", "e"}
    assert restarted.stats()["used_bytes"] <= 300


def test_model_in_use_is_not_evicted(tmp_path: Path) -> None:
    cache, _ = make(tmp_path, 200, BLOBS)
    with cache.use(REFS["a"]) as path:
        for name in ("b", "c", "d"):
            cache.get(REFS[name])
        assert path.exists()
    cache.get(REFS["e"])
    assert not cache.path_for(REFS["a"]).exists()


def test_model_in_use_by_another_process_is_not_evicted(tmp_path: Path) -> None:
    # A second cache object has its own pins, so only the shared file lock protects the model.
    other, _ = make(tmp_path, 200, BLOBS)
    cache, _ = make(tmp_path, 200, BLOBS)
    with other.use(REFS["a"]):
        cache.get(REFS["b"])
        cache.get(REFS["c"])
        assert cache.path_for(REFS["a"]).exists()
        assert not cache.path_for(REFS["b"]).exists()


def test_just_fetched_model_is_kept_even_over_budget(tmp_path: Path, caplog) -> None:
    cache, _ = make(tmp_path, 50, BLOBS)
    with caplog.at_level(logging.WARNING, logger="inference_container.models.cache"):
        path = cache.get(REFS["a"])
    assert path.read_bytes() == MODELS["a"]
    assert any("budget" in r.getMessage() for r in caplog.records)
    cache.get(REFS["b"])
    assert not cache.path_for(REFS["a"]).exists() and cache.path_for(REFS["b"]).exists()


def test_damaged_cached_file_is_fetched_again(tmp_path: Path) -> None:
    cache, fetcher = make(tmp_path, 10_000, BLOBS)
    path = cache.get(REFS["a"])
    path.write_bytes(b"short")
    assert cache.get(REFS["a"]).read_bytes() == MODELS["a"]
    assert len(fetcher.opens) == 2


def test_stale_partial_downloads_of_dead_processes_are_removed(tmp_path: Path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    stale = tmp_path / f".tmp-{'0' * 64}-{finished.pid}-abcd1234"
    live = tmp_path / f".tmp-{'1' * 64}-{os.getpid()}-abcd1234"
    stale.write_bytes(b"partial")
    live.write_bytes(b"partial")
    ModelCache(tmp_path, 1000, fetchers={})
    assert not stale.exists() and live.exists()


def test_eight_threads_fetch_the_same_model_once(tmp_path: Path) -> None:
    big = blob("z", 64 * 1024)
    ref = ref_for("z.safetensors", big, "mem://z")
    cache, fetcher = make(tmp_path, 10**9, {"mem://z": big}, chunk_delay=0.002, max_chunk=4096)
    barrier = threading.Barrier(8)
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(cache.get(ref))
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fetcher.opens == ["mem://z"]
    assert len(set(results)) == 1 and results[0].read_bytes() == big
    assert cache.stats()["misses"] == 1 and cache.stats()["hits"] == 7


def _process_get(root: str, log: str, data: bytes, barrier) -> None:
    ref = ref_for("p.safetensors", data, "mem://p")
    fetcher = CountingFetcher({"mem://p": data}, open_log=Path(log), chunk_delay=0.002, max_chunk=4096)
    cache = ModelCache(Path(root), 10**9, fetchers={"mem": fetcher})
    barrier.wait()
    cache.get(ref)


def test_two_processes_fetch_the_same_model_once(tmp_path: Path) -> None:
    data = blob("p", 64 * 1024)
    ref = ref_for("p.safetensors", data, "mem://p")
    log = tmp_path / "opens.log"
    root = tmp_path / "cache"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    procs = [
        context.Process(target=_process_get, args=(str(root), str(log), data, barrier)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(log.read_text().splitlines()) == 1
    assert cached_files(root) == [ref.sha256]
    assert hashlib.sha256((root / ref.sha256).read_bytes()).hexdigest() == ref.sha256


# --- file:// confinement -----------------------------------------------------------------------


def _file_cache(tmp_path: Path, root: Path) -> ModelCache:
    return ModelCache(tmp_path / "cache", 10_000, fetchers={"file": FileFetcher([root])})


def test_file_outside_the_roots_is_refused_without_leaking_size_or_hash(tmp_path: Path) -> None:
    roots = tmp_path / "models"
    roots.mkdir()
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"do not tell" * 10)
    actual_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    cache = _file_cache(tmp_path, roots)
    with pytest.raises(ModelUnavailable) as info:
        cache.get(ModelRef("secret.key", secret.as_uri(), "0" * 64, 1))
    message = info.value.message
    assert "outside" in message and "SDCLOUD_MODEL_ROOTS" in message
    assert str(secret.stat().st_size) not in message and actual_sha not in message
    # a missing file outside the roots answers the same: no oracle for what exists there
    with pytest.raises(ModelUnavailable) as missing:
        cache.get(ModelRef("nope", (tmp_path / "nope").as_uri(), "0" * 64, 1))
    assert "outside" in missing.value.message and "exist" not in missing.value.message
    assert cached_files(tmp_path / "cache") == []


def test_symlink_escaping_the_roots_is_refused(tmp_path: Path) -> None:
    roots = tmp_path / "models"
    roots.mkdir()
    target = tmp_path / "elsewhere.safetensors"
    target.write_bytes(MODELS["c"])
    (roots / "link.safetensors").symlink_to(target)
    (roots / "sub").symlink_to(tmp_path)  # a folder link out of the root, too
    cache = _file_cache(tmp_path, roots)
    for uri in ((roots / "link.safetensors").as_uri(), (roots / "sub" / "elsewhere.safetensors").as_uri(),
                roots.as_uri() + "/../elsewhere.safetensors"):
        with pytest.raises(ModelUnavailable, match="outside"):
            cache.get(ref_for("link.safetensors", MODELS["c"], uri))
    assert cached_files(tmp_path / "cache") == []


def test_symlink_within_the_roots_is_followed(tmp_path: Path) -> None:
    roots = tmp_path / "models"
    (roots / "real").mkdir(parents=True)
    (roots / "real" / "m.safetensors").write_bytes(MODELS["d"])
    (roots / "alias.safetensors").symlink_to(roots / "real" / "m.safetensors")
    cache = _file_cache(tmp_path, roots)
    path = cache.get(ref_for("alias.safetensors", MODELS["d"], (roots / "alias.safetensors").as_uri()))
    assert path.read_bytes() == MODELS["d"]


def test_no_roots_means_no_file_models(tmp_path: Path) -> None:
    source = tmp_path / "m.safetensors"
    source.write_bytes(MODELS["e"])
    cache = ModelCache(tmp_path / "cache", 10_000, fetchers={"file": FileFetcher([])})
    with pytest.raises(ModelUnavailable, match="none configured"):
        cache.get(ref_for("m.safetensors", MODELS["e"], source.as_uri()))


def test_the_cache_names_files_by_hash_alone(tmp_path: Path) -> None:
    cache, _ = make(tmp_path, 10_000, BLOBS)
    assert cache.get(ModelRef("model.ckpt", "mem://a", REFS["a"].sha256, 100)).name == REFS["a"].sha256
