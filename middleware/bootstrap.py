"""The one place where adapters are chosen from settings and wired into services and the API."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from middleware.adapters.compute_router import ComputeRouter
from middleware.adapters.folder_models import FolderModelCatalog
from middleware.adapters.fs_blobs import FolderBlobStore, load_or_create_secret
from middleware.adapters.inprocess_notifier import InProcessNotifier
from middleware.adapters.local_compute import LocalCompute
from middleware.adapters.local_endpoints import LocalEndpointAdmin
from middleware.adapters.sqlite_db import SqliteDatabase
from middleware.adapters.sqlite_jobs import SqliteJobStore
from middleware.adapters.sqlite_models import SqliteModelLibrary
from middleware.adapters.sqlite_users import SqliteUserStore
from middleware.adapters.url_sources import UrlModelSource
from middleware.api.app import create_app
from middleware.services.async_completion import AsyncCompletion
from middleware.services.auth import AuthService, ensure_admin
from middleware.services.blobs import BlobAccess
from middleware.services.bundle import Services
from middleware.services.catalog import CatalogService
from middleware.services.endpoints import EndpointService
from middleware.services.inferences import InferenceService
from middleware.services.job_events import JobEventHandler
from middleware.services.library_catalog import LibraryCatalog
from middleware.services.model_library import ModelLibrary
from middleware.services.progress_relay import ProgressRelay
from middleware.services.recovery import RecoveryReport, recover_jobs
from middleware.services.sweeper import JobSweeper
from middleware.settings import Settings

if TYPE_CHECKING:
    from middleware.adapters.aws_clients import AwsClients
    from middleware.adapters.dynamodb_jobs import DynamoDbJobStore
    from middleware.adapters.dynamodb_users import DynamoDbUserStore
    from middleware.adapters.s3_blobs import S3BlobStore
    from middleware.adapters.sagemaker_compute import EndpointDirectory, SageMakerCompute

log = logging.getLogger("middleware")


# Abandoned uploads' parts are looked for hourly (on S3 a lifecycle rule does it).
_UPLOAD_SWEEP_INTERVAL_S = 3600.0


class _Periodic:
    """Runs ``fn`` every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, name: str, interval: float, fn) -> None:  # noqa: ANN001
        self._stop = threading.Event()
        self._interval = interval
        self._fn = fn
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._fn()
            except Exception:  # noqa: BLE001 - a failed sweep must not end the sweeper
                log.exception("periodic task %s failed", self._thread.name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


@dataclass
class LocalRuntime:
    """Everything local mode runs: the app plus the background workers it relies on."""

    settings: Settings
    app: FastAPI
    services: Services
    db: SqliteDatabase
    users: SqliteUserStore
    jobs: SqliteJobStore
    compute: ComputeRouter
    sweeper: JobSweeper
    catalog: FolderModelCatalog
    blobs: FolderBlobStore | None = None
    _background: list[_Periodic] = field(default_factory=list)
    recovery: RecoveryReport | None = None

    def start(self) -> None:
        """Start workers, recover jobs left by a previous run, start the sweeper."""
        self.compute.start()
        self.recovery = recover_jobs(
            self.jobs, self.services.events, self.compute, endpoint_names=self.compute.names
        )
        sweeper = _Periodic("sdcloud-sweeper", self.settings.sweep_interval_s, self.sweeper.sweep_once)
        sweeper.start()
        self._background.append(sweeper)
        if self.blobs is not None:
            uploads = _Periodic("sdcloud-upload-sweeper", _UPLOAD_SWEEP_INTERVAL_S, self._sweep_uploads)
            uploads.start()
            self._background.append(uploads)
        # Hash new checkpoints now rather than on the first request that names them.
        threading.Thread(target=self._warm_catalog, name="sdcloud-model-hashes", daemon=True).start()

    def _sweep_uploads(self) -> None:
        assert self.blobs is not None
        removed = self.blobs.sweep_stale_multipart(self.settings.abandoned_upload_s)
        if removed:
            log.info("freed the parts of %d abandoned upload(s)", len(removed))

    def _warm_catalog(self) -> None:
        try:
            self.catalog.list()
        except Exception:  # noqa: BLE001 - listing again later reports the problem
            log.exception("could not index the models folder")

    def stop(self) -> None:
        for task in self._background:
            task.stop()
        self._background.clear()
        self.compute.stop()
        self.db.close()


def _url_source(settings: Settings, s3_client: Any = None) -> UrlModelSource:
    """Where imports read from, in both modes (s3:// needs the client: AWS mode only)."""
    return UrlModelSource(
        s3_client=s3_client, s3_buckets=settings.import_buckets,
        allow_private_hosts=settings.import_allow_private_hosts, allow_http=settings.import_allow_private_hosts,
    )


def build_local(settings: Settings) -> LocalRuntime:
    # Parsed first: a bad container setting is reported before anything is created on disk.
    container_endpoints = settings.container_endpoints
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    settings.resolved_models_dir.mkdir(parents=True, exist_ok=True)
    db = SqliteDatabase(data_dir / "sdcloud.db")
    jobs = SqliteJobStore(db)
    users = SqliteUserStore(db)
    # The inference container writes each job's outputs here too (SDCLOUD_OUTPUT_STORE=file://...).
    blobs = FolderBlobStore(data_dir / "blobs", load_or_create_secret(data_dir / "blob-signing-key"))
    catalog = FolderModelCatalog(settings.resolved_models_dir, db)
    library_store = SqliteModelLibrary(db)
    # The engine reads library models straight from the blob folder (SDCLOUD_MODEL_ROOTS
    # includes <data>/blobs/models).
    library_catalog = LibraryCatalog(
        catalog, library_store, lambda sha256: (blobs.root / "models" / sha256).as_uri()
    )
    library = ModelLibrary(
        library_store,
        blobs,
        blobs,
        operator_catalog=catalog,
        receiver=blobs,
        source=_url_source(settings),
        part_bytes=settings.upload_part_bytes,
        url_ttl_s=settings.upload_url_ttl_s,
        max_bytes=settings.model_max_bytes,
        allow_http_imports=settings.import_allow_private_hosts,
    )
    notifier = InProcessNotifier()
    events = JobEventHandler(jobs, blobs, notifier, heartbeat_interval_s=settings.heartbeat_interval_s)
    # One LocalCompute, with its own workers, per configured container; the router picks by name.
    compute = ComputeRouter(
        [
            (
                endpoint.name,
                LocalCompute(
                    endpoint.url,
                    blobs,
                    events,
                    endpoint_name=endpoint.name,
                    workers=settings.compute_workers,
                    poll_interval_s=settings.progress_poll_s,
                    connect_retries=settings.connect_retries,
                    retry_backoff_s=settings.retry_backoff_s,
                    request_timeout_s=settings.request_timeout_s,
                    busy_retry_s=settings.busy_retry_s,
                    cancel_wait_s=settings.cancel_wait_s,
                ),
            )
            for endpoint in container_endpoints
        ]
    )
    services = Services(
        auth=AuthService(users, users),
        inferences=InferenceService(
            jobs, blobs, library_catalog, compute, notifier, events, endpoint_names=compute.names
        ),
        events=events,
        catalog=CatalogService(catalog, compute),
        blobs=BlobAccess(blobs, settings.signed_url_ttl_s),
        mode="local",
        endpoints=EndpointService(LocalEndpointAdmin(compute)),
        library=library,
    )
    sweeper = JobSweeper(
        jobs,
        events,
        compute,
        silence_s=settings.worker_silence_s,
        cancel_timeout_s=settings.cancel_timeout_s,
    )
    app = create_app(
        services, public_base_url=settings.public_base_url, max_body_bytes=settings.max_body_bytes
    )
    return LocalRuntime(
        settings=settings,
        app=app,
        services=services,
        db=db,
        users=users,
        jobs=jobs,
        compute=compute,
        sweeper=sweeper,
        catalog=catalog,
        blobs=blobs,
    )


@dataclass
class AwsStorage:
    """AWS mode's records and blobs (the compute and the entry points come in a later slice)."""

    jobs: DynamoDbJobStore
    users: DynamoDbUserStore
    blobs: S3BlobStore


def build_aws_storage(settings: Settings, session: Any, clients: AwsClients | None = None) -> AwsStorage:
    """The DynamoDB and S3 adapters, on clients made from ``session`` (a ``boto3.Session``: the
    Lambda role's in AWS, moto-bound credentials in tests), or on ``clients`` when given."""
    # Imported here: local mode never loads botocore.
    from middleware.adapters.aws_clients import AwsClients
    from middleware.adapters.dynamodb_jobs import DynamoDbJobStore
    from middleware.adapters.dynamodb_users import DynamoDbUserStore
    from middleware.adapters.s3_blobs import S3BlobStore

    clients = clients or AwsClients(settings, session)
    dynamodb, s3 = clients.dynamodb, clients.s3
    users = DynamoDbUserStore(dynamodb, settings.users_table, settings.api_keys_table)
    return AwsStorage(
        jobs=DynamoDbJobStore(
            dynamodb,
            settings.jobs_table,
            cursor_secret=settings.cursor_secret.get_secret_value().encode() if settings.cursor_secret else None,
        ),
        users=users,
        blobs=S3BlobStore(
            s3,
            settings.blob_bucket,
            multipart_threshold=settings.multipart_threshold_bytes,
            part_size=settings.multipart_part_bytes,
        ),
    )


# A long-poll through API Gateway must answer within its 29 s limit.
AWS_MAX_WAIT_S = 25.0


@dataclass
class AwsRuntime:
    """Everything AWS mode runs in one Lambda process: the app, the completion path
    (``services.events``) and the sweeper, for the entry points."""

    settings: Settings
    app: FastAPI
    services: Services
    storage: AwsStorage
    compute: SageMakerCompute
    sweeper: JobSweeper
    relay: ProgressRelay
    completion: AsyncCompletion
    admin_created: bool = False


def build_aws(
    settings: Settings,
    session: Any,
    *,
    directory: EndpointDirectory | None = None,
    provision: bool = True,
) -> AwsRuntime:
    """AWS mode wired on clients made from ``session``: DynamoDB and S3 stores, SageMaker
    compute on the endpoints ``directory`` names (default: the SDCLOUD_SAGEMAKER_ENDPOINTS
    setting), the polling notifier and the same services and app as local mode. With
    ``provision``, the first start of an installation creates the admin (``provision_aws_admin``)."""
    from middleware.adapters.aws_clients import AwsClients
    from middleware.adapters.bucket_models import BucketModelCatalog
    from middleware.adapters.dynamodb_models import DynamoDbModelLibrary
    from middleware.adapters.lambda_library_worker import LambdaLibraryWorker
    from middleware.adapters.polling_notifier import PollingNotifier
    from middleware.adapters.sagemaker_compute import SageMakerCompute, StaticEndpointDirectory
    from middleware.adapters.sagemaker_endpoints import (
        SageMakerEndpointDirectory,
        build_sagemaker_endpoint_admin,
    )

    clients = AwsClients(settings, session)
    # Parsed first: a bad endpoint setting is reported before any client is used.
    endpoint_admin = build_sagemaker_endpoint_admin(settings, clients)
    if directory is None:
        # The endpoints named in settings first, then those created through the API (tagged).
        static = StaticEndpointDirectory(settings.sagemaker_targets) if settings.sagemaker_endpoints.strip() else None
        directory = SageMakerEndpointDirectory(endpoint_admin, fallback=static)
    storage = build_aws_storage(settings, session, clients)
    jobs, users, blobs = storage.jobs, storage.users, storage.blobs
    relay_box: list[ProgressRelay] = []  # the relay needs the events, which need the notifier
    notifier = PollingNotifier(jobs, lambda job: relay_box[0].relay(job), max_wait_s=AWS_MAX_WAIT_S)
    events = JobEventHandler(jobs, blobs, notifier, heartbeat_interval_s=settings.heartbeat_interval_s)
    relay = ProgressRelay(jobs, blobs, events)
    relay_box.append(relay)
    compute = SageMakerCompute(
        clients.sagemaker_runtime,
        clients.sagemaker,
        blobs,
        settings.blob_bucket,
        directory,
        events,
        invocation_timeout_s=settings.invocation_timeout_s,
        request_ttl_s=settings.request_ttl_s,
        # In Lambda the process freezes after each response: real-time jobs go to their own function.
        lambda_client=clients.lambda_,
        realtime_function=settings.realtime_function_name,
    )
    catalog = BucketModelCatalog(blobs, settings.blob_bucket)
    library_store = DynamoDbModelLibrary(clients.dynamodb, settings.models_table)
    worker = (
        LambdaLibraryWorker(clients.lambda_, settings.library_function_name) if settings.library_function_name else None
    )
    bucket = settings.blob_bucket
    library_catalog = LibraryCatalog(catalog, library_store, lambda sha256: f"s3://{bucket}/models/{sha256}")
    library = ModelLibrary(
        library_store,
        blobs,
        blobs,
        operator_catalog=catalog,
        # Imports by URL stream for minutes, which a background thread of the API function cannot
        # (Lambda freezes it once the request is answered): each runs in its own invocation of the
        # library function. Without one configured, the API refuses imports and points at the
        # uploader, and verifies uploads inline (a long-running server, not Lambda).
        source=_url_source(settings, clients.s3) if settings.library_function_name else None,
        # ... and so does the sha256 check of a completed upload, which reads gigabytes back
        # from S3: API Gateway would cut the request at 29 s.
        launcher=worker.start_import if worker is not None else None,
        verifier=worker.verify_upload if worker is not None else None,
        part_bytes=settings.upload_part_bytes,
        url_ttl_s=settings.upload_url_ttl_s,
        max_bytes=settings.model_max_bytes,
        allow_http_imports=settings.import_allow_private_hosts,
    )
    services = Services(
        auth=AuthService(users, users),
        inferences=InferenceService(
            jobs,
            blobs,
            library_catalog,
            compute,
            notifier,
            events,
            # Asked at each submit: a dynamic directory knows endpoints created after this start.
            endpoint_names=directory.names,
            relay=relay,
            max_wait_s=AWS_MAX_WAIT_S,
        ),
        events=events,
        catalog=CatalogService(catalog, compute),
        blobs=BlobAccess(blobs, settings.signed_url_ttl_s),
        mode="aws",
        endpoints=EndpointService(
            endpoint_admin,
            default_image=settings.sagemaker_image_uri,
            configured=compute.endpoints,
        ),
        library=library,
    )
    sweeper = JobSweeper(
        jobs,
        events,
        compute,
        silence_s=settings.worker_silence_s,
        cancel_timeout_s=settings.cancel_timeout_s,
        relay=relay,
    )
    app = create_app(
        services, public_base_url=settings.public_base_url, max_body_bytes=settings.max_body_bytes
    )
    completion = AsyncCompletion(events, blobs, settings.blob_bucket)
    admin_created = provision_aws_admin(settings, clients, users) if provision else False
    return AwsRuntime(
        settings=settings,
        app=app,
        services=services,
        storage=storage,
        compute=compute,
        sweeper=sweeper,
        relay=relay,
        completion=completion,
        admin_created=admin_created,
    )


def provision_aws_admin(settings: Settings, clients: AwsClients, users: DynamoDbUserStore) -> bool:
    """On an installation's first start, create the admin and put its key into the Secrets
    Manager secret ``admin_key_secret_arn``. Only the start that wins the conditional create of
    the admin user writes the secret; concurrent cold starts see the user and do nothing. True
    when this start created the admin. The key is never logged."""
    if not settings.admin_key_secret_arn:
        log.warning("SDCLOUD_ADMIN_KEY_SECRET_ARN is not set: the first admin is not created (its key would be lost)")
        return False
    try:
        created = ensure_admin(users, users, settings.admin_user)
    except ValueError:
        return False  # another instance created the admin first
    if created is None:
        return False
    try:
        clients.secretsmanager.put_secret_value(SecretId=settings.admin_key_secret_arn, SecretString=created.api_key)
    except Exception as exc:  # noqa: BLE001 - reported without the key, and the start fails
        response = getattr(exc, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        raise RuntimeError(
            f"the admin user {settings.admin_user!r} was created but its key could not be stored in "
            f"{settings.admin_key_secret_arn} ({code or type(exc).__name__}); check the role's "
            "secretsmanager:PutSecretValue permission, then create a new key for the admin"
        ) from None
    log.info("created the admin user %r; its API key is in %s", settings.admin_user, settings.admin_key_secret_arn)
    return True


_AWS_RUNTIME: AwsRuntime | None = None
_AWS_LOCK = threading.Lock()


def aws_runtime(*, provision_admin: bool = True) -> AwsRuntime:
    """The process's AWS runtime, built once from the environment (``Settings()``, the Lambda
    role's ``boto3.Session()``), for the Lambda entry points. Only the API function provisions
    the first admin (the event functions' roles need no write access to users or the secret)."""
    global _AWS_RUNTIME
    with _AWS_LOCK:
        if _AWS_RUNTIME is None:
            import boto3
            from pydantic import ValidationError

            from middleware.settings import describe_settings_error

            try:
                settings = Settings()
            except ValidationError as exc:
                raise RuntimeError(f"SD Cloud cannot start: {describe_settings_error(exc)}") from None
            _AWS_RUNTIME = build_aws(settings, boto3.Session(), provision=provision_admin)
        return _AWS_RUNTIME


def provision_admin(runtime: LocalRuntime) -> Path | None:
    """On first start: create the admin and write its key to <data-dir>/admin-api-key (0600)."""
    created = ensure_admin(runtime.users, runtime.users, runtime.settings.admin_user)
    if created is None:
        return None
    path = runtime.settings.admin_key_file
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(created.api_key + "\n")
    os.chmod(path, 0o600)
    return path


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only sets TCP_NODELAY on such sockets, and without it small
    # responses wait out Nagle + delayed ACK (40 ms per request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_local(settings: Settings) -> None:
    """Run local mode until interrupted: wire, provision, recover, serve."""
    import uvicorn  # only the local server needs it; Lambda entry points import this module too

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        runtime = build_local(settings)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"SD Cloud middleware cannot start: {exc}") from None
    try:
        sock = _listening_socket(settings.host, settings.port)
    except OSError as exc:
        runtime.stop()
        raise SystemExit(
            f"SD Cloud middleware cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    key_file = provision_admin(runtime)
    if key_file is not None:
        print(f"Admin API key written to {key_file}", flush=True)
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config = uvicorn.Config(
        runtime.app,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        lifespan="off",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    runtime.start()

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.02)
        if server.started:
            print(f"SD Cloud middleware listening on http://{host}:{port}", flush=True)

    threading.Thread(target=announce, name="sdcloud-announce", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        runtime.stop()
        sys.stdout.flush()
