"""AWS mode's endpoints: SageMaker models, endpoint configs and endpoints, scaled by Application
Auto Scaling, woken from zero by a CloudWatch alarm.

SageMaker is the record: the model, the endpoint config and the endpoint all carry the user's
endpoint name, and the endpoint config's tags say it is ours (``sdcloud:managed``), its kind and
the wanted instance bounds. The config lives from create to delete (a stopped real-time endpoint
has no endpoint), so listing reads configs; no table can drift from what really runs.

Scaling needs the endpoint InService (Application Auto Scaling refuses a variant that is still
being created), so it is applied when EventBridge reports InService, and again by describe when
it finds an InService endpoint without it. Every step is idempotent: ``register_scalable_target``
and ``put_scaling_policy`` update in place, ``put_metric_alarm`` overwrites.

Stop: an async endpoint keeps existing with min = max = 0 (it costs nothing and queued jobs stay
queued). A real-time variant cannot run zero instances, so stop deletes the endpoint and keeps
the model and config (tagged ``sdcloud:stopped``): scaling it again recreates the endpoint from
them, with the same image and instance type, in one call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import ClientError

from middleware.adapters.sagemaker_compute import EndpointDirectory, SageMakerTarget
from middleware.domain.errors import Conflict, FieldError, InvalidInput
from middleware.domain.instance_types import ASYNC, REALTIME, EndpointSpec
from middleware.ports_endpoints import (
    EndpointBusy,
    EndpointDescription,
    EndpointExists,
    EndpointStateChange,
)

log = logging.getLogger(__name__)

MANAGED_TAG = "sdcloud:managed"
KIND_TAG = "sdcloud:kind"
MIN_TAG = "sdcloud:min-instances"
MAX_TAG = "sdcloud:max-instances"
STOPPED_TAG = "sdcloud:stopped"

VARIANT = "AllTraffic"
NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRICS_NAMESPACE = "AWS/SageMaker"

# Async: one job per instance at a time (the container runs one on the GPU), and target tracking
# holds about this many queued jobs per instance.
BACKLOG_PER_INSTANCE = 2.0
# Real-time: invocations per instance per minute; an image takes seconds, so ~6 keeps one busy.
INVOCATIONS_PER_INSTANCE = 6.0
SCALE_IN_COOLDOWN_S = 600
SCALE_OUT_COOLDOWN_S = 120
WAKE_COOLDOWN_S = 150
# Statuses in which SageMaker refuses DeleteEndpoint.
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack")


class EndpointsNotConfigured(Conflict):
    """AWS mode without the settings creating an endpoint needs (409)."""

    code = "endpoints_not_configured"


def resource_id(name: str) -> str:
    return f"endpoint/{name}/variant/{VARIANT}"


def backlog_policy_name(name: str) -> str:
    return f"sdcloud-{name}-backlog"


def wake_policy_name(name: str) -> str:
    return f"sdcloud-{name}-wake"


def wake_alarm_name(name: str) -> str:
    return f"sdcloud-{name}-has-backlog-without-capacity"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))[:300]


def _missing(exc: ClientError) -> bool:
    """SageMaker and Application Auto Scaling say "not found" as a ValidationException."""
    message = _message(exc).lower()
    return _code(exc) in ("ResourceNotFound", "ObjectNotFoundException", "ResourceNotFoundException") or (
        _code(exc) == "ValidationException"
        and any(words in message for words in ("could not find", "not found", "no scalable target"))
    )


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _int_tag(tags: dict[str, str], key: str) -> int | None:
    try:
        return int(tags[key])
    except (KeyError, ValueError):
        return None


class SageMakerEndpointAdmin:
    def __init__(
        self,
        sagemaker: Any,
        autoscaling: Any,
        cloudwatch: Any,
        *,
        bucket: str,
        role_arn: str | None,
        success_topic_arn: str | None,
        error_topic_arn: str | None,
        model_buckets: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sm = sagemaker
        self._aas = autoscaling
        self._cw = cloudwatch
        self._bucket = bucket
        self._role_arn = role_arn
        self._success_topic = success_topic_arn
        self._error_topic = error_topic_arn
        self._model_buckets = tuple(dict.fromkeys((bucket, *model_buckets)))
        self._clock = clock

    # --- reading SageMaker ------------------------------------------------------------------

    def _config(self, name: str) -> dict[str, Any] | None:
        try:
            return self._sm.describe_endpoint_config(EndpointConfigName=name)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def _tags(self, arn: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        kwargs: dict[str, Any] = {"ResourceArn": arn}
        while True:
            page = self._sm.list_tags(**kwargs)
            tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
            if not page.get("NextToken"):
                return tags
            kwargs["NextToken"] = page["NextToken"]

    def _managed_config(self, name: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        config = self._config(name)
        if config is None:
            return None
        tags = self._tags(config["EndpointConfigArn"])
        if tags.get(MANAGED_TAG) != "true":
            return None
        return config, tags

    def _endpoint(self, name: str) -> dict[str, Any] | None:
        try:
            return self._sm.describe_endpoint(EndpointName=name)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def _image(self, model_name: str) -> str | None:
        try:
            model = self._sm.describe_model(ModelName=model_name)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return (model.get("PrimaryContainer") or {}).get("Image")

    def _scalable_target(self, name: str) -> dict[str, Any] | None:
        found = self._aas.describe_scalable_targets(
            ServiceNamespace=NAMESPACE, ResourceIds=[resource_id(name)], ScalableDimension=DIMENSION
        ).get("ScalableTargets", [])
        return found[0] if found else None

    def _policies(self, name: str) -> list[dict[str, Any]]:
        return self._aas.describe_scaling_policies(
            ServiceNamespace=NAMESPACE, ResourceId=resource_id(name), ScalableDimension=DIMENSION
        ).get("ScalingPolicies", [])

    def _backlog(self, name: str) -> float | None:
        """The latest ApproximateBacklogSize; None when CloudWatch has none (or cannot say)."""
        now = datetime.fromtimestamp(self._clock(), tz=timezone.utc)
        try:
            points = self._cw.get_metric_statistics(
                Namespace=METRICS_NAMESPACE,
                MetricName="ApproximateBacklogSize",
                Dimensions=[{"Name": "EndpointName", "Value": name}],
                StartTime=now - timedelta(minutes=10),
                EndTime=now + timedelta(minutes=1),  # exclusive: a point stamped "now" counts
                Period=60,
                Statistics=["Maximum"],
            ).get("Datapoints", [])
        except ClientError as exc:
            log.warning("backlog of endpoint %s unavailable: %s", name, _code(exc))
            return None
        if not points:
            return None
        return float(max(points, key=lambda p: p["Timestamp"])["Maximum"])

    def managed(self) -> dict[str, str]:
        """Our endpoints' names and kinds, from the tagged endpoint configs."""
        found: dict[str, str] = {}
        for page in self._sm.get_paginator("list_endpoint_configs").paginate():
            for config in page.get("EndpointConfigs", []):
                tags = self._tags(config["EndpointConfigArn"])
                if tags.get(MANAGED_TAG) == "true":
                    found[config["EndpointConfigName"]] = tags.get(KIND_TAG, ASYNC)
        return dict(sorted(found.items()))

    # --- the port ---------------------------------------------------------------------------

    def refusal(self, verb: str) -> Conflict | None:
        if verb == "create" and not self._role_arn:
            return EndpointsNotConfigured(
                "this deployment cannot create endpoints: set SDCLOUD_SAGEMAKER_ROLE_ARN (the stack's output)"
            )
        return None

    def list(self) -> list[EndpointDescription]:
        out = []
        for name in self.managed():
            described = self.describe(name)
            if described is not None:  # deleted between the listing and the describe
                out.append(described)
        return out

    def describe(self, name: str) -> EndpointDescription | None:
        managed = self._managed_config(name)
        if managed is None:
            return None
        config, tags = managed
        kind = tags.get(KIND_TAG, ASYNC)
        variant = (config.get("ProductionVariants") or [{}])[0]
        endpoint = self._endpoint(name)
        target = self._scalable_target(name) if endpoint is not None else None
        stopped = tags.get(STOPPED_TAG) == "true"
        if endpoint is not None:
            status = endpoint["EndpointStatus"]
        else:
            # Stopped by us (real-time), or the endpoint was removed outside SD Cloud.
            status = "Stopped" if stopped else "OutOfService"
        if status == "InService" and target is None and not stopped:
            # The InService event was missed (or arrived before the endpoint was ready): apply now.
            if self._apply_scaling(name, kind, tags):
                target = self._scalable_target(name)
        ep_variant = ((endpoint or {}).get("ProductionVariants") or [{}])[0]
        reason = (endpoint or {}).get("FailureReason")
        current = ep_variant.get("CurrentInstanceCount")
        scaling = "none"  # stopped, or failed: nothing to scale
        if endpoint is not None and status != "Failed":
            scaling = "applied" if target is not None else "pending"
        return EndpointDescription(
            name=name,
            kind=kind,
            status=status,
            detail=self._detail(kind, status, current, reason, endpoint is None, stopped),
            instance_type=variant.get("InstanceType"),
            image=self._image(variant.get("ModelName", name)),
            min_instances=int(target["MinCapacity"]) if target else _int_tag(tags, MIN_TAG),
            max_instances=int(target["MaxCapacity"]) if target else _int_tag(tags, MAX_TAG),
            current_instances=current if endpoint is not None else 0,
            desired_instances=ep_variant.get("DesiredInstanceCount") if endpoint is not None else 0,
            backlog=self._backlog(name) if kind == ASYNC and endpoint is not None else None,
            failure_reason=reason,
            scaling=scaling,
        )

    @staticmethod
    def _detail(kind: str, status: str, current: int | None, reason: str | None, gone: bool, stopped: bool) -> str:
        if gone:
            if stopped:
                return "stopped: scale it to start it again (same image and instance type)"
            return "its SageMaker endpoint is missing (removed outside SD Cloud?): scale it to recreate it"
        if status == "Failed":
            return f"SageMaker could not start it: {reason or 'no reason given'}"
        if status == "Creating":
            return "SageMaker is starting its instances (this takes minutes)"
        if status == "InService" and kind == ASYNC and current == 0:
            return "scaled to zero: the next job wakes it (a few minutes)"
        return ""

    def create(self, spec: EndpointSpec) -> tuple[EndpointDescription, bool]:
        existing = self._managed_config(spec.name)
        if existing is not None:
            return self._same_or_conflict(spec, *existing), False
        if self._config(spec.name) is not None or self._endpoint(spec.name) is not None:
            raise EndpointExists(
                f"a SageMaker endpoint or endpoint config named {spec.name!r} exists and is not SD Cloud's; "
                "choose another name"
            )
        missing = [
            setting
            for setting, value in (
                ("SDCLOUD_SAGEMAKER_ROLE_ARN", self._role_arn),
                ("SDCLOUD_SUCCESS_TOPIC_ARN", self._success_topic if spec.kind == ASYNC else "-"),
                ("SDCLOUD_ERROR_TOPIC_ARN", self._error_topic if spec.kind == ASYNC else "-"),
            )
            if not value
        ]
        if missing:
            raise EndpointsNotConfigured(
                f"this deployment cannot create endpoints: set {', '.join(missing)} (the stack's outputs)"
            )
        tags = {
            MANAGED_TAG: "true",
            KIND_TAG: spec.kind,
            MIN_TAG: str(spec.min_instances),
            MAX_TAG: str(spec.max_instances),
        }
        created: list[Callable[[], None]] = []
        try:
            self._sm.create_model(
                ModelName=spec.name,
                ExecutionRoleArn=self._role_arn,
                PrimaryContainer={"Image": spec.image, "Environment": self._environment()},
                Tags=_tag_list({MANAGED_TAG: "true"}),
            )
            created.append(lambda: self._sm.delete_model(ModelName=spec.name))
            self._sm.create_endpoint_config(**self._config_request(spec, tags))
            created.append(lambda: self._sm.delete_endpoint_config(EndpointConfigName=spec.name))
            self._sm.create_endpoint(
                EndpointName=spec.name,
                EndpointConfigName=spec.name,
                Tags=_tag_list({MANAGED_TAG: "true", KIND_TAG: spec.kind}),
            )
        except ClientError as exc:
            # Nothing half-made stays behind: undo in reverse order, then say why.
            for undo in reversed(created):
                try:
                    undo()
                except ClientError:
                    log.exception("could not roll back part of endpoint %s", spec.name)
            raise self._refusal(exc) from None
        described = self.describe(spec.name)
        assert described is not None  # noqa: S101 - we just created it
        return described, True

    def _environment(self) -> dict[str, str]:
        # The names inference_container/settings.py reads.
        return {
            "SDCLOUD_OUTPUT_STORE": f"s3://{self._bucket}",
            "SDCLOUD_MODEL_BUCKETS": ",".join(self._model_buckets),
        }

    def _config_request(self, spec: EndpointSpec, tags: dict[str, str]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "EndpointConfigName": spec.name,
            "ProductionVariants": [
                {
                    "VariantName": VARIANT,
                    "ModelName": spec.name,
                    "InstanceType": spec.instance_type,
                    # SageMaker starts at least one instance; async then scales in to min (maybe 0).
                    "InitialInstanceCount": max(1, spec.min_instances),
                }
            ],
            "Tags": _tag_list(tags),
        }
        if spec.kind == ASYNC:
            request["AsyncInferenceConfig"] = {
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1},
                "OutputConfig": {
                    "S3OutputPath": f"s3://{self._bucket}/async-outputs/",
                    "S3FailurePath": f"s3://{self._bucket}/async-failures/",
                    "NotificationConfig": {"SuccessTopic": self._success_topic, "ErrorTopic": self._error_topic},
                },
            }
        return request

    def _same_or_conflict(self, spec: EndpointSpec, config: dict[str, Any], tags: dict[str, str]) -> EndpointDescription:
        variant = (config.get("ProductionVariants") or [{}])[0]
        have = (tags.get(KIND_TAG, ASYNC), variant.get("InstanceType"), self._image(variant.get("ModelName", spec.name)))
        want = (spec.kind, spec.instance_type, spec.image)
        if have != want:
            raise EndpointExists(
                f"endpoint {spec.name!r} exists as {have[0]} on {have[1]} with image {have[2]}; "
                "delete it first, or choose another name"
            )
        described = self.describe(spec.name)
        assert described is not None  # noqa: S101 - its config was just read
        return described

    @staticmethod
    def _refusal(exc: ClientError) -> Exception:
        code, message = _code(exc), _message(exc)
        if code == "ValidationException":
            return InvalidInput([FieldError("body", f"SageMaker refused the endpoint: {message}")])
        if code in ("ResourceLimitExceeded", "ResourceInUse", "ThrottlingException"):
            return Conflict(f"SageMaker refused the endpoint ({code}): {message}")
        return exc

    # --- scaling ----------------------------------------------------------------------------

    def _apply_scaling(self, name: str, kind: str, tags: dict[str, str]) -> bool:
        """Register the bounds and the policies; False when AWS is not ready for them yet."""
        low, high = _int_tag(tags, MIN_TAG), _int_tag(tags, MAX_TAG)
        if low is None or high is None:
            low, high = (0, 1) if kind == ASYNC else (1, 1)
        try:
            self._aas.register_scalable_target(
                ServiceNamespace=NAMESPACE,
                ResourceId=resource_id(name),
                ScalableDimension=DIMENSION,
                MinCapacity=low,
                MaxCapacity=high,
            )
            if kind == ASYNC:
                self._put_async_policies(name)
            else:
                self._put_realtime_policy(name)
        except ClientError as exc:
            # E.g. the variant is being updated; the next InService event or describe retries.
            log.warning("scaling of endpoint %s not applied yet: %s %s", name, _code(exc), _message(exc))
            return False
        return True

    def _put_async_policies(self, name: str) -> None:
        self._put_target_tracking(
            name,
            BACKLOG_PER_INSTANCE,
            {
                "CustomizedMetricSpecification": {
                    "MetricName": "ApproximateBacklogSizePerInstance",
                    "Namespace": METRICS_NAMESPACE,
                    "Dimensions": [{"Name": "EndpointName", "Value": name}],
                    "Statistic": "Average",
                }
            },
        )
        # Target tracking divides by the instance count and so never acts at zero instances:
        # this step policy, fired by the HasBacklogWithoutCapacity alarm, adds the first one.
        wake = self._aas.put_scaling_policy(
            PolicyName=wake_policy_name(name),
            ServiceNamespace=NAMESPACE,
            ResourceId=resource_id(name),
            ScalableDimension=DIMENSION,
            PolicyType="StepScaling",
            StepScalingPolicyConfiguration={
                "AdjustmentType": "ChangeInCapacity",
                "MetricAggregationType": "Maximum",
                "Cooldown": WAKE_COOLDOWN_S,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            },
        )
        self._cw.put_metric_alarm(
            AlarmName=wake_alarm_name(name),
            AlarmDescription=f"SD Cloud: wake endpoint {name} from zero instances when jobs wait",
            Namespace=METRICS_NAMESPACE,
            MetricName="HasBacklogWithoutCapacity",
            Dimensions=[{"Name": "EndpointName", "Value": name}],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="notBreaching",
            AlarmActions=[wake["PolicyARN"]],
            Tags=_tag_list({MANAGED_TAG: "true"}),
        )

    def _put_realtime_policy(self, name: str) -> None:
        self._put_target_tracking(
            name,
            INVOCATIONS_PER_INSTANCE,
            {"PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}},
        )

    def _put_target_tracking(self, name: str, target: float, metric: dict[str, Any]) -> None:
        """The endpoint's one target-tracking policy, on ``metric`` (an Application Auto Scaling
        Customized- or PredefinedMetricSpecification)."""
        self._aas.put_scaling_policy(
            PolicyName=backlog_policy_name(name),
            ServiceNamespace=NAMESPACE,
            ResourceId=resource_id(name),
            ScalableDimension=DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": target,
                **metric,
                "ScaleInCooldown": SCALE_IN_COOLDOWN_S,
                "ScaleOutCooldown": SCALE_OUT_COOLDOWN_S,
            },
        )

    def _remove_scaling(self, name: str) -> None:
        """Policies, the wake alarm and the scalable target; harmless when some are gone."""
        for policy in self._policies(name):
            try:
                self._aas.delete_scaling_policy(
                    PolicyName=policy["PolicyName"],
                    ServiceNamespace=NAMESPACE,
                    ResourceId=resource_id(name),
                    ScalableDimension=DIMENSION,
                )
            except ClientError as exc:
                if not _missing(exc):
                    raise
        self._cw.delete_alarms(AlarmNames=[wake_alarm_name(name)])
        try:
            self._aas.deregister_scalable_target(
                ServiceNamespace=NAMESPACE, ResourceId=resource_id(name), ScalableDimension=DIMENSION
            )
        except ClientError as exc:
            if not _missing(exc):
                raise

    def _retag(self, config: dict[str, Any], tags: dict[str, str]) -> None:
        self._sm.add_tags(ResourceArn=config["EndpointConfigArn"], Tags=_tag_list(tags))

    def scale(self, name: str, min_instances: int, max_instances: int) -> EndpointDescription:
        managed = self._managed_config(name)
        if managed is None:
            raise KeyError(name)
        config, tags = managed
        kind = tags.get(KIND_TAG, ASYNC)
        tags = {**tags, MIN_TAG: str(min_instances), MAX_TAG: str(max_instances), STOPPED_TAG: "false"}
        self._retag(config, tags)
        endpoint = self._endpoint(name)
        if endpoint is None:
            # Stopped (real-time) or removed behind our back: start it again from its config.
            try:
                self._sm.create_endpoint(
                    EndpointName=name,
                    EndpointConfigName=name,
                    Tags=_tag_list({MANAGED_TAG: "true", KIND_TAG: kind}),
                )
            except ClientError as exc:
                raise self._refusal(exc) from None
        elif endpoint["EndpointStatus"] == "InService":
            self._apply_scaling(name, kind, tags)
        # Otherwise (Creating, Updating): the tags hold the bounds until the InService event.
        described = self.describe(name)
        assert described is not None  # noqa: S101
        return described

    def stop(self, name: str) -> EndpointDescription:
        managed = self._managed_config(name)
        if managed is None:
            raise KeyError(name)
        config, tags = managed
        kind = tags.get(KIND_TAG, ASYNC)
        if kind == REALTIME:
            self._retag(config, {**tags, STOPPED_TAG: "true"})
            self._remove_scaling(name)
            self._delete_endpoint(name)
        else:
            tags = {**tags, MIN_TAG: "0", MAX_TAG: "0"}
            self._retag(config, tags)
            endpoint = self._endpoint(name)
            if endpoint is not None and endpoint["EndpointStatus"] == "InService":
                self._apply_scaling(name, kind, tags)
        described = self.describe(name)
        assert described is not None  # noqa: S101
        return described

    def _delete_endpoint(self, name: str) -> None:
        try:
            self._sm.delete_endpoint(EndpointName=name)
        except ClientError as exc:
            if _missing(exc):
                return
            if _code(exc) == "ValidationException":
                raise EndpointBusy(f"SageMaker cannot remove endpoint {name!r} now: {_message(exc)}") from None
            raise

    def delete(self, name: str) -> bool:
        managed = self._managed_config(name)
        if managed is None:
            return False
        config, _tags = managed
        model_name = (config.get("ProductionVariants") or [{}])[0].get("ModelName", name)
        endpoint = self._endpoint(name)
        if endpoint is not None and endpoint["EndpointStatus"] in BUSY:
            # Refused before anything is removed, so a refusal leaves the endpoint whole.
            raise EndpointBusy(
                f"endpoint {name!r} is {endpoint['EndpointStatus']}; SageMaker cannot delete it until that ends"
            )
        self._remove_scaling(name)
        if endpoint is not None and endpoint["EndpointStatus"] != "Deleting":
            self._delete_endpoint(name)
        for call, kwargs in (
            (self._sm.delete_endpoint_config, {"EndpointConfigName": name}),
            (self._sm.delete_model, {"ModelName": model_name}),
        ):
            try:
                call(**kwargs)
            except ClientError as exc:
                if not _missing(exc):
                    raise
        return True

    def state_changed(self, event: EndpointStateChange) -> None:
        name = event.endpoint_name
        if event.tags and event.tags.get(MANAGED_TAG) != "true":
            return  # not ours: the event's own tags say so without a call
        managed = self._managed_config(name)
        if managed is None:
            return
        _config, tags = managed
        if event.status == "InService" and tags.get(STOPPED_TAG) != "true":
            self._apply_scaling(name, tags.get(KIND_TAG, ASYNC), tags)
        elif event.status == "Failed":
            log.warning("endpoint %s failed: %s", name, event.failure_reason or "no reason given")


