"""bench/cost.py: the capacity and cost tables in docs/DEPLOY.md are what it computes from the
committed benchmark results and template.yaml, and its arithmetic counts what a viewer-hour
costs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench import cost
from bench.cost import Cloud, CostError, Measured, Viewer
from support import REPO

RESULTS = REPO / "docs" / "bench-results.json"
DEPLOY = REPO / "docs" / "DEPLOY.md"
TEMPLATE = REPO / "template.yaml"


@pytest.fixture(scope="module")
def cloud() -> Cloud:
    return Cloud.read(TEMPLATE)


def measured(**changes: float) -> Measured:
    """Round figures, so the expected values can be worked out by hand."""
    figures = Measured(when="test", machine="test", viewers_per_process=5_000, p99_ms=200,
                       cpu_percent=80, changes_per_s=10, bytes_per_event=300,
                       connect_bytes=700, cpu_s_per_vote=100e-6, drain_votes_per_s=100_000)
    return dataclasses.replace(figures, **changes)


def test_the_deploy_guide_holds_what_the_script_prints(cloud: Cloud) -> None:
    """docs/DEPLOY.md's tables are bench.cost's output for docs/bench-results.json (after a
    new run: `python -m bench.cost --write docs/DEPLOY.md`)."""
    section = cost.render(Measured.read(RESULTS), cloud, "docs/bench-results.json")
    assert cost.replace_section(DEPLOY.read_text(), section) == DEPLOY.read_text()


def test_service_mode_meets_the_cost_target(cloud: Cloud) -> None:
    """At the template's defaults a viewer-hour in service mode costs at most $0.10 a
    thousand, with the bytes and the viewers per process the last full run measured."""
    figures = Measured.read(RESULTS)
    assert cost.per_1000_viewer_hours("service", figures, cloud) <= (
        cost.TARGET_PER_1000_VIEWER_HOURS)


def test_a_task_holds_no_more_viewers_than_were_measured(cloud: Cloud) -> None:
    """STREAM_MAX_SUBSCRIBERS is at most the fan-out's subscribers at p99 < 250 ms, and
    autoscaling aims below it."""
    figures = Measured.read(RESULTS)
    assert cloud.task_target < cloud.task_cap <= figures.viewers_per_process


def test_a_viewer_hour_counts_events_keepalives_and_reconnects(cloud: Cloud) -> None:
    """Bytes = events/s x bytes/event x 3600, plus a keep-alive every ping interval and a
    reconnect every stream lifetime; on the wire each send adds its TLS and TCP/IP framing."""
    every = dataclasses.replace(cloud, events_per_s=1.0, ping_s=15, lifetime_s=300)
    viewer = Viewer.of(measured(), every)
    ping = 15  # ": ping\r\n\r\n" in a chunk: "a\r\n" ... "\r\n"
    assert viewer.http_bytes == 3600 * 300 + 240 * ping + 12 * 700
    assert viewer.wire_bytes == viewer.http_bytes + 74 * (3600 + 240 + 12)
    assert viewer.reconnects == 12


def test_the_load_balancer_bills_its_largest_dimension(cloud: Cloud) -> None:
    """LCUs per viewer are active connections (1/3,000) until the bytes outweigh them."""
    quiet = Viewer.of(measured(bytes_per_event=1, connect_bytes=1),
                      dataclasses.replace(cloud, events_per_s=0.1))
    assert quiet.lcus() == pytest.approx(1 / 3000)
    busy = Viewer.of(measured(), dataclasses.replace(cloud, events_per_s=20))
    assert busy.lcus() == pytest.approx(busy.http_bytes / 1e9)


def test_a_results_file_from_before_the_cost_figures_says_to_rerun(tmp_path: Path) -> None:
    """A run without bytes per event or CPU per vote is refused, naming what is missing."""
    results = json.loads(RESULTS.read_text())
    for figure in results["figures"]:
        figure["details"].pop("bytes_per_event", None)
        figure["details"].pop("cpu_seconds_per_vote", None)
    old = tmp_path / "bench-results.json"
    old.write_text(json.dumps(results))
    with pytest.raises(CostError, match=r"bytes_per_event.*cpu_seconds_per_vote.*make bench"):
        Measured.read(old)


def test_write_replaces_only_the_marked_section(tmp_path: Path) -> None:
    """--write keeps everything outside the markers and puts the tables between them."""
    results = json.loads(RESULTS.read_text())
    for figure in results["figures"]:  # round stand-ins where the committed run has none
        figure["details"].setdefault("bytes_per_event", 100.0)
        figure["details"].setdefault("connect_bytes", 800.0)
        figure["details"].setdefault("cpu_seconds_per_vote", 100e-6)
    run = tmp_path / "bench-results.json"
    run.write_text(json.dumps(results))
    guide = tmp_path / "DEPLOY.md"
    guide.write_text(f"# Deploy\n\nbefore\n\n{cost.BEGIN}\nold tables\n{cost.END}\n\nafter\n")
    assert cost.main([str(run), "--write", str(guide)]) == 0
    text = guide.read_text()
    assert text.startswith("# Deploy\n\nbefore\n\n" + cost.BEGIN + "\nComputed by ")
    assert text.endswith(cost.END + "\n\nafter\n")
    assert "old tables" not in text
