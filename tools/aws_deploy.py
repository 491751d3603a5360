"""Operator commands for AWS mode: `make deploy`, `make destroy`, `make image`.

    python tools/aws_deploy.py deploy  [--stack-name sdcloud] [--region R] [--parameter Name=value ...]
    python tools/aws_deploy.py destroy [--stack-name sdcloud] [--region R] [--purge]
    python tools/aws_deploy.py image   [--region R] [--repository sdcloud-inference] [--tag TAG]

deploy: `sam build` (the Lambda code, see tools/lambda_artifact.py), `sam package` (uploads it to
SAM's managed bucket), then a CloudFormation change set that creates the stack or upgrades it in
place (tables, bucket and secret are Retain: data survives), with the stack's events as progress.
destroy: deletes the stack; the tables, the bucket and the admin key secret stay unless --purge,
which asks for the stack name typed back and then deletes them too.
image: docker build of inference_container/Dockerfile and a push to ECR (needs a Docker engine).

Runs in .venv-iac (boto3 and the sam command come with SAM CLI); AWS credentials as boto3 finds
them (AWS_PROFILE, environment, SSO). Nothing secret is printed: the admin key stays in Secrets
Manager and this prints only the command that reads it.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import aws_stack  # noqa: E402
from tools.aws_stack import StackError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "middleware" / "template.yaml"
BUILD_DIR = ROOT / "build" / "sam"
PACKAGED = BUILD_DIR / "packaged.yaml"
DOCKERFILE = ROOT / "inference_container" / "Dockerfile"
# Retained resources (DeletionPolicy Retain) by the output naming them: what --purge deletes.
RETAINED_OUTPUTS = {"JobsTableName": "table", "UsersTableName": "table", "ApiKeysTableName": "table",
                    "BucketName": "bucket", "AdminKeySecretArn": "secret"}  # fmt: skip


def say(line: str = "") -> None:
    print(line, flush=True)


# --- pure parts ----------------------------------------------------------------------------------
class _AnyTagLoader(yaml.SafeLoader):
    """Reads a CloudFormation template's structure, ignoring the meaning of ``!Ref``-style tags."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, _suffix, node: None)


def template_parameters(template_text: str) -> list[str]:
    """Names of the template's Parameters, in order."""
    document = yaml.load(template_text, Loader=_AnyTagLoader)  # noqa: S506 - SafeLoader subclass
    return list((document or {}).get("Parameters") or {})


def sam_command(*args: str) -> list[str]:
    """The sam beside this interpreter (.venv-iac/bin/sam), else the one on PATH."""
    beside = Path(sys.executable).parent / "sam"
    exe = str(beside) if beside.exists() else shutil.which("sam")
    if exe is None:
        raise StackError("the sam command was not found: run `make deploy` (it builds .venv-iac) "
                         "or install aws-sam-cli")  # fmt: skip
    return [exe, *args]


def change_set_name(now: datetime) -> str:
    return "sdcloud-" + now.strftime("%Y%m%d-%H%M%S")


def purge_confirmed(stack_name: str, typed: str) -> bool:
    return typed.strip() == stack_name


def retained(outputs: dict[str, str]) -> list[tuple[str, str]]:
    """(kind, name) of the resources the stack keeps on delete, from its outputs."""
    return [(kind, outputs[key]) for key, kind in RETAINED_OUTPUTS.items() if key in outputs]


def image_uri(registry: str, repository: str, tag: str) -> str:
    return f"{registry.removeprefix('https://')}/{repository}:{tag}"


def docker_login_parts(authorization_data: dict[str, Any]) -> tuple[str, str, str]:
    """(user, password, registry) from ECR's GetAuthorizationToken answer."""
    user, _, password = base64.b64decode(authorization_data["authorizationToken"]).decode().partition(":")
    return user, password, authorization_data["proxyEndpoint"]


# --- steps -----------------------------------------------------------------------------------
def run(command: list[str], **kwargs: Any) -> None:
    say("$ " + " ".join(command))
    result = subprocess.run(command, cwd=ROOT, **kwargs)
    if result.returncode != 0:
        raise StackError(f"{Path(command[0]).name} failed (exit {result.returncode}); see its output above")


