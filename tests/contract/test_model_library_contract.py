"""The model library over both stacks: SQLite + blob folder (local) and DynamoDB + S3 on a real
moto_server (AWS). The same service, the same tests; parts go through each store's own URLs
(the folder store's part sink, S3's presigned ``upload_part``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from middleware.adapters.fs_blobs import FolderBlobStore
from middleware.adapters.sqlite_db import SqliteDatabase
from middleware.adapters.sqlite_models import SqliteModelLibrary
from middleware.domain.errors import Conflict, InvalidInput
from middleware.domain.model_library import ModelImport, ModelRecord, Upload, UploadRejected
from middleware.ports import StoreConflict, User
from middleware.services.model_library import ModelLibrary
from tests.contract.conftest import make_bucket, make_table
from tests.contract.model_files import raw_file, safetensors_bytes, sha256

ALICE, BOB = User("alice", "artist"), User("bob", "artist")


@pytest.fixture(params=["sqlite", "dynamodb"])
def record_store(request, tmp_path):
    if request.param == "sqlite":
        db = SqliteDatabase(tmp_path / "models.sqlite")
        yield SqliteModelLibrary(db)
        db.close()
    else:
        from middleware.adapters.dynamodb_models import DynamoDbModelLibrary

        client = request.getfixturevalue("aws_clients")["dynamodb"]
        table = make_table(client, "ModelsTable")
        yield DynamoDbModelLibrary(client, table)
        client.delete_table(TableName=table)


@dataclass
class Env:
    library: ModelLibrary
    blobs: Any
    part_size: int
    kind: str
    store: Any = None

    def with_library(self, **options: Any) -> ModelLibrary:
        """Another ModelLibrary over the same stores (the part URLs of either work for both)."""
        receiver = self.blobs if self.kind == "local" else None
        return ModelLibrary(self.store, self.blobs, self.blobs, receiver=receiver, part_bytes=self.part_size,
                            url_ttl_s=600, **options)

    def put(self, url: str, data: bytes) -> str:
        """PUT one part the way an uploader does; returns the ETag."""
        if self.kind == "local":
            parts = urlsplit(url)
            *_, upload_id, _, number = parts.path.split("/")
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            sink, expected = self.library.part_sink(upload_id, int(number), int(query["expires"]), query["signature"])
            assert len(data) == expected
            sink.write([data])
            return sink.commit()
        answer = requests.put(url, data=data, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.headers["ETag"]

    def leftovers(self, upload: Upload | None = None) -> list[str]:
        """Parts or multipart uploads still held by the store."""
        if self.kind == "local":
            root = self.blobs.root / ".multipart"
            return [p.name for p in root.iterdir()] if root.exists() else []
        out = self.blobs._s3.list_multipart_uploads(Bucket=self.blobs.bucket)
        return [u["UploadId"] for u in out.get("Uploads", [])]


@pytest.fixture(params=["local", "aws"])
def env(request, tmp_path):
    if request.param == "local":
        db = SqliteDatabase(tmp_path / "lib.sqlite")
        blobs = FolderBlobStore(tmp_path / "blobs", b"s" * 32)
        store = SqliteModelLibrary(db)
        part = 4096
    else:
        from middleware.adapters.dynamodb_models import DynamoDbModelLibrary
        from middleware.adapters.s3_blobs import MIN_PART_BYTES, S3BlobStore

        clients = request.getfixturevalue("aws_clients")
        blobs = S3BlobStore(clients["s3"], make_bucket(clients["s3"]), multipart_threshold=MIN_PART_BYTES,
                            part_size=MIN_PART_BYTES)
        store = DynamoDbModelLibrary(clients["dynamodb"], make_table(clients["dynamodb"], "ModelsTable"))
        part = MIN_PART_BYTES  # S3's floor for every part but the last
    receiver = blobs if request.param == "local" else None
    library = ModelLibrary(store, blobs, blobs, receiver=receiver, part_bytes=part, url_ttl_s=600)
    yield Env(library, blobs, part, request.param, store)
    if request.param == "local":
        db.close()


def model_file(part: int, parts: float = 2.5) -> bytes:
    n = int(part * parts)
    return safetensors_bytes({"w": ("U8", [n], bytes(i % 253 for i in range(n)))})


def send(env: Env, plan: dict, data: bytes, numbers=None) -> list[dict]:
    sent = []
    for p in plan["parts"]:
        if numbers is None or p["number"] in numbers:
            start = (p["number"] - 1) * plan["part_size"]
            etag = env.put(p["url"], data[start : start + p["size"]])
            sent.append({"number": p["number"], "etag": etag})
    return sent


def declare(env: Env, data: bytes, user=ALICE, name="m.safetensors"):
    return env.library.declare(user, name, "lora", len(data), sha256(data), "private")


def test_interrupted_upload_resumes_with_only_the_missing_parts(env):
    data = model_file(env.part_size)
    status, plan = declare(env, data)
    assert status == 201 and len(plan["parts"]) == 3
    send(env, plan, data, numbers={1})
    resumed = env.library.upload_status(ALICE, plan["upload_id"])
    assert [r["number"] for r in resumed["received"]] == [1]
    assert [p["number"] for p in resumed["parts"]] == [2, 3]
    with pytest.raises(InvalidInput, match="2, 3"):
        env.library.complete(ALICE, plan["upload_id"])
    send(env, resumed, data)
    done = env.library.complete(ALICE, plan["upload_id"])
    assert done["model"]["sha256"] == sha256(data)
    assert env.blobs.get_bytes(f"models/{sha256(data)}") == data
    assert env.leftovers() == []


def test_hash_mismatch_fails_and_leaves_nothing(env):
    data = model_file(env.part_size)
    wrong = data[:-1] + bytes([data[-1] ^ 1])
    _, plan = declare(env, data)
    send(env, plan, wrong)
    with pytest.raises(UploadRejected, match="sha256"):
        env.library.complete(ALICE, plan["upload_id"])
    assert not env.blobs.exists(f"models/{sha256(data)}")
    assert env.leftovers() == []
    assert env.library.upload_status(ALICE, plan["upload_id"])["status"] == "failed"


def test_same_bytes_are_stored_once(env):
    data = model_file(env.part_size, 1.5)
    _, plan = declare(env, data)
    send(env, plan, data)
    first = env.library.complete(ALICE, plan["upload_id"])["model"]
    status, again = declare(env, data, user=BOB, name="bobs.safetensors")
    assert status == 200 and again["parts"] == [] and again["model"]["owner"] == "bob"
    env.library.delete(ALICE, first["id"])
    assert env.blobs.exists(f"models/{sha256(data)}")  # bob's record still uses the bytes
    env.library.delete(BOB, again["model"]["id"])
    assert not env.blobs.exists(f"models/{sha256(data)}")


def test_abort_frees_every_part(env):
    data = model_file(env.part_size)
    _, plan = declare(env, data)
    send(env, plan, data, numbers={1, 2})
    env.library.abort(ALICE, plan["upload_id"])
    assert env.leftovers() == []
    assert env.library.upload_status(ALICE, plan["upload_id"])["status"] == "aborted"
    with pytest.raises(Conflict):
        env.library.complete(ALICE, plan["upload_id"])


@pytest.mark.parametrize(
    ("header", "data", "reason"),
    [
        ({"w": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 2]}}, bytes(2), "dtype"),
        ({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 2]}}, bytes(2), "shape"),
        ({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}, bytes(2), "outside"),
        ([1, 2], b"", "object"),
    ],
)
def test_bad_safetensors_headers_are_refused(env, header, data, reason):
    blob = raw_file(header, data)
    _, plan = declare(env, blob)
    send(env, plan, blob)
    with pytest.raises(UploadRejected, match=reason):
        env.library.complete(ALICE, plan["upload_id"])
    assert not env.blobs.exists(f"models/{sha256(blob)}")


# --- the record stores alone -----------------------------------------------------------------


def record(n: int, owner="alice", visibility="private", type="lora", sha=None) -> ModelRecord:
    return ModelRecord(
        id=f"mdl_{n:04d}", name=f"m{n}.safetensors", type=type, size=10 + n, sha256=sha or f"{n:064x}",
        owner=owner, visibility=visibility, created_at=1_700_000_000 + n, format="safetensors",
    )


def test_names_are_unique_per_owner_and_type(record_store):
    record_store.create_model(record(1))
    with pytest.raises(StoreConflict):
        record_store.create_model(ModelRecord(**{**record(1).__dict__, "id": "mdl_other"}))
    record_store.create_model(ModelRecord(**{**record(1).__dict__, "id": "mdl_bob", "owner": "bob"}))
    assert record_store.find_model("alice", "lora", "m1.safetensors").id == "mdl_0001"
    assert {r.id for r in record_store.models_with_sha256(record(1).sha256)} == {"mdl_0001", "mdl_bob"}
    record_store.delete_model("mdl_0001")
    assert record_store.find_model("alice", "lora", "m1.safetensors") is None
    record_store.create_model(ModelRecord(**{**record(1).__dict__, "id": "mdl_again"}))  # the name is free again


def test_listing_mine_and_public_newest_first_in_pages(record_store):
    for n in range(7):
        record_store.create_model(record(n, owner="alice" if n % 2 else "bob", visibility="public" if n == 4 else "private"))
    seen, cursor = [], None
    while True:
        page, cursor = record_store.list_models("alice", limit=2, cursor=cursor)
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert seen == ["mdl_0005", "mdl_0004", "mdl_0003", "mdl_0001"]
    everyone, _ = record_store.list_models(None, limit=50)
    assert len(everyone) == 7
    bobs, _ = record_store.list_models(None, owner="bob", visibility="private", limit=50)
    assert [r.id for r in bobs] == ["mdl_0006", "mdl_0002", "mdl_0000"]
    named, _ = record_store.list_models("alice", q="m3", limit=50)
    assert [r.id for r in named] == ["mdl_0003"]
    with pytest.raises(ValueError):
        record_store.list_models("alice", cursor="garbage!")
    record_store.set_visibility("mdl_0006", "public")
    assert [r.id for r in record_store.find_visible("alice", "lora", "m6.safetensors")] == ["mdl_0006"]
    assert record_store.find_visible("alice", "lora", "m2.safetensors") == []


def upload(n: int, key: str | None = None) -> Upload:
    return Upload(
        id=f"upl_{n}", owner="alice", name="m.safetensors", type="lora", size=100, sha256="a" * 64,
        visibility="private", format="safetensors", part_size=64, status="uploading", created_at=1, expires_at=2,
        store_handle="h", idempotency_key=key,
    )


def test_uploads_idempotency_and_conditional_updates(record_store):
    first, created = record_store.create_upload(upload(1, key="k"))
    assert created
    again, created = record_store.create_upload(upload(2, key="k"))
    assert not created and again.id == "upl_1"
    assert record_store.get_upload("upl_2") is None
    done = first.moved_to("complete", model_id="mdl_x")
    assert record_store.update_upload(first, done)
    assert not record_store.update_upload(first, first.moved_to("aborted"))  # lost the race
    assert record_store.get_upload("upl_1").status == "complete"
    job = ModelImport(id="imp_1", owner="alice", url="https://x/y", name="y.safetensors", type="lora",
                      visibility="private", format="safetensors", status="importing", created_at=int(time.time()))
    record_store.create_import(job)
    record_store.update_import(job.moved_to("failed", error="nope"))
    assert record_store.get_import("imp_1").error == "nope"


def test_an_import_that_stops_reporting_is_shown_failed_and_a_late_run_does_nothing(record_store, tmp_path):
    """Its process died (a restart, or the import function's 15 minutes ran out): after
    ``stale_after_s`` without progress the import reads as failed, and nothing runs it again."""
    now = [1_000_000.0]
    launched = []
    blobs = FolderBlobStore(tmp_path / "blobs", b"k" * 32)
    library = ModelLibrary(record_store, blobs, blobs, source=object(), launcher=lambda i, u: launched.append((i, u)),
                           stale_after_s=900, clock=lambda: now[0])  # fmt: skip
    started = library.start_import(ALICE, "https://huggingface.co/a/b/resolve/main/s.safetensors?token=t", "s.safetensors", "lora")
    assert started["status"] == "importing"
    assert launched == [(started["import_id"], "https://huggingface.co/a/b/resolve/main/s.safetensors?token=t")]
    now[0] += 899
    assert library.import_status(ALICE, started["import_id"])["status"] == "importing"
    now[0] += 2
    view = library.import_status(ALICE, started["import_id"])
    assert view["status"] == "failed" and "start it again" in view["error"]
    library.run_import(started["import_id"], launched[0][1])  # a late delivery: the import has ended
    assert library.import_status(ALICE, started["import_id"]) == view


def test_an_import_that_cannot_be_launched_ends_at_once_with_the_reason(record_store, tmp_path):
    blobs = FolderBlobStore(tmp_path / "blobs", b"k" * 32)

    def refuse(import_id, url):
        raise RuntimeError("Lambda did not queue import function 'sdc-imports' (ServiceException)")

    library = ModelLibrary(record_store, blobs, blobs, source=object(), launcher=refuse)
    answer = library.start_import(ALICE, "https://civitai.com/api/download/models/1", "c.safetensors", "lora")
    assert answer["status"] == "failed" and "ServiceException" in answer["error"]
    assert library.import_status(ALICE, answer["import_id"])["status"] == "failed"


def test_where_the_store_cannot_hash_on_the_way_in_the_check_runs_in_the_verifier(env):
    """AWS: S3 assembles the parts but cannot give their sha256, and reading gigabytes back does
    not fit in API Gateway's 29 s: completion answers "verifying" and the library function runs
    the check. The folder store knows the sha256 already, so local mode completes at once."""
    now = [5_000_000.0]
    queued: list[str] = []
    library = env.with_library(verifier=queued.append, stale_after_s=900, clock=lambda: now[0])
    env.library = library  # env.put's part sink (local) goes through this library
    data = model_file(env.part_size)
    _, plan = library.declare(ALICE, "v.safetensors", "lora", len(data), sha256(data), "private")
    sent = send(env, plan, data)
    answer = library.complete(ALICE, plan["upload_id"], sent)
    if env.kind == "local":
        assert answer["status"] == "complete" and queued == []
        return
    assert answer["status"] == "verifying" and queued == [plan["upload_id"]]
    assert library.complete(ALICE, plan["upload_id"], sent)["status"] == "verifying"  # asked again
    assert library.upload_status(ALICE, plan["upload_id"])["status"] == "verifying"
    assert queued == [plan["upload_id"]]  # queued once while it is fresh
    now[0] += 901  # the function that had it died: the next look queues it again
    assert library.upload_status(ALICE, plan["upload_id"])["status"] == "verifying"
    assert queued == [plan["upload_id"]] * 2
    library.run_verification(plan["upload_id"])  # the library function
    done = library.upload_status(ALICE, plan["upload_id"])
    assert done["status"] == "complete" and done["model"]["sha256"] == sha256(data)
    library.run_verification(plan["upload_id"])  # a duplicate delivery: nothing changes
    assert library.upload_status(ALICE, plan["upload_id"]) == done
    assert env.leftovers() == []


def test_a_verification_that_finds_other_bytes_fails_the_upload_and_removes_the_object(env):
    if env.kind == "local":
        pytest.skip("the folder store hashes on the way in: mismatches are caught at completion")
    library = env.with_library(verifier=lambda upload_id: None)
    data = model_file(env.part_size)
    _, plan = library.declare(ALICE, "x.safetensors", "lora", len(data), "f" * 64, "private")
    assert library.complete(ALICE, plan["upload_id"], send(env, plan, data))["status"] == "verifying"
    library.run_verification(plan["upload_id"])
    failed = library.upload_status(ALICE, plan["upload_id"])
    assert failed["status"] == "failed" and "sha256" in failed["error"]
    assert not env.blobs.exists("models/" + "f" * 64) and env.leftovers() == []


def test_a_verification_that_cannot_be_queued_is_queued_at_the_next_look(env):
    if env.kind == "local":
        pytest.skip("local mode verifies inline")
    attempts: list[str] = []

    def flaky(upload_id: str) -> None:
        attempts.append(upload_id)
        if len(attempts) == 1:
            raise RuntimeError("Lambda did not queue library function 'sdc-library' (TooManyRequestsException)")

    library = env.with_library(verifier=flaky)
    data = model_file(env.part_size)
    _, plan = library.declare(ALICE, "q.safetensors", "lora", len(data), sha256(data), "private")
    assert library.complete(ALICE, plan["upload_id"], send(env, plan, data))["status"] == "verifying"
    assert library.upload_status(ALICE, plan["upload_id"])["status"] == "verifying"
    assert attempts == [plan["upload_id"]] * 2
