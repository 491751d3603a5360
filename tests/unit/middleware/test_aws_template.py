"""template.yaml: its storage is what the AWS adapters use, it keeps data, its functions are the
repository's handlers reading real settings, and its roles grant no more than the code needs."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from middleware.adapters import dynamodb_jobs, dynamodb_users
from middleware.settings import Settings
from tests.support.cfn_template import (
    TEMPLATE,
    create_table_kwargs,
    load_template,
    resources,
    table_properties,
)


def key_names(schema: list[dict]) -> tuple[str, ...]:
    return tuple(k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"] != "HASH"))


def test_it_is_a_sam_template_with_no_custom_resources():
    template = load_template()
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert not {k for k in kinds if k.startswith("Custom::") or k == "AWS::CloudFormation::CustomResource"}
    assert {"AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::Serverless::Api", "AWS::Serverless::Function",
            "AWS::SNS::Topic", "AWS::SQS::Queue", "AWS::SecretsManager::Secret", "AWS::IAM::Role"} <= kinds  # fmt: skip


def test_jobs_table_keys_and_indexes_are_the_adapters():
    props = table_properties("JobsTable")
    assert key_names(props["KeySchema"]) == (dynamodb_jobs.HASH_KEY,)
    indexes = {i["IndexName"]: key_names(i["KeySchema"]) for i in props["GlobalSecondaryIndexes"]}
    assert indexes == dynamodb_jobs.INDEXES
    projections = {i["IndexName"]: i["Projection"]["ProjectionType"] for i in props["GlobalSecondaryIndexes"]}
    # list_by_status fetches the records of the keys-only index; the others are read as they are.
    assert projections.pop(dynamodb_jobs.INDEX_ENDED_BY_STATUS) == "KEYS_ONLY"
    assert set(projections.values()) == {"ALL"}
    # Every key attribute is declared with the type the adapter writes (numbers for times).
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    running, ended = _a_running_job_with_cancel_and_its_end()
    item = {**dynamodb_jobs.job_to_item(ended), **dynamodb_jobs.job_to_item(running)}
    for name, kind in types.items():
        assert next(iter(item[name])) == kind, name


def _a_running_job_with_cancel_and_its_end():
    from middleware.domain import job as jobs

    job = jobs.new_job(id="j1", owner="ann", task="txt2img", payload={"prompt": "cat"}, checkpoint="m",
                       checkpoint_sha256="0" * 64, endpoint="e", now_us=1)  # fmt: skip
    running = jobs.cancel_requested(jobs.started(job, 2), 3)
    return running, jobs.cancelled(running, 4)


def test_user_and_key_tables_are_the_adapters():
    assert key_names(table_properties("UsersTable")["KeySchema"]) == (dynamodb_users.USERS_HASH_KEY,)
    assert key_names(table_properties("ApiKeysTable")["KeySchema"]) == (dynamodb_users.KEYS_HASH_KEY,)


@pytest.mark.parametrize("logical_id", ["JobsTable", "UsersTable", "ApiKeysTable"])
def test_tables_are_on_demand_recoverable_encrypted_and_retained(logical_id):
    table = resources("AWS::DynamoDB::Table")[logical_id]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert create_table_kwargs(logical_id, "t")["KeySchema"] == props["KeySchema"]


def test_bucket_is_private_encrypted_tls_only_and_expires_job_outputs():
    bucket = resources("AWS::S3::Bucket")["BlobBucket"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert any("ETag" in rule["ExposedHeaders"] for rule in props["CorsConfiguration"]["CorsRules"])
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-job-outputs"]["Prefix"] == "jobs/"
    assert rules["expire-job-outputs"]["ExpirationInDays"] == {"Ref": "JobOutputRetentionDays"}
    assert "JobOutputRetentionDays" in load_template()["Parameters"]
    assert "AbortIncompleteMultipartUpload" in rules["abort-incomplete-multipart-uploads"]
    (statement,) = resources("AWS::S3::BucketPolicy")["BlobBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_cfn_lint_is_clean():
    exe = Path(sys.executable).parent / "cfn-lint"
    if not exe.exists() and shutil.which("cfn-lint") is None:
        pytest.skip("cfn-lint is not installed (it comes with moto[server] in requirements/dev.txt)")
    command = [str(exe) if exe.exists() else "cfn-lint", str(TEMPLATE)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the whole stack ---------------------------------------------------------------------------
ROOT = TEMPLATE.parents[1]
FUNCTIONS = {
    "ApiFunction": "middleware.entrypoints.lambda_api.handler",
    "NotificationFunction": "middleware.entrypoints.lambda_sns.handler",
    "EndpointStateFunction": "middleware.entrypoints.lambda_endpoint_state.handler",
    "SweeperFunction": "middleware.entrypoints.lambda_sweeper.handler",
    "RealtimeFunction": "middleware.entrypoints.lambda_realtime.handler",
    "LibraryFunction": "middleware.entrypoints.lambda_library.handler",
}
# The only actions granted on Resource "*", each because AWS offers no resource to name.
STAR_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments": "X-Ray write calls take no resource",
    "xray:PutTelemetryRecords": "X-Ray write calls take no resource",
    "ecr:GetAuthorizationToken": "the registry login token is account-wide",
    "cloudwatch:PutMetricData": "takes no resource; the statement pins the namespace instead",
    "sagemaker:ListEndpoints": "list calls take no resource",
    "sagemaker:ListEndpointConfigs": "list calls take no resource",
    "sagemaker:ListModels": "list calls take no resource",
    "application-autoscaling:DescribeScalableTargets": "Auto Scaling describe calls take no resource",
    "application-autoscaling:DescribeScalingPolicies": "Auto Scaling describe calls take no resource",
    "application-autoscaling:DescribeScalingActivities": "Auto Scaling describe calls take no resource",
    "cloudwatch:GetMetricStatistics": "metric reads take no resource",
}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def functions() -> dict[str, dict[str, Any]]:
    return resources("AWS::Serverless::Function")


def statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement in the template, with the resource holding it (conditional ones too)."""
    for name, resource in load_template()["Resources"].items():
        props = resource.get("Properties", {})
        documents = [props[k] for k in ("PolicyDocument", "AssumeRolePolicyDocument") if k in props]
        for policy in props.get("Policies", []):
            if "Fn::If" in policy:  # [condition, policy, AWS::NoValue]
                policy = policy["Fn::If"][1]
            documents.append(policy["PolicyDocument"])
        for document in documents:
            for statement in document["Statement"]:
                yield name, statement


