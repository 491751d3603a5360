"""The boto3 clients of AWS mode, each made on first use from one session.

A Lambda cold start pays for every client it makes (botocore loads and parses the service's
model: tens of milliseconds each), and most invocations need only DynamoDB and S3. The endpoint
admin's SageMaker, Application Auto Scaling and CloudWatch clients, SageMaker runtime and Secrets
Manager are made only when a request actually calls them, and Lambda only when a real-time job
is handed to the real-time function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

# Standard mode retries throttling and transient errors with backoff (botocore's docs).
RETRIES = {"mode": "standard", "max_attempts": 4}


class LazyClient:
    """Stands in for a boto3 client; makes the real one on the first attribute asked for."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def made(self) -> bool:
        return self._client is not None

    def __getattr__(self, name: str) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
                client = self._client
        return getattr(client, name)


class AwsClients:
    """One lazily made client per service, configured from the settings (region, stand-in
    endpoints for tests), all from the same ``session`` so botocore's model cache is shared."""

    def __init__(self, settings: Any, session: Any) -> None:
        self._settings = settings
        self._session = session
        s = settings
        s3_endpoint = s.s3_endpoint_url or s.aws_endpoint_url
        self.dynamodb = self._lazy("dynamodb", s.dynamodb_endpoint_url)
        # SigV4 for presigned URLs; path style only for a stand-in endpoint (no bucket DNS there).
        self.s3 = self._lazy(
            "s3",
            s3_endpoint,
            signature_version="s3v4",
            s3={"addressing_style": "path" if s3_endpoint else "virtual"},
        )
        # A real-time invocation may take SageMaker's full 60 s.
        self.sagemaker_runtime = self._lazy("sagemaker-runtime", s.sagemaker_runtime_endpoint_url, read_timeout=70)
        self.sagemaker = self._lazy("sagemaker", s.sagemaker_endpoint_url)
        self.autoscaling = self._lazy("application-autoscaling")
        self.cloudwatch = self._lazy("cloudwatch")
        self.secretsmanager = self._lazy("secretsmanager")
        # Hands real-time jobs to their own function (an Event invocation answers at once).
        self.lambda_ = self._lazy("lambda")

    def _lazy(self, service: str, endpoint_url: str | None = None, **config: Any) -> LazyClient:
        def make() -> Any:
            from botocore.config import Config

            return self._session.client(
                service,
                region_name=self._settings.aws_region,
                endpoint_url=endpoint_url or self._settings.aws_endpoint_url,
                config=Config(retries=RETRIES, **config),
            )

        return LazyClient(make)