def build_and_package(region: str) -> str:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    run(sam_command("build", "--template-file", str(TEMPLATE), "--build-dir", str(BUILD_DIR)), env=env)
    run(sam_command("package", "--template-file", str(BUILD_DIR / "template.yaml"), "--output-template-file",
                    str(PACKAGED), "--resolve-s3", "--region", region), env=env)  # fmt: skip
    return PACKAGED.read_text()


def _follow(cfn: Any, name: str, since: datetime, kind: str, stack_id: str | None = None) -> None:
    final = ""
    for line in aws_stack.follow(cfn, name, since, stack_id=stack_id):
        final = line
        say(line)
    if not aws_stack.succeeded(final, kind):
        raise StackError(f"stack {name} ended {final}; the events above say which resource failed and why")


def deploy(session: Any, name: str, overrides: dict[str, str]) -> int:
    cfn = session.client("cloudformation")
    region = session.region_name
    stack = aws_stack.describe(cfn, name)
    kind = aws_stack.change_set_type(stack)
    body = build_and_package(region)
    params = aws_stack.plan_parameters(template_parameters(body), overrides, stack.parameters if stack else ())
    now = datetime.now(timezone.utc)
    say(f"{'Creating' if kind == 'CREATE' else 'Upgrading'} stack {name} in {region} ...")
    template = aws_stack.template_source(body, lambda bucket, key, data: _upload(session, bucket, key, data))
    change_set = aws_stack.create_change_set(cfn, name, kind, template, params, change_set_name(now))
    if aws_stack.wait_for_change_set(cfn, change_set):
        cfn.execute_change_set(ChangeSetName=change_set)
        # Events carry CloudFormation's clock: allow a little skew so none is missed.
        _follow(cfn, name, now - timedelta(seconds=5), kind)
    else:
        say(f"Stack {name} is already up to date.")
    final = aws_stack.describe(cfn, name)
    outputs = final.outputs if final else {}
    if outputs.get("ApiUrl"):
        warm_api(outputs["ApiUrl"])
    say()
    for line in aws_stack.output_lines(outputs, region):
        say(line)
    return 0


def warm_api(api_url: str, *, opener: Callable[..., Any] | None = None) -> bool:
    """Start the API function once: its first start creates the admin and puts the key into the
    secret, so the key is there when the deploy ends. A failure is reported, never fatal."""
    import urllib.request

    url = api_url.rstrip("/") + "/v1/ping"
    try:
        with (opener or urllib.request.urlopen)(url, timeout=30) as response:
            response.read()
        return True
    except Exception as error:  # noqa: BLE001 - the stack is deployed; the key comes on the first request
        say(f"The API did not answer {url} yet ({type(error).__name__}); the admin key is written on its first request.")
        return False


def _upload(session: Any, bucket: str, key: str, data: bytes) -> str:
    s3 = session.client("s3")
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return f"https://{bucket}.s3.{session.region_name}.amazonaws.com/{key}"


def destroy(session: Any, name: str, purge: bool, *, confirm: Callable[[str], str] = input,
            cfn: Any = None) -> int:  # fmt: skip
    cfn = cfn or session.client("cloudformation")
    stack = aws_stack.describe(cfn, name)
    if stack is None:
        say(f"There is no stack {name} in {session.region_name}: nothing to delete.")
        return 0
    kept = retained(stack.outputs)
    say("SageMaker endpoints made through the API are not part of the stack and keep billing: delete them "
        "first (DELETE /v1/endpoints/{name}).")  # fmt: skip
    if purge:
        say(f"--purge deletes the stack AND its data: {', '.join(n for _, n in kept) or 'no retained resources'}.")
        if not purge_confirmed(name, confirm(f"Type the stack name ({name}) to confirm: ")):
            say("Not confirmed: nothing deleted.")
            return 1
    now = datetime.now(timezone.utc)
    cfn.delete_stack(StackName=name)
    _follow(cfn, name, now - timedelta(seconds=5), "DELETE", stack_id=stack.stack_id or None)
    if purge:
        _purge(session, kept)
        say("Deleted the stack and its data.")
    else:
        say("Deleted the stack. Kept (DeletionPolicy Retain), delete them yourself or with `make destroy PURGE=1`:")
        for kind, resource in kept:
            say(f"  {kind:<7} {resource}")
        say("A new `make deploy` creates new, empty ones; these stay as they are.")
    return 0


