"""The ``convert`` step of a build whose target runs another runtime than ONNX Runtime (``runtime: litert``).

After the ONNX model stages (export, quantize, validate), the spec's torch
module goes through the runtime's own toolchain at the smoke input's shapes:
litert-torch to ``.tflite``, ai-edge-quantizer's int8. The int8 file ships if it
keeps the quantize gate's cosine against the fp32 ONNX export, else the fp32
file if that matches the export within the spec's tolerance; otherwise the
build stops here (exit 9), naming the refused operators or the difference, and
nothing is published. The folder is what the image gets, like validate's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgepack.errors import ModelCheckError
from edgepack.fsutil import atomic_path, sha256_file, write_json
from edgepack.modelpipe.spec import ModelSpec
from edgepack.pipeline.context import Build

STREAMING = ("asr", "vad")  # their runtimes stream through onnxruntime sessions (edgepack_runtime.asr/vad)


def convert_stage(
    b: Build, spec: ModelSpec, *, source_dir: Path, export_dir: Path, validate_dir: Path, out: Path
) -> dict[str, Any]:
    from edgepack.modelpipe.export import run_onnx, session
    from edgepack.modelpipe.pipeline import SMOKE_INPUTS
    from edgepack.runtimes.compare import Job, judge
    from edgepack.runtimes.litert import LiteRT

    rt = LiteRT()
    feeds_npz = validate_dir / SMOKE_INPUTS
    with np.load(feeds_npz, allow_pickle=False) as data:
        feeds = {k: data[k] for k in data.files}
    reference = run_onnx(session(export_dir / "model.onnx"), feeds)
    with atomic_path(out, is_dir=True) as tmp:
        work = tmp / "work"
        work.mkdir()
        job = Job(
            b=b,
            spec=spec,
            work=work,
            source_dir=source_dir,
            deps_dir=None,
            fp32_onnx=export_dir / "model.onnx",
            quantized_onnx=validate_dir / "model.onnx",
            feeds=feeds_npz,
            reference=reference,
            image="",
        )
        converted = rt.convert(job, work)
        if not converted.ok:
            named = f" (unsupported: {', '.join(converted.unsupported)})" if converted.unsupported else ""
            raise ModelCheckError(
                f"model '{spec.name}': LiteRT conversion failed{named}: {converted.reason}",
                hint="Keep runtime: onnxruntime for this model, or change the refused construct; "
                "edgepack model.runtimes compares what each runtime can run.",
            )
        parity: dict[str, Any] = {}
        chosen: tuple[str, Path] | None = None
        for label, candidate in (("int8", converted.int8), ("fp32", converted.fp32)):
            if candidate is None:
                continue
            rt.run_host(job, candidate, feeds_npz, work / f"out-{label}.npz", 1)
            with np.load(work / f"out-{label}.npz", allow_pickle=False) as data:
                got = [data[f"arr_{i}"] for i in range(len(data.files))]
            parity[label] = judge(spec, reference, got, quantized=label == "int8")
            if parity[label]["ok"] and chosen is None:
                chosen = (label, candidate)
        if chosen is None:
            worst = parity.get("fp32") or parity.get("int8") or {}
            raise ModelCheckError(
                f"model '{spec.name}': the LiteRT model differs from the fp32 ONNX export: "
                f"{worst.get('why')}.",
                hint="Keep runtime: onnxruntime for this model (edgepack model.runtimes shows both).",
            )
        label, path = chosen
        shutil.copyfile(path, tmp / "model.tflite")
        assert converted.fp32 is not None
        shutil.copyfile(
            converted.fp32, tmp / "model.fp32.tflite"
        )  # the latency step's baseline, not the image's
        shutil.copyfile(feeds_npz, tmp / SMOKE_INPUTS)
        meta = json.loads((validate_dir / "model.json").read_text())
        meta.update(
            file="model.tflite",
            runtime="litert",
            runtime_file=label,
            sha256=sha256_file(tmp / "model.tflite"),
            quantize=f"litert {label}",
            outputs=list(spec.outputs),
        )
        for entry in meta.get("signature", {}).get(
            "inputs", []
        ):  # a LiteRT file has the shapes it was made at
            if entry.get("name") in feeds:
                entry["shape"] = list(feeds[entry["name"]].shape)
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        record = {
            "runtime": "litert",
            "shipped": label,
            "parity": parity,
            "notes": list(converted.notes),
            "bytes": {"fp32": converted.fp32.stat().st_size, "shipped": path.stat().st_size},
        }
        write_json(tmp / "convert.json", record)
        shutil.rmtree(work)
    return {
        "dir": str(out),
        "meta": meta,
        "shipped": label,
        "fp32_file": "model.fp32.tflite",
        "file": "model.tflite",
        "mode": f"litert {label}",
    }
