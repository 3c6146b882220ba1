"""The cloud, checked offline: template.yaml through the SAM transform and cfn-lint, the compose
profile against the compose-spec schema, the Dockerfile through hadolint, and worker_fn's
/events fed the body EventBridge Scheduler delivers. None of it needs Docker or an AWS account.

hadolint, cfn-lint, check-jsonschema and aws-sam-translator are declared test dependencies
(pyproject.toml): a test that cannot find one fails rather than skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cfnlint.api
import psycopg
import pytest
import redis
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
from starlette.testclient import TestClient

from local import profile
from support import REPO
from support.stores import tally
from support.votes import expected_tally, make_votes, push
from worker_fn.app import create_app
from worker_fn.settings import WorkerSettings

TEMPLATE = REPO / "template.yaml"
COMPOSE = REPO / "local" / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"  # the three images', one build argument apart
REGION = "us-east-1"
# What `sam build` writes into each function once it has built and tagged the image.
IMAGE_URI = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/voting:{{function}}"
RATE = re.compile(r"rate\((?P<value>[1-9][0-9]*) (?P<unit>minute|hour|day)(?P<plural>s?)\)")
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}

Conn = psycopg.Connection[tuple[object, ...]]


class OfflinePolicyLoader(ManagedPolicyLoader):
    """The transform asks IAM for the ARNs of AWS managed policies; offline, it asks this."""

    def __init__(self) -> None:
        super().__init__(iam_client=None)  # type: ignore[arg-type]

    def load(self) -> dict[str, str]:
        return {name: f"arn:aws:iam::aws:policy/service-role/{name}" for name in
                ("AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole")}


def tool(name: str) -> str:
    """A command-line tool from this environment; missing, the calling test fails."""
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent),
                                                     os.environ.get("PATH", "")]))
    assert found, f"{name} is not installed: it is a test dependency (pip install -e '.[test]')"
    return found


def sam_transform(text: str) -> dict[str, Any]:
    """The CloudFormation template that `sam build && sam deploy` would submit for ``text``."""
    template = yaml_parse(text)
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["ImageUri"] = IMAGE_URI.format(function=name)
    with pytest.MonkeyPatch.context() as patch:  # the transform resolves AWS::Region itself
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        return transform(template, {}, OfflinePolicyLoader())


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs of an EventBridge ``rate()`` expression; None if it is not one
    EventBridge accepts ("1 minute" is singular, "5 minutes" plural; there are no seconds)."""
    match = RATE.fullmatch(expression)
    if match is None or (match["value"] == "1") == bool(match["plural"]):
        return None
    return int(match["value"]) * UNIT_SECONDS[match["unit"]]


def schedule_errors(transformed: dict[str, Any]) -> list[str]:
    """Schedules that are not a valid rate of at least a minute: no linter rejects those."""
    errors = []
    for name, resource in transformed["Resources"].items():
        if resource["Type"] in ("AWS::Scheduler::Schedule", "AWS::Events::Rule"):
            expression = resource["Properties"].get("ScheduleExpression", "")
            seconds = rate_seconds(expression)
            if seconds is None or seconds < 60:
                errors.append(f"{name}: {expression!r} is not an EventBridge rate of at least "
                              "1 minute")
    return errors


def cloud_errors(text: str) -> list[str]:
    """Everything wrong with a template: transform errors, then cfn-lint errors on its
    output, then schedules too frequent for EventBridge."""
    try:
        transformed = sam_transform(text)
    except InvalidDocumentException as error:
        return [f"SAM transform: {cause.message}" for cause in error.causes]
    lint = cfnlint.api.lint(json.dumps(transformed), regions=[REGION])
    return [f"cfn-lint {match.rule.id}: {match.message}" for match in lint
            if match.rule.severity == "error"] + schedule_errors(transformed)


def planted(old: str, new: str) -> str:
    text = TEMPLATE.read_text()
    assert text.count(old) == 1, f"expected {old!r} once in template.yaml"
    return text.replace(old, new)


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return sam_transform(TEMPLATE.read_text())


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def env(function: dict[str, Any]) -> dict[str, Any]:
    return dict(function["Properties"]["Environment"]["Variables"])


def test_the_template_transforms_and_lints_clean(transformed: dict[str, Any]) -> None:
    """The SAM transform accepts template.yaml and cfn-lint finds nothing in its output."""
    matches = cfnlint.api.lint(json.dumps(transformed), regions=[REGION])
    assert [f"{m.rule.id} ({m.rule.severity}): {m.message}" for m in matches] == []
    assert schedule_errors(transformed) == []
    assert cloud_errors(TEMPLATE.read_text()) == []


