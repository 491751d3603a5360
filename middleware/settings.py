"""The one settings object: explicit argument, then ``SDCLOUD_*`` environment variable, then default."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from middleware.domain.generation_rules import MAX_BODY_BYTES


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SDCLOUD_", extra="ignore")

    mode: str = Field("local", description="local (SQLite, folder, local container) or aws")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Path("data")
    models_dir: Path | None = Field(None, description="checkpoints folder; default <data-dir>/models")
    container_url: str = "http://127.0.0.1:8080"
    public_base_url: str | None = Field(None, description="base of signed URLs; default: the request's")
    endpoint_name: str = "local"

    max_body_bytes: int = Field(MAX_BODY_BYTES, gt=0)
    signed_url_ttl_s: int = Field(3600, gt=0)
    worker_silence_s: float = Field(120.0, gt=0, description="fail running jobs silent this long")
    sweep_interval_s: float = Field(5.0, gt=0)
    heartbeat_interval_s: float = Field(2.0, gt=0)
    compute_workers: int = Field(1, ge=1, le=64)
    progress_poll_s: float = Field(0.25, gt=0)
    connect_retries: int = Field(3, ge=0)
    retry_backoff_s: float = Field(0.5, ge=0)
    request_timeout_s: float = Field(3600.0, gt=0)
    busy_retry_s: float = Field(300.0, ge=0)

    admin_user: str = "admin"
    log_level: str = "info"
    access_log: bool = False

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin-api-key"
