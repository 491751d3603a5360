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
