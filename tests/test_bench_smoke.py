"""The benchmark harness still runs end to end (``python -m bench --quick``).

Tiny sizes and short runs: this proves the suite starts its servers, drives each
scenario, prints each figure beside its ceiling and writes its results. It asserts no
timing; the figures of a quick run on a busy machine mean nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_quick_benchmark_prints_every_ratio_and_writes_its_results(tmp_path: Path) -> None:
    """Each scenario prints its ratio line next to the target; JSON and chart are written."""
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=220, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    expected = {"drain": " vs COPY + upsert ", "read": " vs p50 with 1,000 ",
                "fanout": "p99 delay", "coldstart": " vs baseline app "}
    if shutil.which("wrk"):
        expected["ingest"] = " vs baseline app "
    for scenario, ceiling in expected.items():
        assert any(line.startswith(scenario) and ceiling in line and "(target " in line
                   for line in lines), f"no {scenario} ratio line in:\n{result.stdout}"
    document = json.loads((tmp_path / "bench-results.json").read_text())
    assert set(expected) <= {figure["scenario"] for figure in document["figures"]}
    assert document["machine"]["cores"]
    # each ratio against the baseline app comes with its floor, measured in the same run,
    # and its target is set by that floor: ingest at least 0.85 of it, a cold start at
    # most 0.15x above it
    rules = {"ingest": ("times", 0.85), "coldstart": ("plus", 0.15)}
    for figure in document["figures"]:
        if figure["ceiling_name"] == "baseline app":
            assert isinstance(figure["floor"], float) and figure["floor"] > 0, figure
            assert (figure["floor_rule"], figure["target"]) == rules[figure["scenario"]], figure
    assert (tmp_path / "bench-chart.png").stat().st_size > 0


def test_the_import_floor_loads_only_the_modules_it_is_given() -> None:
    """bench/import_floor.py must load nothing of its own beyond the baseline app, or a
    cold start's library floor would include modules the function never loads."""
    def loaded(module: str) -> set[str]:
        run = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                             cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
        return {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}

    assert loaded("bench.import_floor") - loaded("bench.baseline") == {"bench.import_floor"}
