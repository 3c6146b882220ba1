"""The cloud, checked offline: template.yaml through the SAM transform, cfn-lint and checkov,
the compose profile against the compose-spec schema, the Dockerfile through hadolint, and
worker_fn's /events fed the body EventBridge Scheduler delivers. None of it needs Docker or an
AWS account.

hadolint, cfn-lint, checkov, check-jsonschema and aws-sam-translator are declared test
dependencies (pyproject.toml): a test that cannot find one fails rather than skips.
"""

from __future__ import annotations

import ast
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
import yaml
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
from starlette.testclient import TestClient

from local import profile
from result_fn.settings import ResultSettings
from support import REPO
from support.stores import tally
from support.votes import expected_tally, make_votes, push
from worker_fn.app import create_app
from worker_fn.settings import WorkerSettings

TEMPLATE = REPO / "template.yaml"
CHECKOV_SKIPS = REPO / "tests" / "checkov_skips.yaml"
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


def app_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The three functions (images), not the deploy-time helper that looks an image up."""
    return {name: f for name, f in resources(template, "AWS::Lambda::Function").items()
            if f["Properties"].get("PackageType") == "Image"}


def container(template: dict[str, Any]) -> dict[str, Any]:
    """The result task's one container definition."""
    [task] = resources(template, "AWS::ECS::TaskDefinition").values()
    [definition] = task["Properties"]["ContainerDefinitions"]
    return dict(definition)


def checkov_findings(template: dict[str, Any], folder: Path) -> set[tuple[str, str]]:
    """(check id, resource) for each failed checkov check on a transformed template."""
    path = folder / "template.json"
    path.write_text(json.dumps(template))
    run = subprocess.run([tool("checkov"), "--file", str(path), "--framework", "cloudformation",
                          "--quiet", "--skip-download", "--output", "json"],
                         capture_output=True, text=True, check=False)
    assert run.returncode in (0, 1), run.stderr
    report = json.loads(run.stdout)
    failed = report["results"]["failed_checks"] if report else []
    return {(f["check_id"], f["resource"].split(".", 1)[1]) for f in failed}


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
    functions = app_functions(transformed)
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

    group = resources(transformed, "AWS::ElasticLoadBalancingV2::TargetGroup")["VoteTargetGroup"]
    assert group["Properties"]["TargetType"] == "lambda"
    assert group["Properties"]["Targets"] == [{"Id": {"Fn::GetAtt": ["VoteFunction", "Arn"]}}]
    assert group["Properties"]["HealthCheckEnabled"] is True
    permissions = resources(transformed, "AWS::Lambda::Permission").values()
    [permission] = [p["Properties"] for p in permissions
                    if p["Properties"]["Principal"] == "elasticloadbalancing.amazonaws.com"]
    assert permission["FunctionName"] == {"Fn::GetAtt": ["VoteFunction", "Arn"]}
    assert permission["Action"] == "lambda:InvokeFunction"
    listener = resources(transformed, "AWS::ElasticLoadBalancingV2::Listener")["VoteListener"]
    assert listener["Properties"]["Port"] == 80


def test_the_adapter_waits_only_for_the_server_to_listen(transformed: dict[str, Any]) -> None:
    """The adapter's readiness is a TCP connect, so a store that is down cannot hold invocations."""
    for name, function in app_functions(transformed).items():
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
    verified = "?sslmode=verify-full&sslrootcert=/opt/certs/rds-global-bundle.pem"
    task_env = {e["Name"]: e["Value"] for e in container(transformed)["Environment"]}
    for variables in [*map(env, app_functions(transformed).values()), task_env]:
        if "REDIS_URL" in variables:
            assert variables["REDIS_URL"]["Fn::Sub"].startswith("rediss://")
            assert variables["REDIS_CLUSTER"] == "true"
        if "DATABASE_URL" in variables:
            url = variables["DATABASE_URL"]["Fn::Sub"]
            assert url.startswith("postgresql://{{resolve:secretsmanager:${DatabaseSecret}:")
            assert url.endswith(verified)
    assert "NoEcho" in transformed["Parameters"]["VoteSecret"]