def test_nothing_holding_data_is_deleted_with_the_stack():
    for kind in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SecretsManager::Secret"):
        for name, resource in resources(kind).items():
            assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain", name


def test_the_admin_key_secret_is_created_empty_for_the_middleware_to_fill():
    (secret,) = resources("AWS::SecretsManager::Secret").values()
    assert not {"SecretString", "GenerateSecretString"} & set(secret.get("Properties", {}))
    outputs = load_template()["Outputs"]
    assert outputs["AdminKeySecretArn"]["Value"] == {"Ref": "AdminKeySecret"}


def test_every_function_is_a_handler_of_the_repository():
    assert {name: f["Properties"]["Handler"] for name, f in functions().items()} == FUNCTIONS
    for handler in FUNCTIONS.values():
        module, attribute = handler.rsplit(".", 1)
        path = ROOT / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"{handler}: {path.relative_to(ROOT)} does not exist"
        names = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
        assert attribute in names, f"{path.relative_to(ROOT)} defines no top-level {attribute!r}"


def test_every_function_runs_python312_with_its_own_role_and_a_log_group_that_expires():
    template = load_template()
    assert template["Globals"]["Function"]["Runtime"] == "python3.12"
    groups = {r["Properties"]["LogGroupName"]["Fn::Sub"]: r["Properties"] for r in resources("AWS::Logs::LogGroup").values()
              if "LogGroupName" in r["Properties"]}  # fmt: skip
    roles = set()
    for name, function in functions().items():
        props = function["Properties"]
        roles.add(props["Role"]["Fn::GetAtt"][0])
        assert function["Metadata"]["BuildMethod"] == "makefile", name
        group = groups["/aws/lambda/" + props["FunctionName"]["Fn::Sub"]]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert len(roles) == len(FUNCTIONS)


def test_every_setting_the_template_sets_is_a_real_setting():
    template = load_template()
    environments = [template["Globals"]["Function"]["Environment"]["Variables"]]
    environments += [f["Properties"].get("Environment", {}).get("Variables", {}) for f in functions().values()]
    names = {name for env in environments for name in env}
    assert all(name.startswith("SDCLOUD_") for name in names)
    fields = {"SDCLOUD_" + field.upper() for field in Settings.model_fields}
    assert names - fields == set(), "not a field of middleware/settings.py Settings"
    assert environments[0]["SDCLOUD_MODE"] == "aws"


