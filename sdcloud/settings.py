"""Where the extension finds the middleware: API URL + API key, kept in a 0600 JSON file.

Values given at start-up (command line, environment) override the file in memory; saving from the
Settings tab writes the file and wins from then on. The key is never logged or shown again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .client import SDCloudClient
from .errors import NotConfigured

log = logging.getLogger("sdcloud.settings")


@dataclass(frozen=True)
class Settings:
    api_url: str = ""
    api_key: str = field(default="", repr=False)

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)


def default_settings_path() -> Path:
    """$XDG_CONFIG_HOME/sdcloud/ui-settings.json (~/.config by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "sdcloud" / "ui-settings.json"


def _write_private(path: Path, text: str) -> None:
    """Write atomically, readable by the owner only, from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))  # mkstemp uses 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class SettingsStore:
    """Thread-safe holder of the current Settings, persisted to `path`."""

    def __init__(self, path: str | os.PathLike[str], overrides: Settings | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        stored = self._load()
        self._saved_key = stored.api_key  # what the file holds: the UI says "saved" only for this
        if overrides is not None:
            stored = Settings(
                api_url=overrides.api_url or stored.api_url,
                api_key=overrides.api_key or stored.api_key,
            )
        self._current = stored

    def _load(self) -> Settings:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Settings()
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable settings file %s (%s)", self.path, type(exc).__name__)
            return Settings()
        if not isinstance(data, dict):
            return Settings()
        return Settings(api_url=str(data.get("api_url") or ""), api_key=str(data.get("api_key") or ""))

    def current(self) -> Settings:
        with self._lock:
            return self._current

    @property
    def key_is_saved(self) -> bool:
        """Whether the settings file holds the key in use (not only a start-up override)."""
        with self._lock:
            return bool(self._saved_key) and self._saved_key == self._current.api_key

    def save(self, api_url: str, api_key: str | None = None, clear_key: bool = False) -> Settings:
        """Persist the URL and, when given (non-empty), a new key; an empty key keeps the saved one.

        ``clear_key`` removes the key from the file and from memory (a start-up key included)."""
        url = (api_url or "").strip().rstrip("/")
        key = (api_key or "").strip()
        with self._lock:
            new_key = "" if clear_key else (key or self._current.api_key)
            updated = replace(self._current, api_url=url, api_key=new_key)
            _write_private(
                self.path, json.dumps({"api_url": updated.api_url, "api_key": updated.api_key}, indent=2)
            )
            self._current = updated
            self._saved_key = updated.api_key
        return updated


class ClientProvider:
    """`get_client()` for the UI builders: one client per (url, key), rebuilt when settings change."""

    def __init__(
        self,
        store: SettingsStore,
        factory: Callable[[str, str], SDCloudClient] = SDCloudClient,
    ) -> None:
        self._store = store
        self._factory = factory
        self._lock = threading.Lock()
        self._cached: tuple[Settings, SDCloudClient] | None = None

    def __call__(self) -> SDCloudClient:
        settings = self._store.current()
        if not settings.api_url:
            raise NotConfigured("No API URL is set: enter it in the Settings tab and press Save")
        with self._lock:
            if self._cached is not None and self._cached[0] == settings:
                return self._cached[1]
            try:
                client = self._factory(settings.api_url, settings.api_key)
            except ValueError as exc:
                raise NotConfigured(f"Settings: {exc}") from None
            self._cached = (settings, client)
            return client