class SageMakerEndpointDirectory:
    """Our endpoints by name, for the compute adapter, after those of ``fallback`` (the endpoints
    named in settings, when any). Cached briefly so a burst of job submissions costs one listing."""

    def __init__(
        self,
        admin: SageMakerEndpointAdmin,
        fallback: EndpointDirectory | None = None,
        ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin = admin
        self._fallback = fallback
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[str, str] | None = None
        self._at = 0.0

    def _current(self, refresh: bool = False) -> dict[str, str]:
        with self._lock:
            if refresh or self._cached is None or self._clock() - self._at >= self._ttl_s:
                self._cached = self._admin.managed()
                self._at = self._clock()
            return self._cached

    def names(self) -> list[str]:
        first = self._fallback.names() if self._fallback is not None else []
        return first + [name for name in self._current() if name not in first]

    def resolve(self, name: str) -> SageMakerTarget | None:
        if self._fallback is not None and (target := self._fallback.resolve(name)) is not None:
            return target
        kind = self._current().get(name)
        if kind is None and self._clock() - self._at >= 1.0:
            # Perhaps created since the last listing: look again (at most once a second).
            kind = self._current(refresh=True).get(name)
        return SageMakerTarget(endpoint_name=name, kind=kind) if kind is not None else None


def build_sagemaker_endpoint_admin(settings: Any, clients: Any) -> SageMakerEndpointAdmin:
    """The adapter on ``clients`` (middleware.adapters.aws_clients.AwsClients: made on first use,
    so a cold start that never administers endpoints never builds these), configured from ``settings``."""
    return SageMakerEndpointAdmin(
        clients.sagemaker,
        clients.autoscaling,
        clients.cloudwatch,
        bucket=settings.blob_bucket,
        role_arn=settings.sagemaker_role_arn,
        success_topic_arn=settings.success_topic_arn,
        error_topic_arn=settings.error_topic_arn,
    )
