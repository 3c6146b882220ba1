"""Cold start and footprint: each function from process start to its first 200 on its
health path, vs the baseline app (bench/baseline.py) started the same way, and the idle
RSS of each function process.

Every start is the local profile's uvicorn command with one worker (so the process
started is the server itself), against real Valkey and PostgreSQL that are already up
with the schema created. The clock starts just before ``Popen`` and stops at the first
200 of the health path, polled every few milliseconds: interpreter start, imports,
``create_app``, the lifespan (connections opened) and, for result_fn, its LISTEN
connection. One untimed start of each warms the file cache first (as a warm container
image would be), then the starts are interleaved (baseline, vote, worker, result, ...)
so that a busy moment of a shared machine does not fall on one app only; the median
is reported. After its first 200 each process serves a few typical requests, sits idle
for a moment, and its RSS is read (psutil).

Where the time goes is in the details: the first answer of any status (the port opens
once the lifespan has started), the CPU time used by the first 200 (steadier than the
wall clock on a busy machine), and ``python -X importtime`` of the same command, by
package (the time spent in its own modules), also as the excess over the baseline's.

Each function also gets a library floor (bench/import_floor.py): the baseline app
importing the third-party modules that the function's own start under ``-X importtime``
loaded by its first 200 and the baseline's did not, timed in the same interleaved
rounds. Above the floor is the function's own code and its connections; a target below
the floor cannot be met with those libraries.
"""

from __future__ import annotations

import http.client
import math
import re
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import psutil

from bench.harness import BASELINE, BenchError, Processes, create_schema
from bench.report import Figure
from local import profile
from support.functions import FunctionProcess
from support.processes import log_tail

TARGET_ABOVE_FLOOR = 0.15  # of the baseline app, above the library floor of the same run
TARGET_RSS_MB = 80.0
SPECS = (BASELINE, *profile.FUNCTIONS)
OWN_PACKAGES = {"common", "bench", "local", *(spec.package for spec in profile.FUNCTIONS)}
POLL_S = 0.003
IDLE_S = 1.0
# A few typical requests for each, so the footprint includes what serving brings in.
REQUESTS: dict[str, tuple[tuple[str, str, bytes | None], ...]] = {
    "baseline": (("POST", "/api/vote", b'{"vote":"cats"}'),) * 3,
    "vote": (("GET", "/", None), *(("POST", "/api/vote", b'{"vote":"cats"}'),) * 3,
             ("GET", "/readyz", None), ("GET", "/metrics", None)),
    "worker": (("POST", "/events", b"{}"), ("GET", "/readyz", None), ("GET", "/metrics", None)),
    "result": (("GET", "/", None), ("GET", "/api/results", None), ("GET", "/stream", None),
               ("GET", "/readyz", None), ("GET", "/metrics", None)),
}


@dataclass(frozen=True)
class Sizes:
    repeats: int
    import_runs: int  # -X importtime starts of each; the minimum per package is kept


# Nine rounds: on this shared machine the median of five still moved by ~0.1x.
FULL, QUICK = Sizes(repeats=9, import_runs=3), Sizes(repeats=1, import_runs=1)


@dataclass(frozen=True)
class Start:
    first_200_ms: float
    first_answer_ms: float  # the first HTTP answer of any status: the port is open
    cpu_ms: float  # CPU time the process had used by its first 200 (less noisy when busy)
    rss_mb: float


