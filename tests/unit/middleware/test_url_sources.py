"""Import sources refuse what they must: private hosts, and schemes other than https / s3."""

from __future__ import annotations

import pytest

from middleware.adapters.url_sources import UrlModelSource, check_host


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "169.254.169.254", "10.1.2.3", "192.168.0.1", "localhost"])
def test_private_and_loopback_hosts_are_refused(host):
    with pytest.raises(ValueError, match="private, loopback or link-local"):
        check_host(host, 443)
    check_host(host, 443, allow_private=True)  # the test-only setting


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://example.com/x", "ftp://example.com/x"])
def test_other_schemes_are_refused(url):
    with pytest.raises(ValueError, match="only https:// and s3://"):
        UrlModelSource().open(url)


def test_s3_needs_a_client_and_a_key():
    with pytest.raises(ValueError, match="AWS mode"):
        UrlModelSource().open("s3://bucket/key")


@pytest.mark.parametrize("host", ["::ffff:127.0.0.1", "::ffff:10.0.0.7", "0.0.0.0"])
def test_mapped_and_unspecified_addresses_are_refused(host):
    with pytest.raises(ValueError, match="private, loopback or link-local"):
        check_host(host, 443)


def test_a_name_that_rebinds_to_a_private_address_is_refused_at_connect(monkeypatch):
    """The first resolution said public (the check passed); the connection reached loopback."""
    from middleware.adapters import url_sources
    from tests.support.file_server import serving

    checked = []
    monkeypatch.setattr(url_sources, "check_host", lambda host, port, **kw: checked.append(host))
    with serving({"/m.safetensors": b"secret bytes of the internal network"}) as base:
        source = UrlModelSource(allow_http=True)  # private hosts not allowed
        with pytest.raises(ValueError, match="led to a private, loopback or link-local address"):
            source.open(f"{base}/m.safetensors")
    assert checked == ["127.0.0.1"]


def test_with_private_hosts_allowed_the_connection_is_not_vetted():
    from tests.support.file_server import serving

    with serving({"/m.safetensors": b"bytes"}) as base:
        stream, length = UrlModelSource(allow_http=True, allow_private_hosts=True).open(f"{base}/m.safetensors")
        with stream:
            assert (stream.read(), length) == (b"bytes", 5)


def test_s3_imports_read_only_the_buckets_the_operator_named():
    from botocore.stub import Stubber

    from tests.contract.test_sagemaker_compute import _offline_client

    s3 = _offline_client("s3")
    source = UrlModelSource(s3_client=s3, s3_buckets=frozenset({"team-models"}))
    with pytest.raises(ValueError, match="does not import from bucket 'sdcloud-blobs'"):
        source.open("s3://sdcloud-blobs/jobs/someone-elses/images/0.png")
    with Stubber(s3) as stub:
        stub.add_response("get_object", {"Body": _body(b"weights"), "ContentLength": 7},
                          {"Bucket": "team-models", "Key": "lora/style.safetensors"})  # fmt: skip
        stream, length = source.open("s3://team-models/lora/style.safetensors")
    assert (stream.read(), length) == (b"weights", 7)


def _body(data: bytes):
    import io

    from botocore.response import StreamingBody

    return StreamingBody(io.BytesIO(data), len(data))
