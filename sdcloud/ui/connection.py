"""The Settings tab without gradio: save the API URL / key, and test a connection."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..client import SDCloudClient, validate_api_url
from ..errors import SDCloudError
from ..settings import SettingsStore
from .messages import describe_error, status_html

log = logging.getLogger("sdcloud.ui")

KEY_SAVED = "key saved"
NO_KEY = "no API key saved"

ClientFactory = Callable[[str, str], SDCloudClient]


def quick_client(url: str, key: str) -> SDCloudClient:
    # a connection test should answer fast and not retry for long
    return SDCloudClient(url, key, timeout=(3.05, 10), retries=0)


def key_status(store: SettingsStore) -> str:
    """What the UI may say about the key: whether one is saved, never the key itself."""
    return KEY_SAVED if store.current().has_key else NO_KEY


@dataclass(frozen=True)
class SaveResult:
    message: str  # status HTML
    key_status: str


def save_connection(store: SettingsStore, api_url: str, api_key: str | None) -> SaveResult:
    """Validate and persist; an empty key field keeps the saved key."""
    try:
        url = validate_api_url(api_url)
    except ValueError as exc:
        return SaveResult(status_html(f"API URL: {exc}", "error"), key_status(store))
    try:
        store.save(url, api_key)
    except OSError as exc:
        return SaveResult(
            status_html(f"Could not write {store.path}: {exc.strerror}", "error"), key_status(store)
        )
    saved_key = bool((api_key or "").strip())
    text = f"Saved: {url}" + (" and a new API key (key saved)" if saved_key else "")
    return SaveResult(status_html(text, "done"), key_status(store))


def check_connection(
    store: SettingsStore, api_url: str, api_key: str | None, factory: ClientFactory = quick_client
) -> str:
    """Ping (no key needed) then /me (key checked); status HTML saying what works."""
    url = (api_url or "").strip() or store.current().api_url
    key = (api_key or "").strip() or store.current().api_key
    try:
        client = factory(url, key)
    except ValueError as exc:
        return status_html(f"API URL: {exc}", "error")
    try:
        info = client.ping()
    except SDCloudError as exc:
        return status_html(describe_error(exc), "error")
    where = f"SD Cloud {info.version or '?'} ({info.mode or 'unknown'} mode) at {client.base_url}"
    if not key:
        return status_html(f"Reached {where}, but no API key is set", "error")
    try:
        user = client.me()
    except SDCloudError as exc:
        return status_html(f"Reached {where}, but: {describe_error(exc)}", "error")
    finally:
        client.close()
    return status_html(f"Connected to {where} as {user.user} ({user.role})", "done")