def run(quick: bool) -> list[Figure]:
    sizes = QUICK if quick else FULL
    with Processes("voting-bench-coldstart-") as procs:
        redis_url, database_url = procs.valkey(), procs.postgres()
        create_schema(database_url)
        env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "VOTE_RATE_LIMIT": "0",
               "WORKER_BUDGET_SECONDS": "0.5"}  # the drain of the sample requests is short
        envs = {spec.name: env for spec in SPECS}
        for spec in SPECS:  # warm the file cache; not measured
            _start(procs, spec, env)
        imports = {spec.name: _import_times(procs, spec, env, sizes.import_runs)
                   for spec in SPECS}
        floors = {spec.name: _floor_of(spec) for spec in profile.FUNCTIONS}
        library_modules = {spec.name: _library_modules(imports[spec.name].modules,
                                                       imports["baseline"].modules)
                           for spec in profile.FUNCTIONS}
        for name, floor in floors.items():
            envs[floor.name] = {**env, "FLOOR_MODULES": ",".join(library_modules[name])}
            _start(procs, floor, envs[floor.name])  # warm
        starts: dict[str, list[Start]] = defaultdict(list)
        for _ in range(sizes.repeats):
            for spec in (*SPECS, *floors.values()):
                starts[spec.name].append(_start(procs, spec, envs[spec.name]))

    def median(name: str, attribute: str) -> float:
        return float(statistics.median(getattr(s, attribute) for s in starts[name]))

    baseline_ms = median("baseline", "first_200_ms")
    baseline_rss = median("baseline", "rss_mb")
    figures = []
    for spec in profile.FUNCTIONS:
        samples = starts[spec.name]
        common = {"repeats": sizes.repeats, "uvicorn_workers": 1,
                  "import_ms": _slowest(imports[spec.name].packages),
                  "import_ms_over_baseline": _over(imports[spec.name].packages,
                                                   imports["baseline"].packages),
                  "baseline_import_ms": round(imports["baseline"].packages.get("total",
                                                                               math.nan), 1)}
        floor_ms = median(floors[spec.name].name, "first_200_ms")
        modules = len(library_modules[spec.name])
        figures.append(Figure(
            "coldstart", f"{spec.name} start to first 200", median(spec.name, "first_200_ms"),
            "ms", TARGET_ABOVE_FLOOR, at_least=False, ceiling=baseline_ms,
            ceiling_name="baseline app",
            details={**common, "samples_ms": [round(s.first_200_ms, 1) for s in samples],
                     "baseline_samples_ms": [round(s.first_200_ms, 1)
                                             for s in starts["baseline"]],
                     "first_answer_ms": round(median(spec.name, "first_answer_ms"), 1),
                     "cpu_ms": round(median(spec.name, "cpu_ms"), 1),
                     "baseline_cpu_ms": round(median("baseline", "cpu_ms"), 1),
                     "cpu_ratio": round(median(spec.name, "cpu_ms")
                                        / median("baseline", "cpu_ms"), 2),
                     "baseline_first_answer_ms": round(median("baseline", "first_answer_ms"),
                                                       1),
                     "health_path": spec.health_path,
                     "library_floor_samples_ms": [round(s.first_200_ms, 1)
                                                  for s in starts[floors[spec.name].name]],
                     "library_modules": modules},
            note=f"library floor {floor_ms:,.0f} ms = {floor_ms / baseline_ms:.2f}x (the "
                 f"baseline app importing the same {modules} third-party modules); "
                 f"its own code and connections: "
                 f"{(median(spec.name, 'first_200_ms') - floor_ms) / baseline_ms:+.2f}x",
            floor=floor_ms, floor_name="library floor", floor_rule="plus"))
    for spec in profile.FUNCTIONS:
        samples = starts[spec.name]
        figures.append(Figure(
            "coldstart", f"{spec.name} idle RSS", median(spec.name, "rss_mb"), "MB",
            TARGET_RSS_MB, at_least=False,
            details={"samples_mb": [round(s.rss_mb, 1) for s in samples],
                     "baseline_rss_mb": round(baseline_rss, 1), "uvicorn_workers": 1,
                     "idle_s_before_reading": IDLE_S,
                     "requests_before": [f"{m} {p}" for m, p, _ in REQUESTS[spec.name]]}))
    return figures


def _start(procs: Processes, spec: profile.FunctionSpec, env: dict[str, str]) -> Start:
    """Start one process, time its first 200, stop it. A function and the baseline app are
    first exercised and left idle, and their RSS read; a floor's is not reported."""
    function = FunctionProcess(spec, {**procs.env, **env}, procs.folder)
    port, name = function.port, function.log_path.stem
    started = time.perf_counter()
    process = function.spawn()
    first_answer: float | None = None
    try:
        deadline = started + 60
        while True:
            status = _status(port, spec.health_path)
            now = time.perf_counter()
            if status is not None and first_answer is None:
                first_answer = now
            if status == 200:
                cpu = psutil.Process(process.pid).cpu_times()
                break
            if process.poll() is not None:
                raise BenchError(f"{name} exited with {process.returncode}:\n"
                                 f"{log_tail(function.log_path)}")
            if now > deadline:
                raise BenchError(f"{name} gave no 200 on {spec.health_path} within 60 s:\n"
                                 f"{log_tail(function.log_path)}")
            time.sleep(POLL_S)
        assert first_answer is not None
        rss_mb = math.nan
        if spec.name in REQUESTS:
            for method, path, body in REQUESTS[spec.name]:
                status = _request(port, method, path, body)
                if status is None or status >= 400:
                    raise BenchError(f"{name}: {method} {path} answered {status}:\n"
                                     f"{log_tail(function.log_path)}")
            time.sleep(IDLE_S)
            rss_mb = psutil.Process(process.pid).memory_info().rss / 2**20
    finally:
        function.stop()
    return Start((now - started) * 1000, (first_answer - started) * 1000,
                 (cpu.user + cpu.system) * 1000, rss_mb)