@pytest.mark.parametrize(("old", "new", "caught"), [
    ("InvokeMode: RESPONSE_STREAM", "InvokeMode: STREAMING", "'STREAMING' is not one of"),
    ("ScheduleExpression: rate(1 minute)", "ScheduleExpression: rate(30 seconds)",
     "'rate(30 seconds)' is not an EventBridge rate"),
    ("ScheduleExpression: rate(1 minute)", "ScheduleExpression: rate(1 minutes)",
     "'rate(1 minutes)' is not an EventBridge rate"),
    ("Type: ScheduleV2", "Type: ScheduleV3", "SAM transform"),
    ("TargetType: lambda", "TargetType: function", "'function' is not one of"),
], ids=["invoke-mode", "rate-seconds", "rate-plural", "event-type", "target-type"])
def test_the_check_catches_a_planted_mistake(old: str, new: str, caught: str) -> None:
    """A mistake planted in a copy of the template makes the check fail, naming it."""
    errors = cloud_errors(planted(old, new))
    assert any(caught in error for error in errors), errors


@pytest.mark.parametrize(("expression", "seconds"), [
    ("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600),
    ("rate(2 days)", 172_800), ("rate(30 seconds)", None), ("rate(1 minutes)", None),
    ("rate(2 minute)", None), ("rate(0 minutes)", None), ("cron(* * * * ? *)", None),
])
def test_rate_seconds_reads_eventbridge_rates_only(expression: str, seconds: int | None) -> None:
    """The schedule assertion knows EventBridge's rate syntax, singular and plural."""
    assert rate_seconds(expression) == seconds


def test_only_result_streams_and_the_front_doors_are_wired(transformed: dict[str, Any]) -> None:
    """result_fn streams on a public Function URL; vote_fn sits behind the ALB, health-checked."""
    functions = resources(transformed, "AWS::Lambda::Function")
    urls = resources(transformed, "AWS::Lambda::Url")
    assert [url["Properties"] for url in urls.values()] == [
        {"TargetFunctionArn": {"Ref": "ResultFunction"}, "AuthType": "NONE",
         "InvokeMode": "RESPONSE_STREAM"}]
    assert {name: env(f).get("AWS_LWA_INVOKE_MODE") for name, f in functions.items()} == {
        "VoteFunction": None, "WorkerFunction": None, "ResultFunction": "response_stream"}
    result = functions["ResultFunction"]["Properties"]
    lifetime = transformed["Parameters"]["StreamLifetimeSeconds"]
    assert lifetime["Default"] <= lifetime["MaxValue"] < result["Timeout"]
    # Since October 2025 a public Function URL needs both actions granted.
    granted = {p["Properties"]["Action"]
               for p in resources(transformed, "AWS::Lambda::Permission").values()
               if p["Properties"]["FunctionName"] == {"Ref": "ResultFunction"}}
    assert granted == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}

    [group] = resources(transformed, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    assert group["Properties"]["TargetType"] == "lambda"
    assert group["Properties"]["Targets"] == [{"Id": {"Fn::GetAtt": ["VoteFunction", "Arn"]}}]
    assert group["Properties"]["HealthCheckEnabled"] is True
    permissions = resources(transformed, "AWS::Lambda::Permission").values()
    [permission] = [p["Properties"] for p in permissions
                    if p["Properties"]["Principal"] == "elasticloadbalancing.amazonaws.com"]
    assert permission["FunctionName"] == {"Fn::GetAtt": ["VoteFunction", "Arn"]}
    assert permission["Action"] == "lambda:InvokeFunction"
    [listener] = resources(transformed, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert listener["Properties"]["Port"] == 80


def test_the_adapter_waits_only_for_the_server_to_listen(transformed: dict[str, Any]) -> None:
    """The adapter's readiness is a TCP connect, so a store that is down cannot hold invocations."""
    for name, function in resources(transformed, "AWS::Lambda::Function").items():
        assert env(function)["AWS_LWA_READINESS_CHECK_PROTOCOL"] == "tcp", name


def test_the_worker_drops_ticks_rather_than_queueing_them(transformed: dict[str, Any]) -> None:
    """One drain at a time, no retries by Lambda or by the scheduler."""
    worker = resources(transformed, "AWS::Lambda::Function")["WorkerFunction"]["Properties"]
    assert worker["ReservedConcurrentExecutions"] == 1
    [config] = resources(transformed, "AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["FunctionName"] == {"Ref": "WorkerFunction"}
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    [schedule] = resources(transformed, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Target"]["RetryPolicy"] == {"MaximumRetryAttempts": 0}


def test_the_data_stores_are_reached_over_tls_with_resolved_secrets(
        transformed: dict[str, Any]) -> None:
    """Valkey over rediss:// as a cluster; PostgreSQL over TLS with a Secrets Manager password."""
    [cache] = resources(transformed, "AWS::ElastiCache::ServerlessCache").values()
    assert cache["Properties"]["Engine"] == "valkey"
    [secret] = resources(transformed, "AWS::SecretsManager::Secret").values()
    assert secret["Properties"]["GenerateSecretString"]["ExcludePunctuation"] is True
    functions = resources(transformed, "AWS::Lambda::Function")
    for function in functions.values():
        variables = env(function)
        if "REDIS_URL" in variables:
            assert variables["REDIS_URL"]["Fn::Sub"].startswith("rediss://")
            assert variables["REDIS_CLUSTER"] == "true"
        if "DATABASE_URL" in variables:
            url = variables["DATABASE_URL"]["Fn::Sub"]
            assert url.startswith("postgresql://{{resolve:secretsmanager:${DatabaseSecret}:")
            assert url.endswith("?sslmode=require")
    assert "NoEcho" in transformed["Parameters"]["VoteSecret"]


def test_each_function_has_its_own_least_privilege_role(transformed: dict[str, Any]) -> None:
    """One role per function, allowed its own log group and the VPC interface actions only."""
    vpc_access = {"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                  "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
                  "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}
    roles = resources(transformed, "AWS::IAM::Role")
    functions = resources(transformed, "AWS::Lambda::Function")
    used = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    assert len(set(used)) == len(functions)
    for name, function in functions.items():
        role = roles[function["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert "ManagedPolicyArns" not in role
        log_group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        for policy in role["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = set(statement["Action"])
                assert statement["Effect"] == "Allow", name
                if actions <= {"logs:CreateLogStream", "logs:PutLogEvents"}:
                    assert statement["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]}, name
                else:
                    assert actions <= vpc_access, name


def test_compose_matches_the_compose_spec() -> None:
    """local/compose.yaml validates against the compose-spec schema."""
    run = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                          str(COMPOSE)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_compose_check_catches_a_planted_mistake(tmp_path: Path) -> None:
    """A misspelt depends_on condition fails the schema check."""
    text = COMPOSE.read_text()
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace("condition: service_healthy", "condition: healthy", 1))
    run = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                          str(broken)], capture_output=True, text=True, check=False)
    assert run.returncode != 0, run.stdout


def test_the_dockerfile_passes_hadolint() -> None:
    """hadolint reports nothing at all, not even style notes."""
    run = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)],
                         capture_output=True, text=True, check=False)
    assert (run.returncode, run.stdout + run.stderr) == (0, "")


def test_hadolint_catches_a_planted_mistake(tmp_path: Path) -> None:
    """An unpinned base image fails hadolint."""
    text = DOCKERFILE.read_text()
    assert "FROM python:3.11" in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(re.sub(r"FROM python:\S+", "FROM python:latest", text, count=1))
    run = subprocess.run([tool("hadolint"), "--no-color", str(broken)],
                         capture_output=True, text=True, check=False)
    assert run.returncode != 0 and "DL3007" in run.stdout


def test_a_scheduler_event_on_events_runs_a_drain(environ: dict[str, str],
                                                  redis_client: redis.Redis, db: Conn) -> None:
    """EventBridge Scheduler's event on /events, as the adapter passes it, drains with a 200."""
    votes = make_votes(voters=2, changes=0)
    push(redis_client, votes)
    event = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": "2026-11-24T19:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:scheduler:{REGION}:123456789012:schedule/default/"
                      "voting-WorkerFunctionDrain-1A2B3C4D5E6F"],
        "detail": "{}",
    }
    with TestClient(create_app(WorkerSettings.from_env(environ))) as client:
        response = client.post(profile.WORKER_EVENTS_PATH, content=json.dumps(event),
                               headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["applied"] == 2
    assert tally(db) == expected_tally(votes)
