"""The one settings object: explicit argument, then ``SDCLOUD_*`` environment variable, then default."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from middleware.adapters.sagemaker_compute import SageMakerTarget, parse_sagemaker_endpoints
from middleware.domain.generation_rules import MAX_BODY_BYTES
from middleware.endpoint_urls import ContainerEndpoint, parse_container_endpoints

# Settings that also have a command-line flag (middleware/entrypoints/local.py).
_FLAGS = ("host", "port", "data_dir", "models_dir", "container_url", "public_base_url")
# Settings whose value an error message must never repeat.
_SECRETS = ("cursor_secret",)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SDCLOUD_", extra="ignore")

    mode: str = Field("local", description="local (SQLite, folder, local container) or aws")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Path("data")
    models_dir: Path | None = Field(None, description="checkpoints folder; default <data-dir>/models")
    container_url: str = Field(
        "http://127.0.0.1:8080",
        description="one container URL (endpoint 'local'), or name=url,name=url,... for several",
    )
    public_base_url: str | None = Field(None, description="base of signed URLs; default: the request's")
    endpoint_name: str = Field("local", description="the endpoint's name when container_url is one URL")

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
    cancel_wait_s: float = Field(
        30.0, gt=0, description="how long a local worker waits for the container's answer to a cancel"
    )
    cancel_timeout_s: float = Field(
        60.0, gt=0, description="the sweeper ends a cancel the container never answered after this long"
    )

    # --- AWS mode (mode=aws): names come from the stack's outputs (template.yaml) -------------
    aws_region: str = Field("us-east-1", min_length=1, description="region of the tables and the bucket")
    jobs_table: str = Field("sdcloud-jobs", min_length=3, max_length=255)
    users_table: str = Field("sdcloud-users", min_length=3, max_length=255)
    api_keys_table: str = Field("sdcloud-api-keys", min_length=3, max_length=255)
    blob_bucket: str = Field(
        "sdcloud-blobs", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="the S3 bucket"
    )
    aws_endpoint_url: str | None = Field(None, description="endpoint of every AWS service (tests: moto)")
    dynamodb_endpoint_url: str | None = Field(None, description="DynamoDB endpoint; wins over aws_endpoint_url")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint; wins over aws_endpoint_url")
    multipart_threshold_bytes: int = Field(
        64 * 1024 * 1024, ge=5 * 1024 * 1024, description="blobs this large or larger go to S3 in parts"
    )
    multipart_part_bytes: int = Field(16 * 1024 * 1024, ge=5 * 1024 * 1024, le=5 * 1024**3)
    cursor_secret: SecretStr | None = Field(
        None, min_length=32, description="signs list cursors (any 32+ characters); unsigned but validated without"
    )
    sagemaker_endpoints: str = Field(
        "", description="name=async:endpoint-name,name2=realtime:endpoint-name2; the first is the default"
    )
    invocation_timeout_s: int = Field(3600, ge=1, le=3600, description="SageMaker async InvocationTimeoutSeconds")
    request_ttl_s: int = Field(21600, ge=60, le=21600, description="SageMaker async RequestTTLSeconds")
    sagemaker_endpoint_url: str | None = Field(None, description="SageMaker endpoint (tests: moto)")
    sagemaker_runtime_endpoint_url: str | None = Field(None, description="SageMaker runtime endpoint (tests)")
    admin_key_secret_arn: str | None = Field(
        None, description="Secrets Manager secret that receives the first admin's API key"
    )
    # Endpoints created through the API (POST /v1/endpoints): the stack's outputs.
    sagemaker_role_arn: str | None = Field(None, description="execution role of the SageMaker models we create")
    success_topic_arn: str | None = Field(None, description="SNS topic of async successes")
    error_topic_arn: str | None = Field(None, description="SNS topic of async errors")
    sagemaker_image_uri: str | None = Field(None, description="engine image used when a create names none")
    realtime_function_name: str | None = Field(
        None,
        max_length=170,
        description="Lambda function that runs jobs of real-time endpoints (the stack's RealtimeFunction); "
        "unset: a worker thread of this process runs them (a long-running server, not Lambda)",
    )

    # --- the model library (issue 9) ---------------------------------------------------------
    upload_part_bytes: int = Field(
        64 * 1024 * 1024, ge=64 * 1024 * 1024, le=128 * 1024 * 1024,
        description="model upload part size (64-128 MiB; tests pass smaller parts to the service directly)",
    )
    model_max_bytes: int = Field(20 * 1024**3, gt=0, description="largest model an upload or import may store")
    abandoned_upload_s: float = Field(
        2 * 24 * 3600, gt=0,
        description="local mode frees the parts of an upload untouched this long (S3: the bucket's lifecycle rule)",
    )
    upload_url_ttl_s: int = Field(24 * 3600, ge=60, le=7 * 24 * 3600, description="life of part URLs")
    library_function_name: str | None = Field(
        None,
        max_length=170,
        description="AWS: Lambda function that runs imports by URL and upload checks (the stack's "
        "LibraryFunction); unset: imports are refused and uploads are checked inline",
    )
    import_s3_buckets: str = Field(
        "",
        max_length=2000,
        description="AWS: comma-separated buckets that s3:// imports may read (never the stack's own); empty: none",
    )
    import_allow_private_hosts: bool = Field(
        False, description="tests only: let imports reach loopback / private hosts and plain http://"
    )
    models_table: str = Field("sdcloud-models", min_length=3, max_length=255, description="model library table")

    admin_user: str = "admin"
    log_level: str = "info"
    access_log: bool = False

    @property
    def import_buckets(self) -> frozenset[str]:
        return frozenset(b.strip() for b in self.import_s3_buckets.split(",") if b.strip())

    @model_validator(mode="after")
    def _imports_never_read_the_stacks_bucket(self) -> Settings:
        if self.blob_bucket and self.blob_bucket in self.import_buckets:
            raise ValueError(
                "SDCLOUD_IMPORT_S3_BUCKETS must not name the stack's own bucket (SDCLOUD_BLOB_BUCKET): "
                "every user's jobs and models are in it"
            )
        return self

    @model_validator(mode="after")
    def _container_url_parses(self) -> Settings:
        # After the fields: a single URL takes its name from endpoint_name.
        parse_container_endpoints(self.container_url, self.endpoint_name)
        return self

    @model_validator(mode="after")
    def _sagemaker_endpoints_parse(self) -> Settings:
        if self.sagemaker_endpoints.strip():
            parse_sagemaker_endpoints(self.sagemaker_endpoints)
        return self

    @model_validator(mode="after")
    def _multipart_fits(self) -> Settings:
        if self.multipart_threshold_bytes < self.multipart_part_bytes:
            raise ValueError(
                "SDCLOUD_MULTIPART_THRESHOLD_BYTES must be at least SDCLOUD_MULTIPART_PART_BYTES"
            )
        return self

    @property
    def container_endpoints(self) -> tuple[ContainerEndpoint, ...]:
        """The configured inference containers, in order; the first is the default endpoint."""
        return parse_container_endpoints(self.container_url, self.endpoint_name)

    @property
    def sagemaker_targets(self) -> tuple[tuple[str, SageMakerTarget], ...]:
        """The configured SageMaker endpoints by name, in order; the first is the default."""
        return parse_sagemaker_endpoints(self.sagemaker_endpoints)

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin-api-key"


def describe_settings_error(exc: ValidationError) -> str:
    """One line that names each bad setting the way the operator gave it, and what is wrong."""
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        message = str(error.get("msg", "invalid value"))
        if error.get("type") == "value_error":
            # Our own validators already name the setting and say what to fix.
            problems.append(message.removeprefix("Value error, "))
            continue
        loc = [str(part) for part in error.get("loc", ()) if isinstance(part, str)]
        field = loc[0] if loc else ""
        where = f"SDCLOUD_{field.upper()}" if field else "settings"
        if field in _FLAGS:
            where = f"--{field.replace('_', '-')} / {where}"
        shown = "(hidden)" if field in _SECRETS else repr(error.get("input"))
        if len(shown) > 60:
            shown = shown[:57] + "..."
        problems.append(f"{where}: {message} (got {shown})" if shown != "(hidden)" else f"{where}: {message}")
    return "; ".join(problems) or "invalid settings"
