"""The operator commands' own logic (tools/aws_deploy.py, tools/aws_stack.py, tools/lambda_artifact.py):
parameters, change sets, stack events, output lines, the purge, the image checks.

CloudFormation calls go through botocore's Stubber (moto cannot deploy a SAM template); the purge
of retained data runs against a real moto_server.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.stub import Stubber

from tests.support import moto_server as moto
from tests.support.cfn_template import TEMPLATE, load_template
from tools import aws_deploy, aws_stack, lambda_artifact
from tools.aws_stack import Stack, StackError

T0 = datetime(2026, 12, 2, 6, 0, 0, tzinfo=timezone.utc)
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/sdcloud/0f6a2c30-0000-0000-0000-000000000000"
CHANGE_SET_ID = "arn:aws:cloudformation:us-east-1:123456789012:changeSet/sdcloud-1/00000000-0000-0000-0000-000000000001"


@pytest.fixture
def cfn():
    client = boto3.client("cloudformation", **moto.CREDENTIALS)
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield client
        stubber.assert_no_pending_responses()


def stack_answer(status: str, outputs: dict[str, str] | None = None, params: tuple[str, ...] = ()) -> dict:
    return {"Stacks": [{
        "StackName": "sdcloud", "StackId": STACK_ID, "StackStatus": status, "CreationTime": T0,
        "Parameters": [{"ParameterKey": p, "ParameterValue": "x"} for p in params],
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in (outputs or {}).items()],
    }]}  # fmt: skip


def event(n: int, status: str, logical: str, at: datetime, reason: str | None = None) -> dict:
    e = {"StackId": STACK_ID, "EventId": f"e{n}", "StackName": "sdcloud", "LogicalResourceId": logical,
         "ResourceType": "AWS::DynamoDB::Table", "Timestamp": at, "ResourceStatus": status}  # fmt: skip
    if reason:
        e["ResourceStatusReason"] = reason
    return e


# --- parameters ------------------------------------------------------------------------------
def test_overrides_are_name_value_pairs_and_bad_ones_say_the_form():
    assert aws_stack.parse_overrides(["EnableTracing=true", "Empty="]) == {"EnableTracing": "true", "Empty": ""}
    with pytest.raises(StackError, match="Name=value"):
        aws_stack.parse_overrides(["EnableTracing"])
    with pytest.raises(StackError, match="Name=value"):
        aws_stack.parse_overrides(["=true"])


def test_an_upgrade_keeps_the_values_the_stack_has_unless_overridden():
    names = aws_deploy.template_parameters(TEMPLATE.read_text())
    assert names == list(load_template()["Parameters"])
    params = aws_stack.plan_parameters(names, {"LogRetentionDays": "90"}, existing=("EnableTracing", "LogRetentionDays"))
    assert {"ParameterKey": "LogRetentionDays", "ParameterValue": "90"} in params
    assert {"ParameterKey": "EnableTracing", "UsePreviousValue": True} in params
    # Parameters the stack does not have yet take the template's default: they are not sent.
    assert {p["ParameterKey"] for p in params} == {"LogRetentionDays", "EnableTracing"}
    assert aws_stack.plan_parameters(names, {}) == []


def test_an_unknown_parameter_is_refused_with_the_known_ones():
    with pytest.raises(StackError, match="unknown template parameter.*Tracing.*the template has: JobOutputRetentionDays"):
        aws_stack.plan_parameters(["JobOutputRetentionDays"], {"Tracing": "true"})


# --- what the operator reads -----------------------------------------------------------------
def test_an_event_line_has_time_status_type_resource_and_reason():
    line = aws_stack.format_event(event(1, "CREATE_FAILED", "JobsTable", T0, "Resource limit exceeded"))
    assert line.startswith("06:00:00  CREATE_FAILED")
    assert "AWS::DynamoDB::Table" in line and line.endswith("JobsTable  (Resource limit exceeded)")
    assert aws_stack.format_event(event(2, "CREATE_COMPLETE", "JobsTable", T0)).endswith("JobsTable")


def test_output_lines_give_the_url_and_the_command_that_reads_the_admin_key():
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AdminKeySecret-abc"
    lines = aws_stack.output_lines({"ApiUrl": "https://x.execute-api.eu-west-1.amazonaws.com/prod",
                                    "AdminKeySecretArn": arn, "BucketName": "b"}, "eu-west-1")  # fmt: skip
    text = "\n".join(lines)
    assert "API URL:        https://x.execute-api.eu-west-1.amazonaws.com/prod" in text
    assert f"aws secretsmanager get-secret-value --region eu-west-1 --secret-id {arn} --query SecretString" in text
    assert lines[-1] == "BucketName:                 b"


# --- CloudFormation calls (Stubber) ------------------------------------------------------------
def test_describe_reads_the_stack_or_says_there_is_none(cfn):
    cfn.stubber.add_response("describe_stacks", stack_answer("UPDATE_COMPLETE", {"ApiUrl": "u"}, ("EnableTracing",)),
                             {"StackName": "sdcloud"})  # fmt: skip
    cfn.stubber.add_client_error("describe_stacks", "ValidationError", "Stack with id sdcloud does not exist")
    assert aws_stack.describe(cfn, "sdcloud") == Stack("sdcloud", "UPDATE_COMPLETE", ("EnableTracing",),
                                                       {"ApiUrl": "u"}, STACK_ID)  # fmt: skip
    assert aws_stack.describe(cfn, "sdcloud") is None


def test_change_set_type_creates_upgrades_or_says_what_to_do():
    assert aws_stack.change_set_type(None) == "CREATE"
    assert aws_stack.change_set_type(Stack("s", "UPDATE_ROLLBACK_COMPLETE", (), {})) == "UPDATE"
    with pytest.raises(StackError, match="make destroy"):
        aws_stack.change_set_type(Stack("s", "ROLLBACK_COMPLETE", (), {}))
    with pytest.raises(StackError, match="wait for it"):
        aws_stack.change_set_type(Stack("s", "UPDATE_IN_PROGRESS", (), {}))


def test_a_change_set_is_created_with_the_sam_capabilities_and_waited_for(cfn):
    params = [{"ParameterKey": "EnableTracing", "ParameterValue": "true"}]
    cfn.stubber.add_response("create_change_set", {"Id": CHANGE_SET_ID, "StackId": STACK_ID}, {
        "StackName": "sdcloud", "ChangeSetName": "sdcloud-1", "ChangeSetType": "UPDATE", "TemplateBody": "body",
        "Parameters": params, "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        "Description": "SD Cloud deploy (tools/aws_deploy.py)"})  # fmt: skip
    cfn.stubber.add_response("describe_change_set", {"Status": "CREATE_PENDING"}, {"ChangeSetName": CHANGE_SET_ID})
    cfn.stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE"}, {"ChangeSetName": CHANGE_SET_ID})
    naps: list[float] = []
    made = aws_stack.create_change_set(cfn, "sdcloud", "UPDATE", {"TemplateBody": "body"}, params, "sdcloud-1")
    assert made == CHANGE_SET_ID
    assert aws_stack.wait_for_change_set(cfn, made, sleep=naps.append) is True
    assert naps == [3.0]


def test_a_change_set_without_changes_is_dropped_and_a_refused_one_says_why(cfn):
    cfn.stubber.add_response("describe_change_set", {
        "Status": "FAILED", "StatusReason": "The submitted information didn't contain changes."})  # fmt: skip
    cfn.stubber.add_response("delete_change_set", {}, {"ChangeSetName": CHANGE_SET_ID})
    cfn.stubber.add_response("describe_change_set", {"Status": "FAILED", "StatusReason": "Parameter X is invalid"})
    assert aws_stack.wait_for_change_set(cfn, CHANGE_SET_ID, sleep=lambda s: None) is False
    with pytest.raises(StackError, match="refused the change set: Parameter X is invalid"):
        aws_stack.wait_for_change_set(cfn, CHANGE_SET_ID, sleep=lambda s: None)


def test_follow_prints_each_new_event_once_oldest_first_until_the_stack_settles(cfn):
    old = event(0, "UPDATE_COMPLETE", "sdcloud", T0 - timedelta(hours=1))
    first = [event(2, "CREATE_COMPLETE", "JobsTable", T0 + timedelta(seconds=20)),
             event(1, "CREATE_IN_PROGRESS", "JobsTable", T0 + timedelta(seconds=10)), old]  # fmt: skip
    done = event(3, "UPDATE_COMPLETE", "sdcloud", T0 + timedelta(seconds=30))
    cfn.stubber.add_response("describe_stack_events", {"StackEvents": first}, {"StackName": "sdcloud"})
    cfn.stubber.add_response("describe_stacks", stack_answer("UPDATE_IN_PROGRESS"), {"StackName": "sdcloud"})
    cfn.stubber.add_response("describe_stack_events", {"StackEvents": [done, *first]}, {"StackName": "sdcloud"})
    cfn.stubber.add_response("describe_stacks", stack_answer("UPDATE_COMPLETE"), {"StackName": "sdcloud"})
    cfn.stubber.add_response("describe_stack_events", {"StackEvents": [done, *first]}, {"StackName": "sdcloud"})
    naps: list[float] = []
    lines = list(aws_stack.follow(cfn, "sdcloud", T0, sleep=naps.append))
    assert [line.split()[1] for line in lines[:-1]] == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE", "UPDATE_COMPLETE"]
    assert lines[-1] == "UPDATE_COMPLETE" and aws_stack.succeeded(lines[-1], "UPDATE")
    assert naps == [5.0]
    assert not aws_stack.succeeded("UPDATE_ROLLBACK_COMPLETE", "UPDATE")


def test_a_template_too_big_to_send_inline_is_uploaded_beside_the_code():
    small = "Resources: {}\n"
    assert aws_stack.template_source(small, upload=lambda *a: pytest.fail("uploaded")) == {"TemplateBody": small}
    big = "CodeUri: s3://aws-sam-cli-managed-default-bucket-1a2b/3f9c\n" + "#" * aws_stack.MAX_TEMPLATE_BODY
    uploads = []

    def upload(bucket: str, key: str, data: bytes) -> str:
        uploads.append((bucket, key, data))
        return f"https://{bucket}.s3.amazonaws.com/{key}"

    source = aws_stack.template_source(big, upload)
    ((bucket, key, data),) = uploads
    assert bucket == "aws-sam-cli-managed-default-bucket-1a2b" and data == big.encode()
    assert source == {"TemplateURL": f"https://{bucket}.s3.amazonaws.com/{key}"}
    with pytest.raises(StackError, match="sam package"):
        aws_stack.template_source("#" * (aws_stack.MAX_TEMPLATE_BODY + 1), upload)


# --- destroy -----------------------------------------------------------------------------------
def test_a_purge_not_confirmed_deletes_nothing(cfn, capsys):
    session = boto3.Session(**moto.CREDENTIALS)
    cfn.stubber.add_response("describe_stacks", stack_answer("UPDATE_COMPLETE", {"JobsTableName": "t1"}))
    asked = []
    code = aws_deploy.destroy(session, "sdcloud", True, confirm=lambda q: asked.append(q) or "sdcloud-typo", cfn=cfn)
    assert code == 1 and asked == ["Type the stack name (sdcloud) to confirm: "]
    assert "Not confirmed: nothing deleted." in capsys.readouterr().out


def test_destroy_without_purge_deletes_the_stack_and_lists_what_it_kept(cfn, capsys):
    session = boto3.Session(**moto.CREDENTIALS)
    outputs = {"JobsTableName": "jobs-1", "BucketName": "bucket-1", "AdminKeySecretArn": "arn:secret", "ApiUrl": "u"}
    cfn.stubber.add_response("describe_stacks", stack_answer("UPDATE_COMPLETE", outputs))
    cfn.stubber.add_response("delete_stack", {}, {"StackName": "sdcloud"})
    cfn.stubber.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": STACK_ID})
    cfn.stubber.add_response("describe_stacks", stack_answer("DELETE_COMPLETE"), {"StackName": STACK_ID})
    cfn.stubber.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": STACK_ID})
    assert aws_deploy.destroy(session, "sdcloud", False, cfn=cfn) == 0
    out = capsys.readouterr().out
    assert "table   jobs-1" in out and "bucket  bucket-1" in out and "secret  arn:secret" in out
    assert "make destroy PURGE=1" in out
    assert aws_deploy.retained(outputs) == [("table", "jobs-1"), ("bucket", "bucket-1"), ("secret", "arn:secret")]


@pytest.fixture(scope="module")
def moto_url():
    yield from moto.serve_or_skip("the purge test")


def test_purge_deletes_the_retained_tables_bucket_with_its_objects_and_the_secret(moto_url, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    session = boto3.Session(**moto.CREDENTIALS)
    ddb, s3, secrets = session.client("dynamodb"), session.client("s3"), session.client("secretsmanager")
    suffix = uuid.uuid4().hex[:8]
    table, bucket = f"jobs-{suffix}", f"sdcloud-purge-{suffix}"
    ddb.create_table(TableName=table, AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    for n in range(3):
        s3.put_object(Bucket=bucket, Key=f"jobs/{n}/result.json", Body=b"{}")
    arn = secrets.create_secret(Name=f"admin-{suffix}", SecretString="k")["ARN"]
    aws_deploy._purge(session, [("table", table), ("bucket", bucket), ("secret", arn)])
    assert table not in ddb.list_tables()["TableNames"]
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId=arn)


# --- image ---------------------------------------------------------------------------------------
def test_image_without_docker_says_where_to_run_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no docker on it
    with pytest.raises(StackError, match="docker is not installed.*machine with a Docker engine"):
        aws_deploy.image(boto3.Session(**moto.CREDENTIALS), "sdcloud-inference", "t1")


def test_ecr_login_parts_and_image_uri():
    token = base64.b64encode(b"AWS:secret-password").decode()
    data = {"authorizationToken": token, "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}
    user, password, registry = aws_deploy.docker_login_parts(data)
    assert (user, password) == ("AWS", "secret-password")
    assert aws_deploy.image_uri(registry, "sdcloud-inference", "abc123") == \
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sdcloud-inference:abc123"  # fmt: skip
    assert aws_deploy.purge_confirmed("sdcloud", " sdcloud\n") and not aws_deploy.purge_confirmed("sdcloud", "yes")


# --- the Lambda artifact's pip call --------------------------------------------------------------
def test_the_lambda_wheels_are_asked_for_python312_manylinux_binaries_only(tmp_path):
    command = lambda_artifact.pip_command(tmp_path / "t")
    joined = " ".join(command)
    assert "--python-version 3.12" in joined and "--implementation cp" in joined
    assert "--only-binary=:all:" in command and "--platform manylinux2014_x86_64" in joined
    assert command[-2:] == ["-r", str(lambda_artifact.REQUIREMENTS)]
    pins = tmp_path / "req.txt"
    pins.write_text("fastapi==1\n")
    before = lambda_artifact.deps_key(pins)
    pins.write_text("fastapi==2\n")
    assert lambda_artifact.deps_key(pins) != before


def test_an_image_tag_already_in_ecr_is_found_and_a_new_one_is_not():
    ecr = boto3.client("ecr", **moto.CREDENTIALS)
    with Stubber(ecr) as stubber:
        stubber.add_response("describe_images", {"imageDetails": [{"imageTags": ["t1"]}]},
                             {"repositoryName": "sdcloud-inference", "imageIds": [{"imageTag": "t1"}]})  # fmt: skip
        stubber.add_client_error("describe_images", "ImageNotFoundException", "The image with imageId ... does not exist")
        assert aws_deploy._tag_exists(ecr, "sdcloud-inference", "t1") is True
        assert aws_deploy._tag_exists(ecr, "sdcloud-inference", "t2") is False
        stubber.assert_no_pending_responses()


def test_without_a_region_the_command_says_how_to_give_one(monkeypatch, tmp_path, capsys):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    assert aws_deploy.main(["deploy"]) == 1
    assert "no AWS region: pass REGION=... (make) / --region, or set AWS_REGION" in capsys.readouterr().err


def test_sam_builds_every_function_through_the_lambda_artifact_makefile():
    makefile = (lambda_artifact.ROOT / "tools" / "lambda_build" / "Makefile").read_text()
    (targets,) = [line.split(":")[0].split() for line in makefile.splitlines() if line.startswith("build-")]
    functions = [n for n, r in load_template()["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    assert sorted(targets) == sorted(f"build-{name}" for name in functions)
    assert load_template()["Globals"]["Function"]["CodeUri"] == "../tools/lambda_build/"


def test_without_credentials_the_command_says_how_to_log_in(monkeypatch, tmp_path, capsys):
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert aws_deploy.main(["deploy", "--region", "eu-west-1"]) == 1
    assert "no AWS credentials found: run `aws configure`" in capsys.readouterr().err


def test_the_deploy_wakes_the_api_once_so_the_admin_key_is_written(capsys):
    from tools.aws_deploy import warm_api

    class Answer:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b'{"status":"ok"}'

    asked = []

    def opener(url, timeout):
        asked.append((url, timeout))
        return Answer()

    assert warm_api("https://abc.execute-api.eu-west-1.amazonaws.com/prod/", opener=opener)
    assert asked == [("https://abc.execute-api.eu-west-1.amazonaws.com/prod/v1/ping", 30)]

    def refused(url, timeout):
        raise OSError("connection refused")

    assert not warm_api("https://abc.example/prod", opener=refused)
    assert "first request" in capsys.readouterr().out


def test_the_lambda_code_is_precompiled_when_a_matching_python_is_given(tmp_path, monkeypatch):
    import sys

    from tools import lambda_artifact

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("VALUE = 1\n")
    # Any interpreter shows the mechanism; the build asks for a python3.12 one.
    assert lambda_artifact.precompile(tmp_path, sys.executable)
    assert list((tmp_path / "pkg" / "__pycache__").glob("mod.*.pyc"))
    assert not lambda_artifact.precompile(tmp_path, None)
    monkeypatch.setenv("SDCLOUD_LAMBDA_PYTHON", "/opt/python3.12/bin/python3.12")
    assert lambda_artifact.find_python312() == "/opt/python3.12/bin/python3.12"
