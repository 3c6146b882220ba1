"""local/profile.py is the one description of the deployment; template.yaml, local/compose.yaml,
the Dockerfile and the settings code must agree with it. Each test names what drifted."""

from __future__ import annotations

import importlib
import json
import shlex
import subprocess
from collections.abc import Iterable, Mapping
from string import Template
from typing import Any

import pytest
import yaml
from samtranslator.yaml_helper import yaml_parse

from common.settings import SettingsError
from local import profile
from local.profile import FunctionSpec
from support import REPO
from tests.test_cloud_offline import DOCKERFILE, rate_seconds, sam_transform

VALID = {"REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": "postgresql://u@127.0.0.1:1/db",
         "VOTE_SECRET": "x" * 32}
IMAGE_PORT = "8080"  # the images' ENV PORT, which compose's health checks and URLs use
BUILD_ARG = "FUNCTION"  # the Dockerfile's build argument: the package of the function to build
RDS_CA_BUNDLE = "/opt/certs/rds-global-bundle.pem"  # for sslmode=verify-full against RDS
SPECS = {spec.name: spec for spec in profile.FUNCTIONS}
SUPPORT_SERVICES = {"valkey", "postgres", "lb", "scheduler"}


def adapter_variable(name: str) -> bool:
    """Set for the Lambda Web Adapter (or read by it), for libpq (PGPASSWORD, beside a
    DATABASE_URL without one) or for uvicorn's own options, not by the app's settings."""
    return name.startswith(("AWS_LWA_", "PG", "UVICORN_")) or name == "PORT"


class RecordingEnviron(dict[str, str]):
    """An environment that notes every name the settings code looks up."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def settings_class(spec: FunctionSpec) -> Any:
    module = importlib.import_module(f"{spec.package}.settings")
    return getattr(module, f"{spec.name.capitalize()}Settings")


def required_settings(spec: FunctionSpec) -> set[str]:
    """The settings without a default: leaving one out stops the function at start-up."""
    required = set()
    for name in VALID:
        try:
            settings_class(spec).from_env({k: v for k, v in VALID.items() if k != name})
        except SettingsError:
            required.add(name)
    return required


def logical_id(spec: FunctionSpec) -> str:
    return f"{spec.name.capitalize()}Function"


@pytest.fixture(scope="module")
def raw_template() -> dict[str, Any]:
    return dict(yaml_parse((REPO / "template.yaml").read_text()))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return sam_transform((REPO / "template.yaml").read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "local" / "compose.yaml").read_text()))


def final_stage() -> list[tuple[str, str]]:
    """The image's own (INSTRUCTION, arguments) pairs: those from the last FROM on,
    continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
                    if line and not line.startswith("#")]
    return instructions[max(i for i, (name, _) in enumerate(instructions) if name == "FROM"):]


def with_build_arg(text: str, package: str) -> str:
    """``text`` with the build argument substituted, as Docker does in ENV and COPY."""
    return Template(text).safe_substitute({BUILD_ARG: package})


def image_environment(package: str) -> dict[str, str]:
    """The environment the image built for ``package`` starts its command with."""
    stage = final_stage()
    assert ("ARG", BUILD_ARG) in stage, f"the image stage does not declare ARG {BUILD_ARG}"
    return dict(part.split("=", 1) for name, args in stage if name == "ENV"
                for part in with_build_arg(args, package).split())


def build_arg_check() -> str:
    """The shell script the image stage runs first, refusing an unknown build argument."""
    [script] = [args for name, args in final_stage() if name == "RUN"
                and args.startswith(f'case "${BUILD_ARG}" in')]
    return script


