"""ONNX Runtime: what every edgepack image carries today; the build's own export and int8 model."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from edgepack.modelpipe.spec import ModelSpec
from edgepack.pipeline.context import Build
from edgepack.runtimes.base import Availability, Converted
from edgepack.runtimes.compare import Job


class OnnxRuntime:
    name = "onnxruntime"
    suffix = ".onnx"

    def availability(self, b: Build) -> Availability:
        from edgepack.modelpipe.steps import target_onnxruntime

        t = b.target
        version = target_onnxruntime(b)
        if t.deps == "debian":
            return Availability(True, package=f"python3-onnxruntime {version} (Debian)")
        from edgepack.locks.pypi import read_pins

        _, pins = read_pins(b.project.lock_path(t, "requirements"))
        pin = next(p for p in pins if p.name == "onnxruntime")
        return Availability(True, package=f"onnxruntime=={pin.version}", sha256=pin.hashes[0])

    def refuses(self, spec: ModelSpec) -> str:
        return ""

    def convert(self, job: Job, out: Path) -> Converted:
        """Nothing to convert: the build's export (fp32) and its quantize step's model (int8)."""
        shutil.copyfile(job.fp32_onnx, out / "model.onnx")
        shutil.copyfile(job.quantized_onnx, out / "model.int8.onnx")
        return Converted(
            True,
            fp32=out / "model.onnx",
            int8=out / "model.int8.onnx",
            notes=(f"int8: the build's quantize step ({job.spec.quantize.mode})",),
        )

    def run_host(self, job: Job, model: Path, feeds_npz: Path, outputs_npz: Path, runs: int) -> float:
        from edgepack.modelpipe.export import run_onnx, session

        sess = session(model)
        with np.load(feeds_npz, allow_pickle=False) as data:
            feeds = {k: data[k] for k in data.files}
        got = run_onnx(sess, feeds)
        np.savez(outputs_npz, *got)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            run_onnx(sess, feeds)
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times) if times else 0.0

    def board_files(self, job: Job, avail: Availability) -> tuple[Path | None, int]:
        """Already in the image; its size there: its files in the deps layer, pruned as the image has
        them (0 when it is Debian's package, sized by apt instead)."""
        if job.deps_dir is None:
            return None, 0
        return None, sum(tree_bytes(p) for p in job.deps_dir.glob("onnxruntime*"))


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
