"""The container's S3 adapters against a real moto_server: the model fetcher through the real
model cache, the output store, cancel/skip markers over it, and progress published into it."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import uuid

import pytest
import requests

from inference_container.app import EngineState, create_app
from inference_container.control import JobControl, JobMarkers
from inference_container.engine.types import ModelRef
from inference_container.errors import ModelUnavailable
from inference_container.models.cache import ModelCache
from inference_container.models.fetchers import S3Fetcher
from inference_container.outputs import OutputStoreError, S3OutputStore, open_output_store
from inference_container.s3 import make_client
from inference_container.settings import SettingsError
from tests.fakes.fake_engine import FakeEngine
from tests.support import moto_server as moto
from tests.support.servers import serve_in_thread
from tools.local_processes import free_port


@pytest.fixture(scope="module")
def moto_url():
    yield from moto.serve_or_skip("the S3 adapters")


@pytest.fixture
def aws_env(monkeypatch):
    """Well-formed test credentials in the default chain (what the instance role gives in AWS)."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-value")
    monkeypatch.setenv("AWS_DEFAULT_REGION", moto.REGION)


@pytest.fixture
def s3(moto_url, aws_env):
    return make_client(moto_url)


@pytest.fixture
def bucket(s3):
    name = f"sdcloud-test-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


def _model(s3, bucket: str, data: bytes, name: str = "tiny.safetensors") -> ModelRef:
    sha = hashlib.sha256(data).hexdigest()
    s3.put_object(Bucket=bucket, Key=f"models/{sha}", Body=data)
    return ModelRef(name, f"s3://{bucket}/models/{sha}", sha, len(data))


def _cache(tmp_path, fetcher) -> ModelCache:
    return ModelCache(tmp_path / "cache", 1 << 30, fetchers={"s3": fetcher})


# --- the model fetcher ------------------------------------------------------------------------------


def test_a_model_is_fetched_by_s3_uri_verified_and_then_served_from_the_cache(s3, bucket, tmp_path):
    data = b"tiny checkpoint bytes " * 5000
    ref = _model(s3, bucket, data)
    cache = _cache(tmp_path, S3Fetcher(s3, [bucket]))
    path = cache.get(ref)
    assert path.read_bytes() == data and path.name == ref.sha256
    s3.delete_object(Bucket=bucket, Key=f"models/{ref.sha256}")  # a second get never asks S3 again
    assert cache.get(ref) == path
    assert cache.stats()["hits"] == 1 and cache.stats()["fetched_bytes"] == len(data)


def test_a_missing_key_names_the_object_and_leaves_nothing_in_the_cache(s3, bucket, tmp_path):
    ref = ModelRef("gone.safetensors", f"s3://{bucket}/models/{'a' * 64}", "a" * 64, 10)
    cache = _cache(tmp_path, S3Fetcher(s3))
    with pytest.raises(ModelUnavailable) as caught:
        cache.get(ref)
    assert caught.value.message == f"model 'gone.safetensors': s3://{bucket}/models/{'a' * 64} does not exist"
    assert not cache.path_for(ref).exists()


def test_bytes_that_do_not_hash_to_the_reference_are_refused(s3, bucket, tmp_path):
    good = _model(s3, bucket, b"the real model")
    s3.put_object(Bucket=bucket, Key=f"models/{good.sha256}", Body=b"the evil model")  # same size, other bytes
    cache = _cache(tmp_path, S3Fetcher(s3))
    with pytest.raises(ModelUnavailable, match="does not match the reference sha256"):
        cache.get(good)
    assert not cache.path_for(good).exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [".locks"]  # no partial download left


def test_a_size_that_differs_from_the_reference_is_refused_before_downloading(s3, bucket, tmp_path):
    ref = _model(s3, bucket, b"0123456789")
    wrong = ModelRef(ref.name, ref.uri, ref.sha256, 11)
    with pytest.raises(ModelUnavailable, match="is not the 11 bytes the job says"):
        _cache(tmp_path, S3Fetcher(s3)).get(wrong)


