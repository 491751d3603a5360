"""AWS mode on loopback, for the end-to-end test and the benchmark: everything that runs in AWS,
as real processes against a real ``moto_server``.

- moto: the DynamoDB tables (built from middleware/template.yaml's own definitions), the bucket,
  the success/error SNS topics, the admin key's secret, a SageMaker endpoint to describe;
- the real inference container (``inference_container/serve``) reading the model by s3:// URI
  and writing its outputs to the bucket;
- the SageMaker async runtime stand-in (tests/support/sagemaker_async_standin.py);
- the SNS subscriber that calls the real ``lambda_sns.handler`` (tests/support/sns_http_bridge.py);
- API Gateway's stand-in in front of the real ``lambda_api.handler`` (tests/support/apigw_front.py).

Every middleware process gets the settings the SAM template gives the functions (SDCLOUD_*),
with every AWS endpoint pointing at moto and the SageMaker runtime at the stand-in.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import moto_server as moto
from tests.support.cfn_template import create_table_kwargs
from tools.local_processes import REPO, Service, backend_python, free_port

SAGEMAKER_ENDPOINT = "sdcloud-e2e-sd15"
CHECKPOINT_NAME = "tiny-sd15.safetensors"
# A catalog entry whose bytes do not hash to what the index says: the container refuses it.
CORRUPT_NAME = "corrupt-sd15.safetensors"


@dataclass
class AwsStack:
    moto_url: str
    work_dir: Path
    checkpoint: Path
    worker_silence_s: float = 120.0
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    services: dict[str, Service] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    secret_arn: str = ""

    # -- names ------------------------------------------------------------------------------------

    @property
    def bucket(self) -> str:
        return f"sdcloud-e2e-{self.suffix}"

    @property
    def tables(self) -> dict[str, str]:
        return {
            "JobsTable": f"sdcloud-jobs-{self.suffix}",
            "UsersTable": f"sdcloud-users-{self.suffix}",
            "ApiKeysTable": f"sdcloud-api-keys-{self.suffix}",
            "ModelsTable": f"sdcloud-models-{self.suffix}",
        }

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def api_url(self) -> str:
        return self.url("front")

    # -- clients ----------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(signature_version="s3v4", s3={"addressing_style": "path"}) if service == "s3" else None
        return boto3.Session(**moto.CREDENTIALS).client(service, endpoint_url=self.moto_url, config=config)

    @property
    def api_key(self) -> str:
        """The first admin's key, where the API function's first start put it (Secrets Manager)."""
        return self.client("secretsmanager").get_secret_value(SecretId=self.secret_arn)["SecretString"]

    # -- resources --------------------------------------------------------------------------------

    def create_resources(self) -> None:
        dynamodb = self.client("dynamodb")
        for logical_id, name in self.tables.items():
            dynamodb.create_table(**create_table_kwargs(logical_id, name))
        s3 = self.client("s3")
        s3.create_bucket(Bucket=self.bucket)
        sns = self.client("sns")
        for kind in ("success", "error"):
            self.topics[kind] = sns.create_topic(Name=f"sdcloud-async-{kind}-{self.suffix}")["TopicArn"]
        self.secret_arn = self.client("secretsmanager").create_secret(
            Name=f"sdcloud-admin-key-{self.suffix}", Description="first admin key"
        )["ARN"]
        self._create_endpoint()
        self._upload_model(s3)

    def _create_endpoint(self) -> None:
        sagemaker = self.client("sagemaker")
        model = f"{SAGEMAKER_ENDPOINT}-{self.suffix}"
        sagemaker.create_model(
            ModelName=model,
            ExecutionRoleArn="arn:aws:iam::123456789012:role/sdcloud-endpoint",
            PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sdcloud:test"},
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName=model,
            # moto's list stops at g4dn (FACTS.md).
            ProductionVariants=[{"VariantName": "main", "ModelName": model, "InstanceType": "ml.g4dn.xlarge",
                                 "InitialInstanceCount": 1}],
            AsyncInferenceConfig={"OutputConfig": {
                "S3OutputPath": self.output_path, "S3FailurePath": self.failure_path,
                "NotificationConfig": {"SuccessTopic": self.topics["success"], "ErrorTopic": self.topics["error"]},
            }},
        )
        sagemaker.create_endpoint(EndpointName=SAGEMAKER_ENDPOINT, EndpointConfigName=model)

    def _upload_model(self, s3: Any) -> None:
        data = self.checkpoint.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        s3.put_object(Bucket=self.bucket, Key=f"models/{sha}", Body=data)
        wrong = hashlib.sha256(b"not the tiny checkpoint" + data).hexdigest()
        s3.put_object(Bucket=self.bucket, Key=f"models/{wrong}", Body=data)
        index = {"models": [
            {"name": CHECKPOINT_NAME, "type": "checkpoint", "sha256": sha, "size": len(data)},
            {"name": CORRUPT_NAME, "type": "checkpoint", "sha256": wrong, "size": len(data)},
        ]}
        s3.put_object(Bucket=self.bucket, Key="models/index.json", Body=json.dumps(index).encode())

    @property
    def output_path(self) -> str:
        return f"s3://{self.bucket}/async-outputs"

    @property
    def failure_path(self) -> str:
        return f"s3://{self.bucket}/async-failures"

    # -- processes --------------------------------------------------------------------------------

    def aws_env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": moto.REGION, "AWS_EC2_METADATA_DISABLED": "true"}

    def middleware_env(self) -> dict[str, str]:
        """The functions' configuration (template.yaml's Environment), pointed at the stand-ins."""
        return {
            **self.aws_env(),
            "SDCLOUD_MODE": "aws",
            "SDCLOUD_AWS_REGION": moto.REGION,
            "SDCLOUD_AWS_ENDPOINT_URL": self.moto_url,
            "SDCLOUD_SAGEMAKER_RUNTIME_ENDPOINT_URL": self.url("standin"),
            "SDCLOUD_JOBS_TABLE": self.tables["JobsTable"],
            "SDCLOUD_USERS_TABLE": self.tables["UsersTable"],
            "SDCLOUD_API_KEYS_TABLE": self.tables["ApiKeysTable"],
            "SDCLOUD_MODELS_TABLE": self.tables["ModelsTable"],
            "SDCLOUD_BLOB_BUCKET": self.bucket,
            "SDCLOUD_SAGEMAKER_ENDPOINTS": f"default=async:{SAGEMAKER_ENDPOINT}",
            "SDCLOUD_ADMIN_KEY_SECRET_ARN": self.secret_arn,
            "SDCLOUD_WORKER_SILENCE_S": str(self.worker_silence_s),
            "SDCLOUD_LOG_LEVEL": "info",
        }

    def container_service(self) -> Service:
        data = self.work_dir / "container"
        env = {**self.aws_env(), "SAGEMAKER_BIND_TO_PORT": str(self.ports["container"]), "SDCLOUD_HOST": "127.0.0.1",
               "SDCLOUD_MODEL_CACHE_DIR": str(data / "cache"), "SDCLOUD_ENGINE_CACHE_DIR": str(data / "engine"),
               "SDCLOUD_TORCH_THREADS": "1", "SDCLOUD_OUTPUT_STORE": f"s3://{self.bucket}",
               "SDCLOUD_S3_ENDPOINT_URL": self.moto_url, "SDCLOUD_MODEL_BUCKETS": self.bucket,
               "SDCLOUD_MARKER_POLL_S": "0.1", "SDCLOUD_PROGRESS_PUBLISH_S": "0.2", "HF_HUB_OFFLINE": "1",
               "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
        return Service("container", [str(REPO / "inference_container" / "serve")],
                       f"{self.url('container')}/ping", self.work_dir / "logs" / "container.log", env=env)

    def standin_service(self) -> Service:
        command = [backend_python(), "-m", "tests.support.sagemaker_async_standin", "--port", str(self.ports["standin"]),
                   "--endpoint", f"{SAGEMAKER_ENDPOINT}={self.url('container')}",
                   "--output-path", self.output_path, "--failure-path", self.failure_path,
                   "--success-topic", self.topics["success"], "--error-topic", self.topics["error"],
                   "--aws-endpoint-url", self.moto_url, "--region", moto.REGION]
        return Service("standin", command, None, self.work_dir / "logs" / "standin.log", env=self.aws_env(),
                       ready_line="stand-in listening on")

    def bridge_service(self) -> Service:
        command = [backend_python(), "-m", "tests.support.sns_http_bridge", "--port", str(self.ports["bridge"])]
        return Service("bridge", command, f"{self.url('bridge')}/_bridge/deliveries",
                       self.work_dir / "logs" / "sns-bridge.log", env=self.middleware_env())

    def front_service(self) -> Service:
        command = [backend_python(), "-m", "tests.support.apigw_front", "--port", str(self.ports["front"])]
        return Service("front", command, f"{self.url('front')}/v1/ping", self.work_dir / "logs" / "api-front.log",
                       env=self.middleware_env())

    def start(self, timeout: float = 240.0) -> AwsStack:
        for name in ("container", "standin", "bridge", "front"):
            self.ports[name] = free_port()
        self.create_resources()
        try:
            # The API function first: its cold start creates the admin (one start wins the write).
            self.services["front"] = self.front_service().start().wait_ready(timeout)
            self.services["bridge"] = self.bridge_service().start()
            self.services["container"] = self.container_service().start()
            self.services["standin"] = self.standin_service().start()
            for service in self.services.values():
                service.wait_ready(timeout)
            sns = self.client("sns")
            for arn in self.topics.values():
                sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=f"{self.url('bridge')}/")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{service.log_tail(30)}" for name, service in self.services.items())

    def __enter__(self) -> AwsStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
