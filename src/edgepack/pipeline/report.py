"""The build's outputs for people (a rich table) and for machines (report.json)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import edgepack
from edgepack.fsutil import write_json
from edgepack.pipeline.context import Build, git_revision
from edgepack.pipeline.steps import StepRecord


def build_report(
    b: Build, records: list[StepRecord], *, total_seconds: float, image_tar: Path
) -> dict[str, Any]:
    by_name = {r.name: r for r in records}
    image = by_name["image"].outputs
    model = by_name["app"].outputs["model"]
    return {
        "edgepack": edgepack.__version__,
        "revision": git_revision(b.project.root),
        "target": b.target.name,
        "ok": True,
        "platform": b.target.platform,
        "qemu_cpu": b.target.qemu_cpu,
        "cpu": b.target.cpu_model,
        "runs_on": b.target.runs_on,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(total_seconds, 3),
        "steps": [{"name": r.name, "key": r.key, "cached": r.cached, "seconds": r.seconds} for r in records],
        "image": {
            **{k: image[k] for k in ("tag", "id", "bytes", "architecture", "tar_bytes")},
            "tar": str(image_tar),
        },
        "model": {"source": model["source"], "sha256": model["sha256"], "kind": model["kind"]},
        # the engine the image carries; runtime: auto resolves to what model.runtimes chose (runtimes.auto)
        "runtime": {"setting": b.target.runtime, "carried": model.get("runtime", "onnxruntime")},
        "smoke": by_name["smoke"].outputs,
        "smoke_input": by_name["app"].outputs.get("fed", {}),
        "quantized_latency": by_name["latency"].outputs if "latency" in by_name else {},
        "lock_drift": [d.to_json() for d in b.drift],
    }


def write_report(b: Build, report: dict[str, Any]) -> None:
    write_json(b.out_dir / "report.json", report)


def finish(b: Build, records: list[StepRecord], *, seconds: float, image_tar: Path) -> dict[str, Any]:
    """Publish the model report and write build/<target>/report.json of a build that passed."""
    model_report = next((r for r in records if r.name == "validate"), None)
    if model_report is not None:
        from edgepack.modelpipe.pipeline import publish_report

        publish_report(Path(model_report.outputs["dir"]), b.out_dir / "model")
    result = build_report(b, records, total_seconds=seconds, image_tar=image_tar)
    write_report(b, result)
    return result
