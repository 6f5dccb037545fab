"""Regression detection: a board's latest bench against the baseline of its target and model.

Baselines live in the repository (baselines/<target>/<model-sha[:12]>.json),
thresholds in data (baselines/thresholds.yaml, per metric: which way is
worse, relative and absolute). The run history is build/<target>/device-runs.jsonl.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgepack.config import Project, Target
from edgepack.device.errors import RegressionError
from edgepack.errors import InputError
from edgepack.fsutil import write_json
from edgepack.yamlconf import build, load_yaml


@dataclass(frozen=True)
class Threshold:
    worse: Literal["higher", "lower"] = field(metadata={"doc": "which direction is a regression"})
    rel: float = field(metadata={"doc": "tolerated change, a fraction of the baseline"})
    abs: float = field(metadata={"doc": "tolerated change, in the metric's unit"})


@dataclass(frozen=True)
class Drift:
    runs: int = field(metadata={"doc": "latest runs of a board looked at"})
    rel: float = field(metadata={"doc": "total worsening over them that is reported"})


@dataclass(frozen=True)
class Thresholds:
    metrics: dict[str, Threshold]
    drift: Drift


@dataclass(frozen=True)
class Finding:
    board: str
    metric: str
    baseline: float
    new: float
    threshold: Threshold
    regressed: bool

    @property
    def change(self) -> float:
        return (self.new - self.baseline) / self.baseline if self.baseline else float("inf")

    def line(self) -> str:
        t = self.threshold
        return (
            f"{self.board}: {self.metric} {self.baseline:.4g} -> {self.new:.4g} ({self.change:+.1%}; "
            f"threshold: {t.worse} by more than {t.rel:.0%} and {t.abs:g})"
        )


def load_thresholds(path: Path) -> Thresholds:
    doc = load_yaml(path)
    metrics = doc.data.get("metrics") if isinstance(doc.data, dict) else None
    if not isinstance(metrics, dict):
        raise InputError(f"{path}:1: expected a 'metrics:' mapping of thresholds.")
    parsed = {
        name: build(Threshold, value, where=doc, at=("metrics", name)) for name, value in metrics.items()
    }
    drift = build(Drift, doc.data.get("drift", {}), where=doc, at=("drift",))
    return Thresholds(metrics=parsed, drift=drift)


def metrics_of(entry: Mapping[str, Any]) -> dict[str, float]:
    """The comparable numbers of one bench record."""
    lat = entry.get("latency_ms", {})
    out = {f"latency_{p}_ms": float(lat[p]) for p in ("p50", "p95", "p99") if p in lat}
    for key in ("rtf", "load_ms", "peak_rss_mb", "image_mb"):
        if entry.get(key) is not None:
            out[key] = float(entry[key])
    return out


def baseline_path(project: Project, target: Target, model_sha256: str) -> Path:
    return project.root / "baselines" / target.name / f"{model_sha256[:12]}.json"


def history(project: Project, target: Target) -> list[dict[str, Any]]:
    path = project.build_dir / target.name / "device-runs.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def latest_benches(
    project: Project, target: Target, boards: list[str] | None
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for entry in history(project, target):
        if entry.get("kind") == "bench" and (not boards or entry["board"] in boards):
            runs.setdefault(entry["board"], []).append(entry)
    if not runs:
        raise InputError(
            f"no board bench of {target.name} is recorded in build/{target.name}/device-runs.jsonl.",
            hint=f"Run one: edgepack device.bench --target {target.name} --board NAME",
        )
    return runs


def compare(
    board: str, base: dict[str, float], new: dict[str, float], thresholds: Thresholds
) -> list[Finding]:
    findings = []
    for name, t in thresholds.metrics.items():
        if name not in base or name not in new:
            continue
        delta = new[name] - base[name] if t.worse == "higher" else base[name] - new[name]
        regressed = delta > t.abs and delta > t.rel * abs(base[name])
        findings.append(Finding(board, name, base[name], new[name], t, regressed))
    return findings


def drift(board: str, runs: list[dict[str, Any]], thresholds: Thresholds) -> list[str]:
    """Metrics that got worse at each of the latest runs, by more than drift.rel in all."""
    last = [metrics_of(r) for r in runs[-thresholds.drift.runs :]]
    notes: list[str] = []
    if len(last) < thresholds.drift.runs:
        return notes
    for name, t in thresholds.metrics.items():
        values = [m[name] for m in last if name in m]
        if len(values) != len(last) or not values[0]:
            continue
        sign = 1 if t.worse == "higher" else -1
        steps = [sign * (b - a) for a, b in itertools.pairwise(values)]
        total = sign * (values[-1] - values[0]) / abs(values[0])
        if all(s > 0 for s in steps) and total > thresholds.drift.rel:
            trail = " -> ".join(f"{v:.4g}" for v in values)
            notes.append(f"{board}: {name} drifts over the last {len(values)} runs: {trail} ({total:+.1%})")
    return notes


def regress(
    project: Project, target: Target, *, boards: list[str] | None = None, update_baseline: bool = False
) -> tuple[list[Finding], list[str]]:
    """Compare each board's latest bench with its baseline; raise RegressionError on a regression."""
    thresholds = load_thresholds(project.root / "baselines" / "thresholds.yaml")
    runs = latest_benches(project, target, boards)
    findings: list[Finding] = []
    notes: list[str] = []
    for board, entries in sorted(runs.items()):
        latest = entries[-1]
        sha = latest["model"]["sha256"]
        path = baseline_path(project, target, sha)
        if update_baseline:
            write_json(
                path,
                {
                    "target": target.name,
                    "model_sha256": sha,
                    "metrics": metrics_of(latest),
                    "recorded": {k: latest.get(k) for k in ("board", "at", "image_id")},
                },
            )
            notes.append(f"baseline {path.relative_to(project.root)} recorded from board {board}")
            continue
        if not path.is_file():
            raise InputError(
                f"no baseline for target {target.name} and model {sha[:12]} ({path}).",
                hint=f"Record one from a good run: edgepack device.regress --target {target.name} "
                "--update-baseline, then commit it.",
            )
        base = json.loads(path.read_text())["metrics"]
        findings += compare(board, base, metrics_of(latest), thresholds)
        notes += drift(board, entries, thresholds)
    bad = [f for f in findings if f.regressed]
    if bad:
        raise RegressionError(
            f"{len(bad)} metric(s) of {target.name} regressed against the baseline:\n"
            + "\n".join(f"  {f.line()}" for f in bad),
            hint="Find the change that made it slower or bigger; if it is accepted, record a new "
            "baseline: edgepack device.regress --update-baseline",
        )
    return findings, notes