def test_a_bucket_outside_the_model_buckets_is_refused_without_asking_s3(s3, bucket, tmp_path):
    ref = _model(s3, bucket, b"model")
    fetcher = S3Fetcher(s3, ["sdcloud-models"])
    with pytest.raises(ModelUnavailable) as caught:
        _cache(tmp_path, fetcher).get(ref)
    assert "SDCLOUD_MODEL_BUCKETS: sdcloud-models" in caught.value.message
    assert f"bucket {bucket!r} is not one of them" in caught.value.message


@pytest.mark.parametrize("uri", ["s3://", "s3://Bad_Bucket/key", "s3://bucket-ok/", "s3://bucket-ok/folder/"])
def test_a_malformed_s3_uri_says_what_is_wrong(s3, uri):
    with pytest.raises(ModelUnavailable, match="s3:// URI must"):
        S3Fetcher(s3).size(uri)


def test_access_denied_names_bucket_key_and_permission_never_the_credentials(s3):
    # moto does not enforce IAM, so S3's 403 answer is stubbed (botocore's Stubber, on the real client).
    from botocore.stub import Stubber

    with Stubber(s3) as stub:
        stub.add_client_error("head_object", service_error_code="403", http_status_code=403,
                              service_message="Forbidden")
        with pytest.raises(ModelUnavailable) as caught:
            S3Fetcher(s3).size("s3://private-models/models/abc")
    message = caught.value.message
    assert "s3://private-models/models/abc" in message and "s3:GetObject" in message and "denied" in message
    assert "testing-key-id" not in message and "testing-secret-value" not in message


class _CuttingProxy:
    """A TCP proxy in front of moto that drops the first connection carrying more than ``cut_at``
    bytes back to the client: a network that fails in the middle of a model download."""

    def __init__(self, target_port: int, cut_at: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._cut_at = cut_at
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, may_cut: bool) -> None:
        sent = 0
        try:
            while chunk := source.recv(65536):
                if may_cut and self.cuts == 0 and sent + len(chunk) > self._cut_at:
                    sink.sendall(chunk[: self._cut_at - sent])
                    self.cuts += 1
                    break
                sink.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._listener.close()


def test_a_download_cut_midway_resumes_from_the_byte_it_reached(s3, bucket, moto_url, tmp_path):
    data = bytes(range(256)) * (3 * 4096)  # 3 MiB
    ref = _model(s3, bucket, data)
    proxy = _CuttingProxy(int(moto_url.rsplit(":", 1)[1]), cut_at=1_000_000)
    try:
        fetcher = S3Fetcher(make_client(proxy.url))
        with fetcher.open(ref.uri) as stream:
            got = b"".join(iter(lambda: stream.read(1 << 20), b""))
            resumes = stream.resumes
    finally:
        proxy.close()
    assert proxy.cuts == 1 and resumes == 1
    assert hashlib.sha256(got).hexdigest() == ref.sha256


# --- the output store -------------------------------------------------------------------------------


def test_put_replaces_get_answers_none_for_a_missing_key_exists_is_a_head(s3, bucket):
    store = open_output_store(f"s3://{bucket}/base/", s3_client=s3)
    assert isinstance(store, S3OutputStore)
    assert store.get("jobs/a/result.json") is None and not store.exists("jobs/a/result.json")
    store.put("jobs/a/result.json", b'{"v": 1}', "application/json")
    store.put("jobs/a/result.json", b'{"v": 2}', "application/json")
    assert store.get("jobs/a/result.json") == b'{"v": 2}' and store.exists("jobs/a/result.json")
    head = s3.head_object(Bucket=bucket, Key="base/jobs/a/result.json")  # under the base prefix
    assert head["ContentType"] == "application/json"


