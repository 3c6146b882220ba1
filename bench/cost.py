"""``python -m bench.cost [RESULTS] [--write FILE]``: where the cloud deployment stops and
what it costs, computed from list prices, from template.yaml's own values and from what
``make bench`` measured (RESULTS: the benchmark results file, by default
docs/bench-results.json, the last full run's).

It prints the inputs, the capacity table and the cost tables in Markdown; ``--write FILE``
puts them between FILE's two ``bench.cost`` markers instead (docs/DEPLOY.md holds them, and
tests/test_cost.py fails when they differ from what this prints for the committed results).

A viewer-hour is counted in full: compute (Fargate tasks at the autoscaling target's
viewers per task, or one Lambda invocation per viewer), the load balancer's capacity units
(the largest of their dimensions: new connections, active connections, processed bytes,
rule evaluations) and the data sent to the viewer (events x bytes per event, the
keep-alives, a reconnect per stream lifetime, each with its TLS and TCP/IP framing). The
prices are us-east-1 on-demand list prices as documented on the date below: this was
written where the price pages cannot be reached, so confirm them in the AWS Pricing
Calculator before relying on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped]

from local import profile
from result_fn.broadcaster import PING
from result_fn.settings import ResultSettings

REPO = Path(__file__).resolve().parent.parent
PRICED_ON = "2026-12-02"
BEGIN, END = "<!-- bench.cost: begin -->", "<!-- bench.cost: end -->"
PEOPLE = (100, 1_000, 10_000, 100_000)
EVENT_VIEWERS = (1_000, 10_000)
EVENT_RATES = (0.25, 0.5, 1, 2, 5)  # events a second; at most the fan-out's 10, measured
TARGET_PER_1000_VIEWER_HOURS = 0.10  # issue 16: service mode, at most
HOURS_PER_MONTH = 730
GB = 1e9  # AWS bills 2^30-byte GB; counting 10^9 overstates transfer by up to 7%
VOTE_BURST_S = 10  # assumed: everyone votes within the first 10 s of a poll


@dataclass(frozen=True)
class Fact:
    value: float
    source: str
    label: str = ""  # what the value is per, for the inputs table


AWS = "https://aws.amazon.com"
DOCS = "https://docs.aws.amazon.com"
PRICES = {  # US dollars
    "fargate_vcpu_hour": Fact(0.04048, f"{AWS}/fargate/pricing/", "Fargate (Linux/x86) vCPU-hour"),
    "fargate_gb_hour": Fact(0.004445, f"{AWS}/fargate/pricing/", "Fargate (Linux/x86) GB-hour"),
    "alb_hour": Fact(0.0225, f"{AWS}/elasticloadbalancing/pricing/", "load balancer hour"),
    "lcu_hour": Fact(0.008, f"{AWS}/elasticloadbalancing/pricing/", "LCU-hour"),
    "ipv4_hour": Fact(0.005, f"{AWS}/vpc/pricing/", "public IPv4 address-hour"),
    "data_out_gb": Fact(0.09, f"{AWS}/ec2/pricing/on-demand/",
                        "GB out to the internet (first 10 TB a month)"),
    "lambda_gb_second": Fact(0.0000166667, f"{AWS}/lambda/pricing/", "Lambda (x86) GB-second"),
    "lambda_request": Fact(0.20 / 1e6, f"{AWS}/lambda/pricing/", "Lambda request"),
    "rds_gp3_gb_month": Fact(0.115, f"{AWS}/rds/postgresql/pricing/", "RDS gp3 GB-month"),
    "valkey_gb_hour": Fact(0.0837, f"{AWS}/elasticache/pricing/",
                           "ElastiCache Serverless (Valkey) GB-hour"),
    "valkey_ecpu": Fact(0.0023 / 1e6, f"{AWS}/elasticache/pricing/",
                        "ElastiCache Serverless (Valkey) ECPU"),
    "secret_month": Fact(0.40, f"{AWS}/secrets-manager/pricing/", "secret-month"),
}
RDS_HOUR = {  # PostgreSQL, Single-AZ
    "db.t4g.micro": 0.016, "db.t4g.small": 0.032, "db.t4g.medium": 0.065,
    "db.m7g.large": 0.168}
RDS_PRICES = f"{AWS}/rds/postgresql/pricing/"
RDS_MEMORY_GIB = {"db.t4g.micro": 1, "db.t4g.small": 2, "db.t4g.medium": 4, "db.m7g.large": 8}
LIMITS = {
    "lcu_new_connections_per_s": Fact(25, f"{AWS}/elasticloadbalancing/pricing/"),
    "lcu_active_connections": Fact(3_000, f"{AWS}/elasticloadbalancing/pricing/"),
    "lcu_gb_per_hour": Fact(1.0, f"{AWS}/elasticloadbalancing/pricing/ (IP targets)"),
    "lambda_quota": Fact(1_000, f"{DOCS}/lambda/latest/dg/lambda-concurrency.html"),
    "lambda_unreserved": Fact(100, f"{DOCS}/lambda/latest/dg/lambda-concurrency.html"),
    "lambda_mb_per_vcpu": Fact(1_769, f"{DOCS}/lambda/latest/dg/configuration-memory.html"),
    "rds_bytes_per_connection": Fact(
        9_531_392, f"{DOCS}/AmazonRDS/latest/UserGuide/CHAP_Limits.html#RDS_Limits.MaxConnections"),
    "postgres_superuser_reserved": Fact(
        3, "https://www.postgresql.org/docs/current/runtime-config-connection.html"),
    "valkey_round_trip_s": Fact(0.001, f"{AWS}/elasticache/ (sub-millisecond; 1 ms assumed)"),
    # Each event goes out as one TLS 1.3 record (5-byte header, content type, 16-byte
    # AES-GCM tag) in one TCP segment (IPv4 20 + TCP 20 + timestamps 12 bytes).
    "framing_bytes": Fact(22 + 52, "RFC 8446 section 5.2; RFC 791, 9293, 7323"),
}
WORKER_CONNECTIONS = 3  # worker_fn/app.py: its pool's max_size
WORKER_RESERVED = 1  # template.yaml: worker_fn's reserved concurrency
OPERATOR_CONNECTIONS = 2  # room for a migration or an operator's psql
# Measured earlier (ARCHITECTURE.md): ~20 us of Valkey CPU per push through the rate-limit
# script, on the one shard that holds the queue's hash slot.
VALKEY_VOTES_PER_S = 50_000
VALKEY_ECPU_PER_VOTE = 2  # estimate: the push script and the drain's share


class CostError(RuntimeError):
    """The results file lacks a figure the tables need (a run before bench/cost.py)."""


@dataclass(frozen=True)
class Measured:
    when: str
    machine: str
    viewers_per_process: int  # the fan-out's subscribers, at p99 within its target
    p99_ms: float
    cpu_percent: float  # of one core, at those viewers and changes_per_s
    changes_per_s: float
    bytes_per_event: float
    connect_bytes: float
    cpu_s_per_vote: float
    drain_votes_per_s: float

    @classmethod
    def read(cls, path: Path) -> Measured:
        results = json.loads(path.read_text())
        figures = {(f["scenario"], f["name"]): f for f in results["figures"]}
        fanout = next((f for (scenario, name), f in figures.items()
                       if scenario == "fanout" and name.startswith("p99 delay")), None)
        ingest = [f for (scenario, _), f in figures.items() if scenario == "ingest"]
        drain = [f for (scenario, _), f in figures.items() if scenario == "drain"]
        if fanout is None or not ingest or not drain:
            raise CostError(f"{path}: no fanout, ingest or drain figures: run `make bench`")
        if not fanout["passed"]:
            raise CostError(f"{path}: the fan-out missed its p99 target, so it measured no "
                            "viewers-per-process figure")
        details = fanout["details"]
        missing = [key for key in ("bytes_per_event", "connect_bytes") if key not in details]
        missing += [] if all("cpu_seconds_per_vote" in f["details"] for f in ingest) else [
            "cpu_seconds_per_vote"]
        if missing:
            raise CostError(f"{path} predates {', '.join(missing)}: run `make bench`")
        machine = results["machine"]
        return cls(when=machine["date"], machine=f"{machine['cores']} cores, {machine['cpu']}",
                   viewers_per_process=int(details["subscribers"]), p99_ms=fanout["value"],
                   cpu_percent=details["result_cpu_percent"],
                   changes_per_s=details["changes_per_s"],
                   bytes_per_event=details["bytes_per_event"],
                   connect_bytes=details["connect_bytes"],
                   cpu_s_per_vote=max(f["details"]["cpu_seconds_per_vote"] for f in ingest),
                   drain_votes_per_s=drain[0]["value"])


@dataclass(frozen=True)
class Cloud:
    """What template.yaml sets (its defaults) that the tables depend on."""

    events_per_s: float
    lifetime_s: float
    ping_s: float
    task_vcpu: float
    task_gb: float
    task_cap: int  # STREAM_MAX_SUBSCRIBERS
    task_target: float  # the autoscaling target, open streams per task
    max_tasks: int
    task_connections: int
    max_concurrency: int
    per_client: int
    new_voters_burst: int  # per client address, at once
    new_voters_limit: int  # per client address, a minute after the burst
    memory_gb: dict[str, float]  # per function
    database_class: str
    storage_gb: float
    valkey_min_gb: float = 0.1  # ElastiCache Serverless (Valkey) bills at least 100 MB

    @classmethod
    def read(cls, path: Path) -> Cloud:
        template = yaml_parse(path.read_text())
        params = {name: p.get("Default") for name, p in template["Parameters"].items()}
        resources = template["Resources"]
        task = resources["ResultTaskDefinition"]["Properties"]
        env = {e["Name"]: e["Value"] for e in task["ContainerDefinitions"][0]["Environment"]}
        scaling = resources["ResultScalingPolicy"]["Properties"]
        defaults = ResultSettings.from_env({"DATABASE_URL": "postgresql://stand-in@host/db"})
        return cls(
            events_per_s=float(params["StreamMaxEventsPerSecond"]),
            lifetime_s=float(params["StreamLifetimeSeconds"]),
            ping_s=defaults.stream_ping_s,
            task_vcpu=int(task["Cpu"]) / 1024, task_gb=int(task["Memory"]) / 1024,
            task_cap=int(env["STREAM_MAX_SUBSCRIBERS"]),
            task_target=float(scaling["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]),
            max_tasks=int(params["ResultMaxTasks"]),
            task_connections=int(env["RESULTS_MAX_CONNECTIONS"]),
            max_concurrency=int(params["ResultMaxConcurrency"]),
            per_client=int(env["STREAM_MAX_PER_CLIENT"]),
            new_voters_burst=int(params["VoteNewVotersBurst"]),
            new_voters_limit=int(params["VoteNewVotersLimit"]),
            memory_gb={name.removesuffix("Function").lower(): r["Properties"]["MemorySize"] / 1024
                       for name, r in resources.items()
                       if r["Type"] == "AWS::Serverless::Function"},
            database_class=params["DatabaseInstanceClass"],
            storage_gb=float(resources["Database"]["Properties"]["AllocatedStorage"]))


def price(name: str) -> float:
    return PRICES[name].value


def limit(name: str) -> float:
    return LIMITS[name].value


def max_connections(instance_class: str) -> int:
    """RDS's default, at most: from the class's nominal memory."""
    memory = RDS_MEMORY_GIB[instance_class] * 2**30
    return min(5_000, int(memory / limit("rds_bytes_per_connection")))


def usable_connections(instance_class: str) -> int:
    """PostgreSQL connections left for result_fn: max_connections less the superuser
    reserve, the worker and an operator."""
    return (max_connections(instance_class) - int(limit("postgres_superuser_reserved"))
            - WORKER_CONNECTIONS - OPERATOR_CONNECTIONS)


@dataclass(frozen=True)
class Viewer:
    """What one viewer-hour sends and takes, from the measured bytes."""

    http_bytes: float  # as the app sends them: the load balancer's processed bytes
    wire_bytes: float  # with TLS and TCP/IP framing: data transfer out
    reconnects: float  # per hour, each a new connection at most

    @classmethod
    def of(cls, measured: Measured, cloud: Cloud) -> Viewer:
        framing = limit("framing_bytes")
        ping = len(PING) + len(f"{len(PING):x}") + 4  # an HTTP chunk: size, CRLF, data, CRLF
        sends = [(3600 * cloud.events_per_s, measured.bytes_per_event),
                 (3600 / cloud.ping_s, ping),
                 (3600 / cloud.lifetime_s, measured.connect_bytes)]
        return cls(sum(n * size for n, size in sends),
                   sum(n * (size + framing) for n, size in sends), 3600 / cloud.lifetime_s)

    def lcus(self) -> float:
        """Capacity units per viewer (rule evaluations: none beyond the free ten)."""
        return max(1 / limit("lcu_active_connections"),
                   self.reconnects / 3600 / limit("lcu_new_connections_per_s"),
                   self.http_bytes / GB / limit("lcu_gb_per_hour"))


def tasks(viewers: int, cloud: Cloud) -> int:
    return max(1, math.ceil(viewers / cloud.task_target))


def task_hour(cloud: Cloud) -> float:
    return (cloud.task_vcpu * price("fargate_vcpu_hour") + cloud.task_gb * price("fargate_gb_hour")
            + price("ipv4_hour"))


def invocation_hour(cloud: Cloud) -> float:
    """One viewer in function mode: an invocation all hour, a new one per stream lifetime."""
    return (cloud.memory_gb["result"] * 3600 * price("lambda_gb_second")
            + 3600 / cloud.lifetime_s * price("lambda_request"))


def shared_hour(cloud: Cloud) -> list[tuple[str, str, float]]:
    """What runs whatever the audience, in both modes, per hour."""
    duty = profile.WORKER_BUDGET_SECONDS / profile.SCHEDULE_SECONDS
    worker = (duty * 3600 * cloud.memory_gb["worker"] * price("lambda_gb_second")
              + 3600 / profile.SCHEDULE_SECONDS * price("lambda_request"))
    return [
        ("worker_fn", f"drains {duty:.1%} of every minute at "
                      f"{cloud.memory_gb['worker'] * 1024:.0f} MB", worker),
        ("load balancer", "its hour, two public IPv4 addresses",
         price("alb_hour") + 2 * price("ipv4_hour")),
        (f"RDS {cloud.database_class}", f"Single-AZ, {cloud.storage_gb:.0f} GB gp3",
         RDS_HOUR[cloud.database_class]
         + cloud.storage_gb * price("rds_gp3_gb_month") / HOURS_PER_MONTH),
        ("ElastiCache Serverless", "the 100 MB minimum",
         cloud.valkey_min_gb * price("valkey_gb_hour")),
        ("Secrets Manager", "one secret", price("secret_month") / HOURS_PER_MONTH),
    ]


def cost_rows(mode: str, measured: Measured, cloud: Cloud) -> list[tuple[str, str, list[float]]]:
    """(item, basis, [idle month, one event hour per EVENT_VIEWERS])."""
    viewer = Viewer.of(measured, cloud)
    audiences = (0, *EVENT_VIEWERS)
    out = price("data_out_gb") * viewer.wire_bytes / GB
    rows = [(item, basis, [hourly * HOURS_PER_MONTH] + [hourly] * len(EVENT_VIEWERS))
            for item, basis, hourly in shared_hour(cloud)]
    if mode == "service":
        rows.append(("result tasks", f"{cloud.task_vcpu:g} vCPU, {cloud.task_gb:g} GB and a "
                     f"public IPv4 each; one per {cloud.task_target:,.0f} viewers",
                     [task_hour(cloud) * HOURS_PER_MONTH]
                     + [tasks(v, cloud) * task_hour(cloud) for v in EVENT_VIEWERS]))
        rows.append(("load balancer capacity units", f"{viewer.lcus() * 1000:.2f} per 1,000 "
                     "viewers", [v * viewer.lcus() * price("lcu_hour") for v in audiences]))
    else:
        rows.append(("result_fn invocations", f"one per viewer, "
                     f"{cloud.memory_gb['result'] * 1024:.0f} MB, all hour",
                     [v * invocation_hour(cloud) for v in audiences]))
    rows.append(("data transfer out", f"{viewer.wire_bytes / 1e6:.2f} MB per viewer-hour",
                 [v * out for v in audiences]))
    return rows


def per_1000_viewer_hours(mode: str, measured: Measured, cloud: Cloud) -> float:
    """What each further viewer adds, for 1,000 viewer-hours."""
    viewer = Viewer.of(measured, cloud)
    out = price("data_out_gb") * viewer.wire_bytes / GB
    if mode == "service":
        return 1000 * (task_hour(cloud) / cloud.task_target + viewer.lcus() * price("lcu_hour")
                       + out)
    return 1000 * (invocation_hour(cloud) + out)


def vote_seconds(measured: Measured, cloud: Cloud) -> float:
    """A vote's Lambda duration: the measured CPU at the memory's vCPU share, plus Valkey."""
    vcpu = cloud.memory_gb["vote"] * 1024 / limit("lambda_mb_per_vcpu")
    return measured.cpu_s_per_vote / vcpu + limit("valkey_round_trip_s")


def per_million_votes(measured: Measured, cloud: Cloud) -> float:
    billed_s = math.ceil(vote_seconds(measured, cloud) * 1000) / 1000  # 1 ms increments
    lcu = 1 / 3600 / limit("lcu_new_connections_per_s")  # a new connection each, at most
    return 1e6 * (price("lambda_request")
                  + billed_s * cloud.memory_gb["vote"] * price("lambda_gb_second")
                  + lcu * price("lcu_hour") + VALKEY_ECPU_PER_VOTE * price("valkey_ecpu"))


def capacity_rows(measured: Measured, cloud: Cloud) -> list[list[str]]:
    """[tier, limit, source, binds at, one cell per PEOPLE]: each person watches one stream
    and votes once in a poll's first VOTE_BURST_S seconds."""
    usable = usable_connections(cloud.database_class)
    db_class = cloud.database_class
    viewers_by_connections = usable // cloud.task_connections * cloud.task_target
    vote_s = vote_seconds(measured, cloud)
    unreserved = limit("lambda_quota") - WORKER_RESERVED  # service mode reserves no more
    votes_per_s = [n / VOTE_BURST_S for n in PEOPLE]
    viewer = Viewer.of(measured, cloud)
    return [
        ["result tasks (service)", f"ResultMaxTasks {cloud.max_tasks} x {cloud.task_target:,.0f}"
         f" viewers (cap {cloud.task_cap:,} each)", "template.yaml",
         f"{cloud.max_tasks * cloud.task_target:,.0f} viewers",
         *[f"{tasks(n, cloud)} task{'s' * (tasks(n, cloud) > 1)}" for n in PEOPLE]],
        [f"PostgreSQL connections, {db_class} (service)",
         f"{usable} for result_fn, {cloud.task_connections} per task",
         "RDS max_connections formula", f"{viewers_by_connections:,.0f} viewers",
         *[f"{tasks(n, cloud) * cloud.task_connections}" for n in PEOPLE]],
        ["load balancer", "none fixed: it adds capacity units (a sudden crowd of many "
         "thousands may need an LCU reservation)", "ELB documentation", "-",
         *[f"{n * viewer.lcus():.1f} LCU" for n in PEOPLE]],
        ["result_fn invocations (function)", f"ResultMaxConcurrency {cloud.max_concurrency}; "
         f"the account's unreserved pool must keep {limit('lambda_unreserved'):.0f}",
         "template.yaml; Lambda quotas", f"{cloud.max_concurrency} viewers",
         *[f"{n:,}" for n in PEOPLE]],
        [f"PostgreSQL connections, {db_class} (function)", f"{usable} for result_fn, 1 per "
         "invocation", "RDS max_connections formula", f"{usable} viewers",
         *[f"{n:,}" for n in PEOPLE]],
        ["vote_fn concurrency", f"{unreserved:,.0f}, the unreserved pool of the default "
         f"quota (service mode); a vote takes ~{vote_s * 1000:.1f} ms", "Lambda quotas; ingest "
         "(measured CPU per vote)", f"{about(unreserved / vote_s * VOTE_BURST_S)} people",
         *[f"{v * vote_s:.1f}" for v in votes_per_s]],
        ["the queue's Valkey shard", f"~{VALKEY_VOTES_PER_S:,} votes/s (one hash slot)",
         "ARCHITECTURE.md (measured)", f"{about(VALKEY_VOTES_PER_S * VOTE_BURST_S)} people",
         *[f"{v:,.0f} votes/s" for v in votes_per_s]],
        ["the drain", f"{measured.drain_votes_per_s:,.0f} votes/s here (slower on Lambda's "
         f"{cloud.memory_gb['worker'] * 1024:.0f} MB, unmeasured)", "drain (measured)", "-",
         *[f"{n / measured.drain_votes_per_s:.2f} s" for n in PEOPLE]],
        ["streams per client address", f"STREAM_MAX_PER_CLIENT {cloud.per_client:,} per task",
         "template.yaml", f"a hall of {cloud.per_client:,} x tasks behind one address",
         *["-"] * len(PEOPLE)],
        ["new voters per client address", f"VoteNewVotersBurst {cloud.new_voters_burst:,} at "
         f"once, then VoteNewVotersLimit {cloud.new_voters_limit:,}/min", "template.yaml",
         f"a hall of {cloud.new_voters_burst:,} behind one address, voting at once",
         *["-"] * len(PEOPLE)],
    ]