def functions_in(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The functions' images (not the deploy-time helper that looks one up)."""
    return {name: resource for name, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Lambda::Function"
            and resource["Properties"].get("PackageType") == "Image"}


def names(variables: Iterable[str]) -> set[str]:
    return {name for name in variables if not adapter_variable(name)}


@pytest.mark.parametrize("spec", profile.FUNCTIONS, ids=lambda spec: spec.name)
def test_the_settings_code_reads_exactly_the_profiles_settings(spec: FunctionSpec) -> None:
    """from_env looks up exactly the names the profile lists for the function."""
    assert len(set(spec.settings)) == len(spec.settings), "a setting is listed twice"
    environ = RecordingEnviron(VALID)
    settings_class(spec).from_env(environ)
    assert environ.read == set(spec.settings)


@pytest.mark.parametrize("spec", profile.FUNCTIONS, ids=lambda spec: spec.name)
def test_the_health_path_is_a_route_of_the_app(spec: FunctionSpec) -> None:
    """The health path the template and compose probe is one the app serves."""
    module = importlib.import_module(f"{spec.package}.app")
    app = module.create_app(settings_class(spec).from_env(VALID))
    assert spec.app == f"{spec.package}.app:create_app"
    assert spec.health_path in {getattr(route, "path", None) for route in app.routes}


def test_the_same_functions_everywhere(raw_template: dict[str, Any], template: dict[str, Any],
                                      compose: dict[str, Any]) -> None:
    """The template's functions and compose's app services are the profile's, each built from
    the one Dockerfile with its own package as the build argument."""
    assert set(functions_in(template)) == {logical_id(spec) for spec in profile.FUNCTIONS}
    built = {name: service["build"] for name, service in compose["services"].items()
             if "build" in service}
    assert built == {spec.name: {"context": "..", "dockerfile": DOCKERFILE.name,
                                 "args": {BUILD_ARG: spec.package}}
                     for spec in profile.FUNCTIONS}
    assert set(compose["services"]) == set(SPECS) | SUPPORT_SERVICES
    for spec in profile.FUNCTIONS:
        metadata = raw_template["Resources"][logical_id(spec)]["Metadata"]
        assert metadata["Dockerfile"] == DOCKERFILE.name
        assert metadata["DockerContext"] == "."
        assert metadata["DockerBuildArgs"] == {BUILD_ARG: spec.package}
        assert raw_template["Resources"][logical_id(spec)]["Properties"]["PackageType"] == "Image"


@pytest.mark.parametrize("spec", profile.FUNCTIONS, ids=lambda spec: spec.name)
def test_the_image_runs_the_profiles_command(spec: FunctionSpec) -> None:
    """Built with the function's package as the build argument, the image copies common/ and
    that package, sets PORT, and runs uvicorn_argv()."""
    env = image_environment(spec.package)
    assert env.get("PORT") == IMAGE_PORT
    [cmd] = [json.loads(args) for name, args in final_stage() if name == "CMD"]
    assert cmd[:2] == ["sh", "-c"]
    # sh expands the image's environment; PORT stays a variable that the platform may set.
    script = Template(cmd[2]).safe_substitute({k: v for k, v in env.items() if k != "PORT"})
    assert shlex.split(script) == ["exec", *profile.uvicorn_argv(spec, "0.0.0.0", "$PORT")]
    copies = {with_build_arg(args, spec.package) for name, args in final_stage()
              if name == "COPY"}
    assert {"common/ common/", f"{spec.package}/ {spec.package}/"} <= copies


def test_the_image_carries_the_rds_ca_bundle_for_its_user() -> None:
    """The image fetches AWS's RDS CA bundle to its fixed path and makes it readable by all."""
    stage = final_stage()
    assert ("ADD", "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem "
            f"{RDS_CA_BUNDLE}") in stage
    assert any(name == "RUN" and f"chmod 644 {RDS_CA_BUNDLE}" in args for name, args in stage)


@pytest.mark.parametrize(("value", "accepted"), [
    *((spec.package, True) for spec in profile.FUNCTIONS),
    ("common", False), ("local", False), ("", False), ("vote_fn/..", False)])
def test_the_image_builds_only_for_the_profiles_packages(value: str, accepted: bool) -> None:
    """The image stage's first step passes for each function's package and stops the build,
    with one line naming the build argument, for anything else."""
    run = subprocess.run(["/bin/sh", "-c", build_arg_check()], env={BUILD_ARG: value},
                         capture_output=True, text=True, check=False)
    if accepted:
        assert (run.returncode, run.stderr) == (0, "")
    else:
        assert run.returncode != 0
        assert run.stderr.startswith(f"{BUILD_ARG} must be ") and run.stderr.count("\n") == 1


@pytest.mark.parametrize("spec", profile.FUNCTIONS, ids=lambda spec: spec.name)
def test_the_template_sets_only_the_functions_settings(spec: FunctionSpec,
                                                       template: dict[str, Any]) -> None:
    """The template sets only variables the function (or the adapter) reads, and all required."""
    variables = functions_in(template)[logical_id(spec)]["Properties"]["Environment"]["Variables"]
    assert names(variables) <= set(spec.settings)
    assert required_settings(spec) <= set(variables)
    assert variables.get("AWS_LWA_READINESS_CHECK_PATH", spec.health_path) == spec.health_path


def test_the_template_matches_the_schedule_budget_and_timeout(template: dict[str, Any]) -> None:
    """Schedule rate, drain budget, timeout and the adapter's event path are the profile's."""
    worker = functions_in(template)[logical_id(SPECS["worker"])]["Properties"]
    schedules = [r["Properties"] for r in template["Resources"].values()
                 if r["Type"] == "AWS::Scheduler::Schedule"]
    assert [s["Target"]["Arn"] for s in schedules] == [
        {"Fn::GetAtt": [logical_id(SPECS["worker"]), "Arn"]}]
    assert [rate_seconds(s["ScheduleExpression"]) for s in schedules] == [
        profile.SCHEDULE_SECONDS]
    variables = worker["Environment"]["Variables"]
    assert float(variables["WORKER_BUDGET_SECONDS"]) == profile.WORKER_BUDGET_SECONDS
    assert worker["Timeout"] == profile.WORKER_TIMEOUT_SECONDS
    assert profile.WORKER_BUDGET_SECONDS < profile.WORKER_TIMEOUT_SECONDS
    assert variables["AWS_LWA_PASS_THROUGH_PATH"] == profile.WORKER_EVENTS_PATH


def test_the_load_balancer_checks_the_vote_health_path(template: dict[str, Any]) -> None:
    """The ALB target group probes vote_fn on the profile's health path."""
    [group] = [r["Properties"] for r in template["Resources"].values()
               if r["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"
               and r["Properties"]["TargetType"] == "lambda"]
    assert group["HealthCheckPath"] == SPECS["vote"].health_path
    assert group["Targets"] == [{"Id": {"Fn::GetAtt": [logical_id(SPECS["vote"]), "Arn"]}}]


def test_the_result_task_runs_the_images_command_with_the_profiles_settings(
        template: dict[str, Any]) -> None:
    """The ECS task runs result_fn's image with its own command (uvicorn_argv, checked
    against the Dockerfile above) on its PORT, sets only (and all required) result settings,
    runs on the functions' CPU architecture and is probed on the profile's health path."""
    spec = SPECS["result"]
    resources = template["Resources"]
    task = resources["ResultTaskDefinition"]["Properties"]
    [container] = task["ContainerDefinitions"]
    assert container["Name"] == spec.name
    assert container["Image"] == {"Fn::GetAtt": ["ResultImage", "ImageUri"]}
    assert resources["ResultImage"]["Properties"]["FunctionVersion"]["Ref"].startswith(
        f"{logical_id(spec)}Version")
    assert "Command" not in container and "EntryPoint" not in container
    assert [m["ContainerPort"] for m in container["PortMappings"]] == [int(IMAGE_PORT)]
    variables = [e["Name"] for e in container["Environment"]] + [
        s["Name"] for s in container["Secrets"]]
    assert len(variables) == len(set(variables))
    assert names(variables) <= set(spec.settings)
    assert required_settings(spec) <= set(variables)
    architecture = {"X86_64": "x86_64", "ARM64": "arm64"}[
        task["RuntimePlatform"]["CpuArchitecture"]]
    assert functions_in(template)[logical_id(spec)]["Properties"]["Architectures"] == [
        architecture]
    group = resources["ResultTargetGroup"]["Properties"]
    assert group["HealthCheckPath"] == spec.health_path
    assert group["Port"] == int(IMAGE_PORT)


@pytest.mark.parametrize("spec", profile.FUNCTIONS, ids=lambda spec: spec.name)
def test_compose_sets_only_the_functions_settings(spec: FunctionSpec,
                                                  compose: dict[str, Any]) -> None:
    """Compose sets only (and all required) settings, runs the image's command, probes the path."""
    service = compose["services"][spec.name]
    assert names(service["environment"]) <= set(spec.settings)
    assert required_settings(spec) <= set(service["environment"])
    assert "command" not in service and "entrypoint" not in service
    assert service["healthcheck"]["test"][:2] == ["CMD", "python"]
    probe = service["healthcheck"]["test"][-1]
    assert f"'http://127.0.0.1:{IMAGE_PORT}{spec.health_path}'" in probe
    assert service["restart"] == "unless-stopped"


def test_compose_mirrors_the_cloud_front_doors_and_schedule(compose: dict[str, Any]) -> None:
    """Two vote replicas behind nginx, result on 8081, the profile's schedule, budget and path."""
    services = compose["services"]
    assert services["vote"]["deploy"]["replicas"] == 2
    assert "ports" not in services["vote"]
    assert services["lb"]["ports"] == ["8080:80"]
    assert services["lb"]["healthcheck"]["test"][-1] == f"http://127.0.0.1{SPECS['vote'].health_path}"
    assert services["result"]["ports"] == [f"8081:{IMAGE_PORT}"]
    assert (float(services["worker"]["environment"]["WORKER_BUDGET_SECONDS"])
            == profile.WORKER_BUDGET_SECONDS)

    scheduler = services["scheduler"]
    assert int(scheduler["environment"]["SCHEDULE_SECONDS"]) == profile.SCHEDULE_SECONDS
    assert (scheduler["environment"]["WORKER_EVENTS_URL"]
            == f"http://worker:{IMAGE_PORT}{profile.WORKER_EVENTS_PATH}")
    script = scheduler["command"][0].replace("$$", "$")
    assert '"$WORKER_EVENTS_URL"' in script and '"$SCHEDULE_SECONDS"' in script
    assert '"source": "aws.scheduler"' in script and '"detail-type": "Scheduled Event"' in script


def test_compose_starts_each_service_after_its_dependencies_are_healthy(
        compose: dict[str, Any]) -> None:
    """Every service has a health check and a restart policy, and waits for healthy ones."""
    for name, service in compose["services"].items():
        assert "healthcheck" in service and service["restart"] == "unless-stopped", name
        for dependency in service.get("depends_on", {}).values():
            assert dependency == {"condition": "service_healthy"}, name


def test_the_first_poll_is_described_the_same_everywhere(template: dict[str, Any],
                                                         compose: dict[str, Any]) -> None:
    """vote_fn and worker_fn both create the first poll (whichever starts first), so each
    gets every one of its settings, in the template and in compose, from the same source:
    a question given to one and not the other would describe two different first polls."""
    functions = functions_in(template)
    given = {"template": {spec.name: functions[logical_id(spec)]["Properties"]["Environment"]
                          ["Variables"] for spec in profile.FUNCTIONS},
             "compose": {spec.name: compose["services"][spec.name]["environment"]
                         for spec in profile.FUNCTIONS}}
    for where, variables in given.items():
        for spec in profile.FUNCTIONS:
            reads = set(profile.FIRST_POLL) <= set(spec.settings)
            assert (set(profile.FIRST_POLL) <= set(variables[spec.name])) is reads, (
                where, spec.name)
        for setting in profile.FIRST_POLL:
            assert variables["vote"][setting] == variables["worker"][setting], (where, setting)