def test_each_sns_subscription_has_a_dead_letter_queue_that_lets_sns_in():
    subscribed = set()
    for function in functions().values():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "SNS":
                subscribed.add(event["Properties"]["Topic"]["Ref"])
                dlq = event["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
                assert dlq == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
    for subscription in resources("AWS::SNS::Subscription").values():
        assert "RedrivePolicy" in subscription["Properties"]
    assert subscribed == set(resources("AWS::SNS::Topic")) == {"SuccessTopic", "ErrorTopic"}
    (policy,) = resources("AWS::SQS::QueuePolicy").values()
    (sns,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert sns["Principal"] == {"Service": "sns.amazonaws.com"}
    assert sns["Condition"]["ArnEquals"]["aws:SourceArn"] == [{"Ref": "SuccessTopic"}, {"Ref": "ErrorTopic"}]


def test_event_rules_route_endpoint_state_changes_and_a_minute_sweep():
    # The real-time and import functions have no event source: the API invokes them.
    events = {name: f["Properties"].get("Events") for name, f in functions().items()}
    assert events["RealtimeFunction"] is None and events["LibraryFunction"] is None
    (state,) = events["EndpointStateFunction"].values()
    assert state["Type"] == "EventBridgeRule"
    assert state["Properties"]["Pattern"]["detail-type"] == ["SageMaker Endpoint State Change"]
    (sweep,) = events["SweeperFunction"].values()
    assert sweep["Type"] == "Schedule" and sweep["Properties"]["Schedule"] == "rate(1 minute)"
    (api,) = events["ApiFunction"].values()
    assert api["Properties"]["Path"] == "/{proxy+}" and api["Properties"]["Method"] == "ANY"


def role_of(function: str) -> str:
    return functions()[function]["Properties"]["Role"]["Fn::GetAtt"][0]


def test_every_event_function_dead_letters_what_lambda_could_not_deliver():
    """Each function Lambda invokes asynchronously (all but the API's) keeps its failed events."""
    dlq = {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
    for name, function in functions().items():
        if name == "ApiFunction":
            continue
        assert function["Properties"]["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": dlq}, name
        sends = [s for h, s in statements() if h == role_of(name) and "sqs:SendMessage" in as_list(s["Action"])]
        assert [s["Resource"] for s in sends] == [dlq], name


def test_the_api_hands_realtime_jobs_to_the_realtime_function_only():
    api = functions()["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api["SDCLOUD_REALTIME_FUNCTION_NAME"] == {"Ref": "RealtimeFunction"}
    invokes = [(h, s) for h, s in statements() if any(a.startswith("lambda:") for a in as_list(s["Action"]))]
    assert [(h, s["Action"], s["Resource"]) for h, s in invokes] == [
        ("ApiFunctionRole", "lambda:InvokeFunction", {"Fn::GetAtt": ["RealtimeFunction", "Arn"]}),
        ("ApiFunctionRole", "lambda:InvokeFunction", {"Fn::GetAtt": ["LibraryFunction", "Arn"]}),
    ]
    # SageMaker cuts a real-time invocation at 60 s; the function has time left to end the job.
    assert 60 < functions()["RealtimeFunction"]["Properties"]["Timeout"] <= 900
    invokers = {h for h, s in statements() if "sagemaker:InvokeEndpoint" in as_list(s["Action"])}
    assert invokers == {role_of("ApiFunction"), role_of("RealtimeFunction")}


def test_imports_by_url_run_in_the_import_function_with_only_the_library_to_touch():
    api = functions()["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api["SDCLOUD_LIBRARY_FUNCTION_NAME"] == {"Ref": "LibraryFunction"}
    function = functions()["LibraryFunction"]["Properties"]
    name = {"Fn::Sub": "${AWS::StackName}-library"}
    assert function["FunctionName"] == name
    # its own library turns the URL source on from the same setting (a string: no self-reference)
    assert function["Environment"]["Variables"]["SDCLOUD_LIBRARY_FUNCTION_NAME"] == name
    assert function["Timeout"] == 900  # Lambda's limit; the stale-import rule covers the rest
    assert function["EventInvokeConfig"]["MaximumRetryAttempts"] == 0  # a retry would download again
    role = role_of("LibraryFunction")
    granted = [s for h, s in statements() if h == role]
    tables = {str(r) for s in granted if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))
              for r in as_list(s["Resource"])}  # fmt: skip
    assert tables and all("ModelsTable" in r for r in tables), tables
    objects = [r for s in granted if "s3:PutObject" in as_list(s["Action"]) for r in as_list(s["Resource"])]
    assert objects == [{"Fn::Sub": "${BlobBucket.Arn}/imports/*"}, {"Fn::Sub": "${BlobBucket.Arn}/models/*"}]
    assert not [s for s in granted if any(a.startswith(("sagemaker:", "secretsmanager:", "lambda:"))
                                          for a in as_list(s["Action"]))]  # fmt: skip
    rules = {r["Id"]: r for r in resources("AWS::S3::Bucket")["BlobBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-import-staging"]["Prefix"] == "imports/"


def test_the_api_is_throttled_and_access_logged():
    (api,) = resources("AWS::Serverless::Api").values()
    (settings,) = api["Properties"]["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurstLimit"}
    assert api["Properties"]["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    # Below Lambda's 6 MB synchronous payload, so an oversized body gets the middleware's 413.
    limit = int(functions()["ApiFunction"]["Properties"]["Environment"]["Variables"]["SDCLOUD_MAX_BODY_BYTES"])
    assert 0 < limit < 6 * 1024 * 1024


def test_no_statement_grants_every_action_and_star_resources_only_where_aws_requires():
    for holder, statement in statements():
        actions = as_list(statement.get("Action", []))
        if statement["Effect"] == "Deny":
            continue
        assert not [a for a in actions if a == "*" or a.endswith(":*")], (holder, statement)
        if "*" in as_list(statement.get("Resource", [])):
            assert set(actions) <= set(STAR_RESOURCE_ACTIONS), (holder, actions)


def test_pass_role_names_only_the_sagemaker_execution_role():
    passes = [(h, s) for h, s in statements() if "iam:PassRole" in as_list(s.get("Action", []))]
    assert [h for h, _ in passes] == ["ApiFunctionRole"]
    (_, statement) = passes[0]
    assert statement["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_sagemaker_and_alarm_calls_name_only_our_resources():
    """SageMaker resources by the stack's name prefix, alarms by the middleware's own (sdcloud-)."""
    for holder, statement in statements():
        actions = as_list(statement.get("Action", []))
        scoped = [a for a in actions if a.startswith(("sagemaker:", "cloudwatch:")) and a not in STAR_RESOURCE_ACTIONS]
        for resource in as_list(statement.get("Resource", [])) if scoped else ():
            arn = resource["Fn::Sub"]
            if arn.startswith("arn:${AWS::Partition}:sagemaker:"):
                assert arn.endswith(("model/${SageMakerNamePrefix}*", "endpoint-config/${SageMakerNamePrefix}*",
                                     "endpoint/${SageMakerNamePrefix}*")), (holder, arn)  # fmt: skip
            else:
                assert arn.endswith(":alarm:sdcloud-*"), (holder, arn)
            assert ":${AWS::Region}:${AWS::AccountId}:" in arn, (holder, arn)


def test_the_execution_role_reads_models_and_job_input_and_writes_outputs_only():
    by_sid = {s.get("Sid"): s for h, s in statements() if h == "SageMakerExecutionRole" and "Sid" in s}
    reads = [r["Fn::Sub"] for r in by_sid["ReadModelsAndJobInput"]["Resource"]]
    assert reads == ["${BlobBucket.Arn}/models/*", "${BlobBucket.Arn}/jobs/*/request.json",
                     "${BlobBucket.Arn}/jobs/*/cancel", "${BlobBucket.Arn}/jobs/*/skip"]  # fmt: skip
    writes = [r["Fn::Sub"] for r in by_sid["WriteOutputs"]["Resource"]]
    assert writes == ["${BlobBucket.Arn}/jobs/*", "${BlobBucket.Arn}/async-outputs/*", "${BlobBucket.Arn}/async-failures/*"]
    assert by_sid["Notify"]["Resource"] == [{"Ref": "SuccessTopic"}, {"Ref": "ErrorTopic"}]
    (trust,) = [s for h, s in statements() if h == "SageMakerExecutionRole" and s.get("Action") == "sts:AssumeRole"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}


def test_outputs_tell_the_operator_and_the_middleware_everything():
    outputs = load_template()["Outputs"]
    assert {"ApiUrl", "AdminKeySecretArn", "BucketName", "JobsTableName", "UsersTableName", "ApiKeysTableName",
            "SuccessTopicArn", "ErrorTopicArn", "SageMakerExecutionRoleArn"} <= set(outputs)  # fmt: skip


def test_the_template_has_no_yaml_aliases_cloudformation_would_refuse():
    tokens = yaml.scan(TEMPLATE.read_text())
    assert not [t for t in tokens if isinstance(t, (yaml.AliasToken, yaml.AnchorToken))]
