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
KEY_NOT_SAVED = "key given at start-up (not saved)"
NO_KEY = "no API key"

ClientFactory = Callable[[str, str], SDCloudClient]


def quick_client(url: str, key: str) -> SDCloudClient:
    # a connection test should answer fast and not retry for long
    return SDCloudClient(url, key, timeout=(3.05, 10), retries=0)


def key_status(store: SettingsStore) -> str:
    """What the UI may say about the key: where it comes from, never the key itself."""
    if not store.current().has_key:
        return NO_KEY
    return KEY_SAVED if store.key_is_saved else KEY_NOT_SAVED


@dataclass(frozen=True)
class SaveResult:
    message: str  # status HTML
    key_status: str
    key_outcome: str = "unchanged"  # saved | unchanged | cleared


def key_outcome(before_key: str, before_saved: bool, after_key: str, after_saved: bool) -> str:
    """What a Save did to the key file: "saved" only when the file now holds a key it did not."""
    if before_key and not after_key:
        return "cleared"
    if after_saved and (not before_saved or after_key != before_key):
        return "saved"
    return "unchanged"


_KEY_WORDS = {
    "saved": "the API key was saved",
    "unchanged": "the API key is unchanged",
    "cleared": "the saved API key was removed",
}


def save_connection(
    store: SettingsStore, api_url: str, api_key: str | None, clear_key: bool = False
) -> SaveResult:
    """Validate and persist; an empty key field keeps the key, ``clear_key`` removes it. The
    message says exactly what happened to the URL and to the key."""
    try:
        url = validate_api_url(api_url)
    except ValueError as exc:
        return SaveResult(status_html(f"API URL: {exc} (nothing was saved)", "error"), key_status(store))
    before = store.current()
    before_saved = store.key_is_saved
    try:
        after = store.save(url, api_key, clear_key=clear_key)
    except OSError as exc:
        return SaveResult(
            status_html(f"Could not write {store.path}: {exc.strerror} (nothing was saved)", "error"),
            key_status(store),
        )
    outcome = key_outcome(before.api_key, before_saved, after.api_key, store.key_is_saved)
    url_words = "API URL unchanged" if after.api_url == before.api_url else f"API URL saved: {after.api_url}"
    text = f"{url_words}; {_KEY_WORDS[outcome]}"
    if not after.api_key:
        text += " (no API key is set now)"
    return SaveResult(status_html(text, "done"), key_status(store), outcome)


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
