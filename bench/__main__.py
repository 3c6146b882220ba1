"""``python -m bench [--quick] [--only SCENARIO]... [--out DIR]`` (SCENARIOS below)

Runs each scenario against its own servers, prints each figure beside the ceiling
measured in the same run, then the table, and writes ``bench-results.json`` and
``bench-chart.png`` into ``--out`` (default ``artifacts/``). The exit status is 1 when
a scenario could not run or a correctness check failed (a 2xx vote missing from the
queue, inexact tallies); a missed performance target is reported, not an error. A
scenario whose tool is missing (wrk) is skipped and says so.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

from bench.harness import Unavailable, raise_fd_limit
from bench.report import Figure, draw_chart, machine, table, write_json
from support import REPO

SCENARIOS = ("ingest", "drain", "read", "fanout", "freshness", "coldstart")
# Details that must be true for the figures to mean anything.
CHECKS = ("all_acknowledged_queued", "tallies_exact")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and short runs: checks the harness, not the speed")
    parser.add_argument("--only", action="append", choices=SCENARIOS,
                        help="run only this scenario (repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "artifacts",
                        help="where the JSON results and the chart go")
    args = parser.parse_args(argv)
    raise_fd_limit()  # the servers we start inherit it (the fan-out needs thousands)
    host = machine()
    print("machine: " + ", ".join(f"{key} {value}" for key, value in host.items()), flush=True)
    figures: list[Figure] = []
    scenarios: dict[str, dict[str, object]] = {}
    failed: list[str] = []
    for name in [s for s in SCENARIOS if s in (args.only or SCENARIOS)]:
        # Other work on a shared machine moves the figures: say how busy it was.
        outcome: dict[str, object] = {"load_before": _load()}
        scenarios[name] = outcome
        print(f"\n== {name}{' (quick)' if args.quick else ''} (load average "
              f"{outcome['load_before']})", flush=True)
        started = time.monotonic()
        try:
            found: list[Figure] = importlib.import_module(f"bench.{name}").run(args.quick)
        except Unavailable as missing:
            print(f"{name}: skipped: {missing}", flush=True)
            outcome["skipped"] = str(missing)
            continue
        except Exception:
            traceback.print_exc()
            failed.append(f"{name}: did not run")
            outcome["error"] = traceback.format_exc(limit=3)
            continue
        outcome.update(seconds=round(time.monotonic() - started, 1), load_after=_load())
        for figure in found:
            print(figure.line(), flush=True)
            failed += [f"{figure.scenario} {figure.name}: {check} is false"
                       for check in CHECKS if figure.details.get(check) is False]
        figures += found

    print("\n" + table(figures))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "bench-results.json",
               {"machine": host, "quick": args.quick, "scenarios": scenarios}, figures)
    title = (f"{'quick run (sizes too small to mean anything): ' if args.quick else ''}"
             f"{host['date']}, {host['cores']} cores, {host['cpu']}")
    if draw_chart(args.out / "bench-chart.png", figures, title):
        print(f"chart: {args.out / 'bench-chart.png'}")
    print(f"results: {args.out / 'bench-results.json'}")
    for problem in failed:
        print(f"FAILED {problem}", file=sys.stderr)
    return 1 if failed else 0


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


if __name__ == "__main__":
    sys.exit(main())
