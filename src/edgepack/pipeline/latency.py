"""Did quantization pay on the board's CPU? fp32 and the baked model timed in the image, side by side.

The quantize step measures both models on the host, an x86 CPU whose int8
kernels are not the board's: users of onnxruntime report int8 slower than fp32
on ARM (onnxruntime#20052, #16009). This step runs the image's own
``bench-model`` under QEMU with the board's CPU (natively for a native target),
on the same input, the two models' runs interleaved, one thread, and records
the ratio. Slower int8 is a warning in the summary and the report: QEMU's
timing is a proxy for the board's, good for a ratio, not for absolute figures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgepack.fsutil import atomic_path
from edgepack.pipeline.context import Build, stamp_of
from edgepack.pipeline.docker import run_argv
from edgepack.pipeline.steps import Outputs, Step, key_of

RUNS = 5
NOT_INT8 = ("none", "fp16")  # modes whose model is not an int8 one: nothing to compare


def latency_step(
    b: Build, *, image: Step, smoke: Step, export: Step, quantize: Step, convert: Step | None = None
) -> Step:
    """``convert``: a LiteRT build's step; its fp32 and shipped ``.tflite`` files are compared instead."""
    t = b.target
    inputs = {"image": image.key, "export": export.key, "quantize": quantize.key, "runs": str(RUNS)}
    if convert is not None:
        inputs["convert"] = convert.key
    out = b.cache_dir("latency", key_of("latency", inputs))

    def action() -> Outputs:
        if convert is not None:
            done = stamp_of(b, convert)
            mode, folder = done["mode"], Path(done["dir"])
            fp32, final = folder / done["fp32_file"], folder / done["file"]
            if done["shipped"] == "fp32":
                return {"skipped": "LiteRT ships fp32 (its int8 failed the gate): nothing to compare"}
        else:
            mode = stamp_of(b, quantize).get("mode", "none")
            if mode in NOT_INT8:
                return {"skipped": f"quantize mode {mode}: no int8 model to compare"}
            fp32 = Path(stamp_of(b, export)["dir"]) / "model.onnx"
            final = Path(stamp_of(b, quantize)["dir"]) / "model.onnx"
        suffix = final.suffix
        with atomic_path(out, is_dir=True) as tmp:
            shutil.copyfile(fp32, tmp / f"fp32{suffix}")
            shutil.copyfile(final, tmp / f"quantized{suffix}")
            if convert is not None:  # a LiteRT file takes the shapes it was converted at: the smoke input's
                shutil.copyfile(final.with_name("smoke.npz"), tmp / "feeds.npz")
                fed = "the smoke input (the shapes the LiteRT file was converted at)"
            else:
                feeds, fed = bench_feeds(b)
                np.savez(tmp / "feeds.npz", **feeds)  # type: ignore[arg-type]  # numpy's stub: **kwds as a bool
        timed = run_bench(b, out, tag=f"{t.image}:{image.key[:12]}", suffix=suffix)
        if b.runner.dry_run:
            return {}
        return summarize(timed, mode=mode, where=t.runs_on, fed=fed)

    where = f"QEMU -cpu {t.qemu_cpu}" if t.emulated else "natively"
    needs = (image.name, smoke.name, export.name, quantize.name, *((convert.name,) if convert else ()))
    return Step("latency", f"fp32 vs quantized latency, {where}", inputs, action, needs=needs, phase="smoke")


def bench_feeds(b: Build) -> tuple[dict[str, np.ndarray], str]:
    """One input set at batch 1, as a board runs one stream: the first sample, else the spec's seeded
    inputs at their export sizes."""
    from edgepack.modelpipe import inputs, samples
    from edgepack.modelpipe.steps import load, spec_root

    spec = load(b)
    if spec.samples:
        first = samples.load(spec.samples, spec, root=spec_root(b))[0]
        return first.feeds, f"sample {first.label}"
    sizes = {**inputs.export_sizes(spec), "batch": 1}
    return inputs.make_feeds(spec, sizes, seed=spec.seed), "seeded inputs at the export sizes, batch 1"


def run_bench(b: Build, folder: Path, *, tag: str, suffix: str = ".onnx") -> list[dict[str, Any]]:
    t = b.target
    argv = run_argv(
        image=tag,
        platform=t.platform,
        qemu_cpu=t.qemu_cpu if t.emulated else None,
        command=[
            "bench-model",
            "--model",
            f"/bench/fp32{suffix}",
            "--model",
            f"/bench/quantized{suffix}",
            "--inputs",
            "/bench/feeds.npz",
            "--runs",
            str(RUNS),
            "--threads",
            "1",
        ],
        memory_mb=t.memory_mb,
        volumes={folder: "/bench"},
    )
    result = b.runner.run(argv, what=f"fp32 vs quantized latency in {tag}, {t.runs_on}", timeout=1800)
    if b.runner.dry_run:
        return []
    return [json.loads(line) for line in result.stdout.strip().splitlines()[-2:]]


def summarize(timed: list[dict[str, Any]], *, mode: str, where: str, fed: str) -> dict[str, Any]:
    fp32, final = (r["median_ms"] for r in timed)
    ratio = final / fp32 if fp32 > 0 else float("inf")
    record: dict[str, Any] = {
        "mode": mode,
        "where": where,
        "fed": fed,
        "runs": timed[0]["runs"],
        "threads": 1,
        "fp32_ms": round(fp32, 3),
        "quantized_ms": round(final, 3),
        "ratio": round(ratio, 3),
    }
    if ratio > 1.0:
        record["warning"] = (
            f"the {mode} model is {ratio:.2f}x slower than fp32 {where} (median of {record['runs']}): "
            "try quantize.mode: auto, or keep fp32 (--quantize none) for this board"
        )
    return record
