"""Figures and the table: each figure is the median of several runs, with their min–max."""

import math
import os
import platform
import statistics
from dataclasses import dataclass


@dataclass
class Figure:
    """A measurement over runs; `higher_is_better` decides what "min" means for a target."""

    values: list
    unit: str
    higher_is_better: bool = False
    digits: int = 0

    @property
    def median(self):
        return statistics.median(self.values)

    def text(self, value):
        return f"{value:,.{self.digits}f}"

    @property
    def shown(self):
        return f"{self.text(self.median)} {self.unit}".strip()

    @property
    def spread(self):
        if len(self.values) < 2:
            return "(1 run)"
        return f"{self.text(min(self.values))}–{self.text(max(self.values))}"


@dataclass
class Row:
    section: str
    name: str
    figure: Figure | None = None
    target: float | None = None  # met when the median is on the right side of it
    note: str = ""

    @property
    def target_text(self):
        if self.target is None or self.figure is None:
            return ""
        sign = "≥" if self.figure.higher_is_better else "<"
        return f"{sign} {self.figure.text(self.target)} {self.figure.unit}".strip()

    @property
    def met(self):
        if self.target is None or self.figure is None:
            return ""
        if self.figure.higher_is_better:
            return "yes" if self.figure.median >= self.target else "**NO**"
        return "yes" if self.figure.median < self.target else "**NO**"

    def cells(self):
        if self.figure is None:
            return [self.section, self.name, self.note or "n/a", "", "", ""]
        name = f"{self.name} ({self.note})" if self.note else self.name
        return [self.section, name, self.figure.shown, self.figure.spread, self.target_text, self.met]


def percentile(values, share):
    """Nearest-rank percentile: p95 of 20 latencies is the 19th smallest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def ratio(numerator, denominator, unit="×"):
    """Ratio of two figures: median over median; the spread is the worst and best pairing."""
    worst = min(numerator.values) / max(denominator.values)
    best = max(numerator.values) / min(denominator.values)
    figure = Figure([worst, numerator.median / denominator.median, best], unit, higher_is_better=True, digits=1)
    return figure


def table(rows):
    header = ["#", "Benchmark", "Median", "Min–max", "Target", "Met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def meminfo_gib():
    with open("/proc/meminfo") as f:
        kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return kib / 1024 / 1024


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def machine(pg_version, redis_version):
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- CPU: {os.cpu_count()} cores ({cpu_model()}); RAM: {meminfo_gib():.1f} GiB",
        f"- PostgreSQL {pg_version}; Redis {redis_version}; Python {platform.python_version()}",
        f"- Load average (1, 5, 15 min) when the table was printed: {load}",
    ]