def about(value: float) -> str:
    """Two significant figures: these are estimates."""
    return f"~{float(f'{value:.2g}'):,.0f}"


def connection_rows(cloud: Cloud) -> list[list[str]]:
    """Per instance class: the largest safe ResultMaxConcurrency, and result tasks."""
    rows = []
    for instance_class, gib in RDS_MEMORY_GIB.items():
        usable = usable_connections(instance_class)
        most_tasks = usable // cloud.task_connections
        rows.append([instance_class, f"{gib} GiB", str(max_connections(instance_class)),
                     str(usable), f"{most_tasks} ({most_tasks * cloud.task_target:,.0f} viewers)"])
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def dollars(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.995 or value == 0 else f"${value:.3f}"


def render(measured: Measured, cloud: Cloud, results_name: str) -> str:
    viewer = Viewer.of(measured, cloud)
    cpu_per_send = measured.cpu_percent / 100 / (measured.viewers_per_process
                                                 * measured.changes_per_s)
    target_cpu = cloud.task_target * (cloud.events_per_s + 1 / cloud.ping_s) * cpu_per_send
    inputs = [
        ["viewers per result process at p99 < 250 ms", f"{measured.viewers_per_process:,} "
         f"(p99 {measured.p99_ms:.0f} ms)", "measured", "fanout"],
        ["CPU of that process", f"{measured.cpu_percent:.0f} % of a core at "
         f"{measured.changes_per_s:g} events/s; at {cloud.events_per_s:g} events/s a task at "
         f"its target ~{100 * target_cpu:.0f} %", "measured", "fanout"],
        ["bytes per event, as sent", f"{measured.bytes_per_event:.0f}", "measured", "fanout"],
        ["bytes on connecting (response head, snapshot)", f"{measured.connect_bytes:.0f}",
         "measured", "fanout"],
        ["CPU per vote", f"{measured.cpu_s_per_vote * 1e6:.0f} us", "measured", "ingest"],
        ["events per second per stream", f"{cloud.events_per_s:g}", "template.yaml",
         "StreamMaxEventsPerSecond"],
        ["stream lifetime, keep-alive", f"{cloud.lifetime_s:g} s, {cloud.ping_s:g} s",
         "template.yaml, result_fn", "StreamLifetimeSeconds, STREAM_PING_SECONDS"],
        ["framing per send (TLS record, TCP/IP headers)", f"{limit('framing_bytes'):.0f} bytes",
         "documented", LIMITS["framing_bytes"].source],
        ["a viewer-hour", f"{viewer.http_bytes / 1e6:.2f} MB sent by the app, "
         f"{viewer.wire_bytes / 1e6:.2f} MB on the wire, {viewer.lcus() * 1000:.2f} LCU per "
         "1,000 viewers", "computed", "the rows above"],
        *[[fact.label, f"${fact.value:.10f}".rstrip("0"), f"documented on {PRICED_ON}",
           fact.source] for fact in PRICES.values()],
        [f"RDS {cloud.database_class}", f"${RDS_HOUR[cloud.database_class]}/hour",
         f"documented on {PRICED_ON}", RDS_PRICES],
    ]
    people = [f"{n:,} people" for n in PEOPLE]
    head = ["item", "basis", "idle month", *[f"event hour, {v:,} viewers" for v in EVENT_VIEWERS]]
    parts = [
        f"Computed by `python -m bench.cost {results_name}` from the run of {measured.when} "
        f"({measured.machine}); prices as documented on {PRICED_ON}, us-east-1.",
        "", table(["input", "value", "kind", "source"], inputs), "",
        "**PostgreSQL connections per instance class**: max_connections is "
        "LEAST(DBInstanceClassMemory / 9531392, 5000), and DBInstanceClassMemory is the "
        "class's memory less what RDS keeps for itself, so these are upper bounds (`SHOW "
        "max_connections` tells the real one). Less 3 reserved for superusers, "
        f"{WORKER_CONNECTIONS} for worker_fn and {OPERATOR_CONNECTIONS} for a migration or an "
        "operator, the rest is result_fn's: one per invocation in function mode, "
        f"{cloud.task_connections} per task in service mode.", "",
        table(["class", "memory", "max_connections, at most", "largest safe "
               "ResultMaxConcurrency", f"most result tasks (at {cloud.task_target:,.0f} "
               "viewers each)"], connection_rows(cloud)), "",
        "**Capacity** (each person watches one stream and votes in a poll's first "
        f"{VOTE_BURST_S} s; template defaults):", "",
        table(["tier", "limit", "source", "binds at", *people],
              capacity_rows(measured, cloud)), ""]
    for mode in ("service", "function"):
        rows = cost_rows(mode, measured, cloud)
        totals = [sum(values[i] for _, _, values in rows) for i in range(1 + len(EVENT_VIEWERS))]
        parts += [f"**Cost, ResultsHosting={mode}:**", "", table(head, [
            [item, basis, *map(dollars, values)] for item, basis, values in rows]
            + [["**total**", "", *(f"**{dollars(t)}**" for t in totals)]]), ""]
    largest = max(RDS_MEMORY_GIB, key=usable_connections)
    headroom = WORKER_RESERVED + limit("lambda_unreserved")
    parts += [
        "Function mode at these audiences needs ResultMaxConcurrency of at least the viewers, "
        f"a concurrency quota of at least viewers + {headroom:.0f} and one PostgreSQL "
        f"connection per viewer: the largest class offered, {largest}, has at most "
        f"{usable_connections(largest)} for result_fn.", ""]
    service = per_1000_viewer_hours("service", measured, cloud)
    function = per_1000_viewer_hours("function", measured, cloud)
    parts += [f"**Cost per 1,000 viewer-hours: {dollars(service)} with ResultsHosting=service** "
              f"(target: at most {dollars(TARGET_PER_1000_VIEWER_HOURS)}), "
              f"{dollars(function)} with ResultsHosting=function. Votes: "
              f"{dollars(per_million_votes(measured, cloud))} per million.", "",
              "Per 1,000 viewer-hours (service mode) at other values of "
              "StreamMaxEventsPerSecond:", "",
              table(["events/s", *map(str, EVENT_RATES)],
                    [["per 1,000 viewer-hours", *[dollars(per_1000_viewer_hours(
                        "service", measured, dataclasses.replace(cloud, events_per_s=rate)))
                        for rate in EVENT_RATES]]])]
    return "\n".join(parts) + "\n"


def replace_section(text: str, section: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise CostError(f"expected one {BEGIN} ... {END} section")
    return pattern.sub(lambda _: f"{BEGIN}\n{section}{END}", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", type=Path,
                        default=REPO / "docs" / "bench-results.json")
    parser.add_argument("--template", type=Path, default=REPO / "template.yaml")
    parser.add_argument("--write", type=Path, metavar="FILE",
                        help="replace FILE's bench.cost section instead of printing")
    args = parser.parse_args(argv)
    try:
        section = render(Measured.read(args.results), Cloud.read(args.template),
                         display_name(args.results))
        if args.write is None:
            print(section, end="")
        else:
            args.write.write_text(replace_section(args.write.read_text(), section))
    except CostError as error:
        parser.exit(1, f"bench.cost: {error}\n")
    return 0


def display_name(path: Path) -> str:
    """The path as a reader would type it from the repository root."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


if __name__ == "__main__":
    raise SystemExit(main())