@pytest.mark.parametrize("key", ["../escape", "jobs/../x", "/abs", "jobs//x", ""])
def test_keys_that_would_leave_the_prefix_are_refused(s3, bucket, key):
    with pytest.raises(ValueError, match="output key"):
        S3OutputStore(s3, bucket, "base").put(key, b"x", "text/plain")


def test_a_missing_bucket_is_an_error_naming_it(s3):
    store = S3OutputStore(s3, "no-such-bucket-here")
    with pytest.raises(OutputStoreError, match="bucket 'no-such-bucket-here' does not exist"):
        store.put("jobs/a/result.json", b"{}", "application/json")


@pytest.mark.parametrize("uri", ["s3://", "s3://UPPER/x", "gs://bucket"])
def test_a_bad_output_store_setting_is_a_settings_error(uri):
    with pytest.raises(SettingsError, match="SDCLOUD_OUTPUT_STORE"):
        open_output_store(uri, s3_client=object())


def test_a_cancel_marker_written_with_boto3_interrupts_and_a_skip_marker_skips(s3, bucket):
    store = S3OutputStore(s3, bucket)
    control = JobControl("j", 3, JobMarkers(store, "jobs/j/", interval_s=0))
    assert control.should_start() and control.poll(0) == "continue"
    s3.put_object(Bucket=bucket, Key="jobs/j/skip", Body=json.dumps({"iteration": 1}).encode())
    assert control.poll(0) == "continue" and control.poll(1) == "skip"
    s3.put_object(Bucket=bucket, Key="jobs/j/cancel", Body=b'{"action": "interrupt"}')
    assert control.poll(2) == "interrupt"


# --- progress in the output store -------------------------------------------------------------------


def _ready() -> EngineState:
    state = EngineState()
    state.ready.set()
    return state


def _wait_for(check, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} never happened")


def test_progress_json_appears_during_a_job_and_holds_the_final_state_when_it_answers(s3, bucket):
    engine = FakeEngine(gated=True)
    store = S3OutputStore(s3, bucket)
    app = create_app(engine, max_waiting=1, max_body_bytes=10_000, state=_ready(), output_store=store,
                     marker_poll_s=0, progress_publish_s=0)
    with serve_in_thread(app) as url:
        answer: dict = {}
        job = {"id": "p", "steps": 5, "n_iter": 2, "output": {"prefix": "jobs/p/"}}
        post = threading.Thread(target=lambda: answer.update(
            requests.post(f"{url}/invocations", json=job, timeout=60).json()))
        post.start()
        engine.allow(3)
        engine.wait_for_polls(3)

        def sampling_progress():
            body = store.get("jobs/p/progress.json")
            document = json.loads(body) if body else None
            return document if document and document["phase"] == "sampling" and document["step"] >= 2 else None

        during = _wait_for(sampling_progress, "a sampling progress.json")
        assert during["job_id"] == "p" and during["steps"] == 10 and during["n_iter"] == 2
        live = requests.get(f"{url}/progress", params={"job_id": "p"}, timeout=5).json()
        assert set(during) == set(live) | {"updated_at"}  # GET /progress's document, stamped when written
        engine.allow(7)
        post.join(60)
        assert answer["interrupted"] is False
        final = json.loads(store.get("jobs/p/progress.json"))
        assert final.pop("updated_at") >= during["updated_at"]
        assert final == requests.get(f"{url}/progress", params={"job_id": "p"}, timeout=5).json()
        assert (final["phase"], final["step"], final["fraction"]) == ("done", 10, 1.0)


def test_jobs_without_an_output_prefix_publish_nothing(s3, bucket):
    store = S3OutputStore(s3, bucket)
    app = create_app(FakeEngine(), max_waiting=1, max_body_bytes=10_000, state=_ready(), output_store=store)
    with serve_in_thread(app) as url:
        assert requests.post(f"{url}/invocations", json={"id": "plain"}, timeout=30).status_code == 200
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