def _purge(session: Any, kept: list[tuple[str, str]]) -> None:
    for kind, resource in kept:
        say(f"deleting {kind} {resource}")
        if kind == "table":
            ddb = session.client("dynamodb")
            ddb.delete_table(TableName=resource)
        elif kind == "bucket":
            bucket = session.resource("s3").Bucket(resource)
            bucket.object_versions.delete()  # every version and delete marker, then the bucket
            bucket.delete()
        elif kind == "secret":
            session.client("secretsmanager").delete_secret(SecretId=resource, ForceDeleteWithoutRecovery=True)


def image(session: Any, repository: str, tag: str) -> int:
    docker = shutil.which("docker")
    if docker is None:
        raise StackError("docker is not installed: `make image` builds inference_container/Dockerfile with "
                         "Docker; run it on a machine with a Docker engine (see README, AWS mode)")  # fmt: skip
    if subprocess.run([docker, "info"], capture_output=True).returncode != 0:
        raise StackError("no Docker engine answers (docker info failed): start Docker, then run `make image` again")
    ecr = session.client("ecr")
    try:
        ecr.describe_repositories(repositoryNames=[repository])
    except ecr.exceptions.RepositoryNotFoundException:
        say(f"creating ECR repository {repository}")
        ecr.create_repository(repositoryName=repository, imageScanningConfiguration={"scanOnPush": True},
                              imageTagMutability="IMMUTABLE")  # fmt: skip
    user, password, registry = docker_login_parts(ecr.get_authorization_token()["authorizationData"][0])
    uri = image_uri(registry, repository, tag)
    if _tag_exists(ecr, repository, tag):
        say(f"Image {uri} is already in ECR (tags are immutable): commit your change or pass TAG=... for a new one.")
        return 0
    run([docker, "login", "--username", user, "--password-stdin", registry], input=password.encode())
    run([docker, "build", "-f", str(DOCKERFILE), "-t", uri, "."])
    run([docker, "push", uri])
    say(f"Image: {uri}")
    say(f'Make it the default engine image: make deploy PARAMS="InferenceImageUri={uri}"')
    say('(or name it as "image" in each POST /v1/endpoints)')
    return 0


def _tag_exists(ecr: Any, repository: str, tag: str) -> bool:
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        return False
    return True


def default_tag() -> str:
    result = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() or datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SD Cloud on AWS: deploy, destroy, image")
    parser.add_argument("command", choices=["deploy", "destroy", "image"])
    parser.add_argument("--stack-name", default="sdcloud")
    parser.add_argument("--region", default=None, help="default: the AWS configuration's region")
    parser.add_argument("--parameter", action="append", default=[], metavar="Name=value",
                        help="template parameter (deploy); repeat for several")  # fmt: skip
    parser.add_argument("--purge", action="store_true", help="destroy: delete the tables, bucket and secret too")
    parser.add_argument("--repository", default="sdcloud-inference", help="image: the ECR repository")
    parser.add_argument("--tag", default=None, help="image: the tag (default: the git commit)")
    args = parser.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        session = boto3.Session(region_name=args.region)
        if not session.region_name:
            raise StackError("no AWS region: pass REGION=... (make) / --region, or set AWS_REGION")
        if args.command == "deploy":
            return deploy(session, args.stack_name, aws_stack.parse_overrides(args.parameter))
        if args.command == "destroy":
            return destroy(session, args.stack_name, args.purge)
        return image(session, args.repository, args.tag or default_tag())
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except NoCredentialsError:
        print("error: no AWS credentials found: run `aws configure` or `aws sso login`, or set AWS_PROFILE",
              file=sys.stderr)  # fmt: skip
        return 1
    except (BotoCoreError, ClientError) as error:  # access denied, throttled, ...: in AWS's words
        print(f"error: an AWS call failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