def test_each_function_has_its_own_least_privilege_role(transformed: dict[str, Any]) -> None:
    """One role per function, allowed its own log group and the VPC interface actions only."""
    vpc_access = {"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                  "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
                  "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}
    roles = resources(transformed, "AWS::IAM::Role")
    functions = app_functions(transformed)
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


SERVICE_RESOURCES = {
    "ResultTaskSecurityGroup", "DatabaseFromResultTasks", "LoadBalancerToResultTasks",
    "ResultTasksFromLoadBalancer", "LoadBalancerFromInternetResults", "ResultsListener",
    "ResultTargetGroup", "ResultImage", "ResultImageLookupLogGroup", "ResultImageLookupRole",
    "ResultImageLookup", "ResultCluster", "ResultTaskLogGroup", "ResultTaskExecutionRole",
    "ResultTaskDefinition", "ResultService", "ResultScalableTarget", "ResultScalingPolicy"}
FUNCTION_RESOURCES = {"ResultFunctionUrl", "ResultFunctionUrlPublicPermissions",
                      "ResultFunctionURLInvokeAllowPublicAccess"}


def test_results_hosting_selects_the_resources_the_url_and_the_connections(
        transformed: dict[str, Any]) -> None:
    """ResultsHosting picks the Fargate service (default) or the Function URL, and what
    vote_fn links to, the outputs and result_fn's connections follow it."""
    hosting = transformed["Parameters"]["ResultsHosting"]
    assert (hosting["Default"], hosting["AllowedValues"]) == ("service", ["service", "function"])
    by_condition = {name: r.get("Condition") for name, r in transformed["Resources"].items()}
    assert {n for n, c in by_condition.items() if c == "ServiceMode"} == SERVICE_RESOURCES
    assert {n for n, c in by_condition.items() if c == "FunctionMode"} == FUNCTION_RESOURCES
    functions = app_functions(transformed)
    result = functions["ResultFunction"]["Properties"]
    # In service mode the function only carries the image: every invocation is refused.
    assert result["ReservedConcurrentExecutions"] == {
        "Fn::If": ["FunctionMode", {"Ref": "ResultMaxConcurrency"}, 0]}
    assert env(functions["ResultFunction"])["RESULTS_MAX_CONNECTIONS"] == "1"
    task_env = {e["Name"]: e["Value"] for e in container(transformed)["Environment"]}
    assert task_env["RESULTS_MAX_CONNECTIONS"] == "5"
    for variables in (env(functions["ResultFunction"]), task_env):
        assert variables["STREAM_MAX_EVENTS_PER_SECOND"] == {"Ref": "StreamMaxEventsPerSecond"}
    results_url = env(functions["VoteFunction"])["RESULTS_URL"]["Fn::If"]
    output = transformed["Outputs"]["ResultsUrl"]["Value"]["Fn::If"]
    assert results_url == output
    assert results_url[0] == "ServiceMode"
    assert results_url[2] == {"Fn::GetAtt": ["ResultFunctionUrl", "FunctionUrl"]}


def test_the_results_service_sits_behind_the_load_balancer(transformed: dict[str, Any]) -> None:
    """The tasks take traffic from the load balancer only, on the image's port, drained
    quickly, health-checked, autoscaled from one task; the idle timeout outlasts a ping."""
    groups = resources(transformed, "AWS::ElasticLoadBalancingV2::TargetGroup")
    group = groups["ResultTargetGroup"]["Properties"]
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    assert (group["TargetType"], group["Port"]) == ("ip", 8080)
    assert int(attributes["deregistration_delay.timeout_seconds"]) <= 10
    assert container(transformed)["StopTimeout"] > 3  # uvicorn's graceful shutdown, 3 s
    balancer = transformed["Resources"]["VoteLoadBalancer"]["Properties"]
    idle = {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}
    ping_s = ResultSettings.from_env({"DATABASE_URL": "postgresql://u@h/db"}).stream_ping_s
    assert int(idle["idle_timeout.timeout_seconds"]) > 2 * ping_s
    task_env = {e["Name"]: e["Value"] for e in container(transformed)["Environment"]}
    # uvicorn keeps an idle connection longer than the load balancer may reuse it
    assert int(task_env["UVICORN_TIMEOUT_KEEP_ALIVE"]) > int(idle["idle_timeout.timeout_seconds"])
    listener = transformed["Resources"]["ResultsListener"]["Properties"]
    assert listener["DefaultActions"] == [{"Type": "forward",
                                           "TargetGroupArn": {"Ref": "ResultTargetGroup"}}]
    service = transformed["Resources"]["ResultService"]["Properties"]
    assert service["LoadBalancers"][0]["ContainerPort"] == group["Port"]
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["SecurityGroups"] == [{"Ref": "ResultTaskSecurityGroup"}]
    ingress = [r["Properties"] for r in resources(transformed, "AWS::EC2::SecurityGroupIngress")
               .values() if r["Properties"]["GroupId"] == {"Ref": "ResultTaskSecurityGroup"}]
    assert ingress == [{"GroupId": {"Ref": "ResultTaskSecurityGroup"},
                        "Description": "the load balancer (requests and health checks)",
                        "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                        "SourceSecurityGroupId": {"Ref": "LoadBalancerSecurityGroup"}}]
    egress = transformed["Resources"]["ResultTaskSecurityGroup"]["Properties"][
        "SecurityGroupEgress"]
    assert {(rule["FromPort"], str(rule.get("DestinationSecurityGroupId", rule.get("CidrIp"))))
            for rule in egress} == {(5432, "{'Ref': 'DatabaseSecurityGroup'}"),
                                    (443, "0.0.0.0/0")}
    scaling = transformed["Resources"]["ResultScalableTarget"]["Properties"]
    assert scaling["MinCapacity"] == 1
    policy = transformed["Resources"]["ResultScalingPolicy"]["Properties"][
        "TargetTrackingScalingPolicyConfiguration"]
    assert policy["TargetValue"] < int(task_env["STREAM_MAX_SUBSCRIBERS"])


def test_a_certificate_turns_on_https_and_http_redirects(transformed: dict[str, Any]) -> None:
    """With CertificateArn the vote page is HTTPS on 443 (port 80 redirects) and the results
    listener is HTTPS; the certificate needs a domain name."""
    listeners = resources(transformed, "AWS::ElasticLoadBalancingV2::Listener")
    https_policy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    redirect, forward = listeners["VoteListener"]["Properties"]["DefaultActions"]["Fn::If"][1:]
    assert redirect == [{"Type": "redirect", "RedirectConfig": {
        "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]
    assert forward == [{"Type": "forward", "TargetGroupArn": {"Ref": "VoteTargetGroup"}}]
    vote_https = listeners["VoteHttpsListener"]
    assert vote_https["Condition"] == "HasCertificate"
    assert (vote_https["Properties"]["Protocol"], vote_https["Properties"]["SslPolicy"]) == (
        "HTTPS", https_policy)
    results = listeners["ResultsListener"]["Properties"]
    assert results["Protocol"] == {"Fn::If": ["HasCertificate", "HTTPS", "HTTP"]}
    assert results["SslPolicy"] == {"Fn::If": ["HasCertificate", https_policy,
                                               {"Ref": "AWS::NoValue"}]}
    rule = transformed["Rules"]["CertificateNeedsDomainName"]
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "DomainName"}, ""]}]}


def test_the_tasks_read_the_database_password_from_secrets_manager(
        transformed: dict[str, Any]) -> None:
    """ECS injects PGPASSWORD from the secret; the task definition holds no password."""
    definition = container(transformed)
    assert definition["Secrets"] == [{"Name": "PGPASSWORD",
                                      "ValueFrom": {"Fn::Sub": "${DatabaseSecret}:password::"}}]
    url = next(e["Value"]["Fn::Sub"] for e in definition["Environment"]
               if e["Name"] == "DATABASE_URL")
    assert "password" not in url
    assert "@${Database.Endpoint.Address}" in url


def test_the_image_lookup_is_valid_python_with_a_handler(transformed: dict[str, Any]) -> None:
    """The deploy-time lookup's inline code compiles and defines the handler it names."""
    lookup = transformed["Resources"]["ResultImageLookup"]["Properties"]
    tree = ast.parse(lookup["Code"]["ZipFile"], "index.py")
    assert lookup["Handler"] == "index.handler"
    assert "handler" in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_checkov_finds_only_what_the_skip_file_explains(transformed: dict[str, Any],
                                                        tmp_path: Path) -> None:
    """Every checkov finding is listed, with a reason, in tests/checkov_skips.yaml, and every
    listed one is still found."""
    skips = yaml.safe_load(CHECKOV_SKIPS.read_text())
    assert all(entry["reason"].strip() for entry in skips.values())
    listed = {(check, resource) for check, entry in skips.items()
              for resource in entry["resources"]}
    assert checkov_findings(transformed, tmp_path) == listed


def test_checkov_catches_a_planted_mistake(tmp_path: Path) -> None:
    """A publicly accessible database is a finding the skip file lacks."""
    template = sam_transform(planted("PubliclyAccessible: false", "PubliclyAccessible: true"))
    assert ("CKV_AWS_17", "Database") in checkov_findings(template, tmp_path)


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
