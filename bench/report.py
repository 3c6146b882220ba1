"""Figures, the table, the machine they were measured on, the JSON file and the chart."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One measured figure, with the ceiling (or baseline) measured in the same run.

    With a ceiling the target applies to ``value / ceiling``; without one it applies
    to ``value`` itself. ``at_least``: higher is better (a throughput); else lower is.
    A ``floor`` (same unit) is what only the work no implementation can skip measured in
    the same run: a target beyond it cannot be met (bench/queue_floor.py,
    bench/import_floor.py). Where the target is set by the floor (``floor_rule``), it is
    ``target`` times the floor's ratio ("times": ingest, at least 0.85 of its floor), or
    the floor's ratio plus ``target`` ("plus": a cold start, at most 0.15x above its
    floor), both measured in the same run.
    """

    scenario: str
    name: str
    value: float
    unit: str
    target: float
    at_least: bool
    ceiling: float | None = None
    ceiling_name: str = ""
    details: dict[str, object] = field(default_factory=dict)
    note: str = ""  # the other figures worth reading beside this one
    floor: float | None = None
    floor_name: str = ""
    floor_rule: str = ""  # "", "times" or "plus": see above

    @property
    def ratio(self) -> float | None:
        return None if self.ceiling is None else self.value / self.ceiling

    @property
    def floor_ratio(self) -> float | None:
        return None if self.floor is None or self.ceiling is None else self.floor / self.ceiling

    @property
    def judged(self) -> float:
        return self.value if self.ratio is None else self.ratio

    @property
    def goal(self) -> float:
        """The target this run's figure is judged by."""
        floor = self.floor_ratio
        if floor is not None and self.floor_rule == "times":
            return self.target * floor
        if floor is not None and self.floor_rule == "plus":
            return floor + self.target
        return self.target

    @property
    def passed(self) -> bool:
        return self.judged >= self.goal if self.at_least else self.judged <= self.goal

    @property
    def target_text(self) -> str:
        sign = ">=" if self.at_least else "<="
        if self.floor_rule == "times":
            return f"{sign} {self.target:g} x floor = {self.goal:.2f}x"
        if self.floor_rule == "plus":
            return f"{sign} floor + {self.target:g}x = {self.goal:.2f}x"
        return f"{sign} {self.target:g}{'x' if self.ceiling is not None else ' ' + self.unit}"

    def line(self) -> str:
        """The figure, its ceiling and the ratio next to the target, on one line."""
        text = f"{self.scenario} {self.name}: {_num(self.value)} {self.unit}"
        if self.ceiling is not None:
            text += (f" vs {self.ceiling_name} {_num(self.ceiling)} {self.unit} "
                     f"= {self.judged:.2f}x")
        text += f" (target {self.target_text}) {'PASS' if self.passed else 'MISS'}"
        return f"{text}\n    {self.note}" if self.note else text

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ratio": self.ratio, "floor_ratio": self.floor_ratio,
                "goal": self.goal, "passed": self.passed, "target_text": self.target_text}


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:#.3g}"


def machine() -> dict[str, object]:
    """What the figures were measured on; a shared machine's load is part of that."""
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    mem_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo")
                   if line.startswith("MemTotal")), 0)
    wrk = shutil.which("wrk")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024**2, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "wrk": _first_line([wrk, "--version"]).partition(" Copyright")[0] if wrk else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _first_line(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return (result.stdout or result.stderr).splitlines()[0] if (result.stdout or
                                                               result.stderr) else ""


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "ceiling", "ratio", "target", "", "floor")]
    for f in figures:
        rows.append((f"{f.scenario} {f.name}", f"{_num(f.value)} {f.unit}",
                     "" if f.ceiling is None else f"{_num(f.ceiling)} ({f.ceiling_name})",
                     "" if f.ratio is None else f"{f.ratio:.2f}x", f.target_text,
                     "pass" if f.passed else "MISS",
                     "" if f.floor_ratio is None else f"{f.floor_ratio:.2f}x ({f.floor_name})"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return "\n".join(lines + [f"{f.scenario} {f.name}: {f.note}" for f in figures if f.note])


def write_json(path: Path, run: dict[str, object], figures: list[Figure]) -> None:
    path.write_text(json.dumps({**run, "figures": [f.as_dict() for f in figures]}, indent=2,
                               default=str) + "\n")


def draw_chart(path: Path, figures: list[Figure], title: str) -> bool:
    """One bar per figure: how far it is from its target (1.0 = on target, more is better)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not figures:
        return False
    def score(f: Figure, judged: float) -> float:
        return judged / f.goal if f.at_least else f.goal / max(judged, 1e-9)

    scores = [score(f, f.judged) for f in figures]
    floors = [(score(f, f.floor_ratio), row) for row, f in enumerate(figures)
              if f.floor_ratio is not None]
    labels = [f"{f.scenario} {f.name}\n{_num(f.value)} {f.unit}"
              + (f" = {f.ratio:.2f}x" if f.ratio is not None else "")
              + f", target {f.target_text}" for f in figures]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(figures) + 1.5))
    ax.barh(labels, scores, color=["tab:green" if f.passed else "tab:red" for f in figures])
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    if floors:
        ax.scatter(*zip(*floors, strict=True), marker="D", color="black", zorder=3,
                   label="floor: only the work no implementation can skip")
        ax.legend(loc="lower right", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("figure relative to its target (right of the dashed line: target met)")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