def _status(port: int, path: str) -> int | None:
    """The status of ``GET path``, or None while nothing listens."""
    try:
        return _request(port, "GET", path, None, timeout_s=2)
    except OSError:
        return None


def _request(port: int, method: str, path: str, body: bytes | None,
             timeout_s: float = 10) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        if path == "/stream":  # the first event (a snapshot) is enough; then hang up
            response.fp.readline()
        else:
            response.read()
        return response.status
    finally:
        connection.close()


_IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


@dataclass(frozen=True)
class Imports:
    packages: dict[str, float]  # "total", and ms in each package's own modules
    modules: list[str]  # every module loaded, in the order each finished loading


def _import_times(procs: Processes, spec: profile.FunctionSpec, env: dict[str, str],
                  runs: int) -> Imports:
    """Where a start's imports go: the same server command under ``python -X importtime``
    until its first 200; ``total``, and the time spent in each package's own modules
    (ms; the flag itself adds some overhead). On a busy machine a single run charges a
    preemption to whichever module was loading: the minimum over the runs is kept."""
    samples = [sample for _ in range(runs)
               if (sample := _import_run(procs, spec, env)) is not None]
    if not samples:
        raise BenchError(f"{spec.name} gave no 200 under python -X importtime")
    packages = {key: min(sample.packages.get(key, 0.0) for sample in samples)
                for key in set[str]().union(*(sample.packages for sample in samples))}
    return Imports(packages, samples[0].modules)


def _floor_of(spec: profile.FunctionSpec) -> profile.FunctionSpec:
    """The function's library floor (bench/import_floor.py), started the same way."""
    return profile.FunctionSpec(f"{spec.name}-floor", "bench", "bench.import_floor:create_app",
                                BASELINE.health_path, ())


def _library_modules(modules: list[str], baseline_modules: list[str]) -> list[str]:
    """The third-party modules among ``modules`` that the baseline app does not load."""
    loaded = set(baseline_modules)
    return [module for module in modules if module not in loaded
            and (top := module.partition(".")[0]) not in sys.stdlib_module_names
            and top not in OWN_PACKAGES and not top.startswith(("__", "_sysconfigdata"))]


def _slowest(imports: dict[str, float], top: int = 8) -> dict[str, float]:
    ranked = sorted(((k, v) for k, v in imports.items() if k != "total"),
                    key=lambda item: -item[1])[:top]
    return {"total": round(imports.get("total", math.nan), 1),
            **{k: round(v, 1) for k, v in ranked}}


def _over(imports: dict[str, float], baseline: dict[str, float],
          top: int = 6) -> dict[str, float]:
    """The packages that cost this app the most import time beyond the baseline's."""
    extra = {k: v - baseline.get(k, 0.0) for k, v in imports.items() if k != "total"}
    ranked = sorted(extra.items(), key=lambda item: -item[1])[:top]
    return {k: round(v, 1) for k, v in ranked if v > 0}


def _import_run(procs: Processes, spec: profile.FunctionSpec,
                env: dict[str, str]) -> Imports | None:
    function = FunctionProcess(spec, {**procs.env, **env}, procs.folder,
                               python_options=("-X", "importtime"))
    process = function.spawn()
    try:
        deadline = time.monotonic() + 60
        while _status(function.port, spec.health_path) != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        # Only what was loaded by the first 200 (stderr is unbuffered); not the shutdown's.
        loaded = function.log_path.read_bytes().decode(errors="replace")
    finally:
        function.stop()
    packages: dict[str, float] = defaultdict(float)
    modules = []
    total = 0.0
    for line in loaded.splitlines():
        if match := _IMPORT_LINE.match(line):
            modules.append(match.group(4))
            packages[match.group(4).split(".")[0]] += int(match.group(1)) / 1000
            if len(match.group(3)) == 1:  # a top-level import: its cumulative time
                total += int(match.group(2)) / 1000
    return Imports({"total": total, **packages}, modules)
