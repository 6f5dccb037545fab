"""``model.runtimes``: each runtime measured on one model and one board, side by side.

For every runtime: can the board have it (its locked wheel for the board's
architecture and Python), does the model convert (the refused operators by
name), does the converted model compute what the reference computes (max abs
difference and cosine of every output, the task metric where it reads arrays),
and what it costs: file size, the runtime's size on the board, host latency,
latency and peak RSS in the target's image under QEMU with the board's CPU.
Each runtime ships int8 from its own toolchain when that passes the gate, else
fp32. ``choose`` then picks by a rule the user can read.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgepack.errors import ConfigError, EdgepackError
from edgepack.fsutil import atomic_path, write_json
from edgepack.modelpipe.spec import ModelSpec
from edgepack.pipeline.context import Build
from edgepack.pipeline.docker import run_argv
from edgepack.runtimes.base import Converted, Row, Runtime

STREAMING = ("asr", "vad")  # the runtime package streams these through onnxruntime sessions
RUNS_HOST = 20
RUNS_BOARD = 5


@dataclass
class Job:
    """One model on one board: the build's artifacts every runtime starts from."""

    b: Build
    spec: ModelSpec
    work: Path  # this comparison's folder (build/cache/runtimes/<key>)
    source_dir: Path  # the build's model (source) step: the spec's files
    deps_dir: Path | None  # the build's deps layer (its pruned site-packages); None for deps: debian
    fp32_onnx: Path  # the build's export
    quantized_onnx: Path  # the build's quantized model (what the onnxruntime image bakes)
    feeds: Path  # one input set at batch 1: the first sample, else seeded inputs at export sizes
    reference: list[np.ndarray]  # the fp32 ONNX export's outputs on ``feeds``
    image: str  # the target's built image (onnxruntime inside), tag
    fed: str = ""
    _venv: Path | None = field(default=None, repr=False)

    def converter_venv(self) -> Path:
        from edgepack.runtimes.toolchain import converter_venv

        if self._venv is None:
            self._venv = converter_venv(self.b.project.cache_dir("toolchains"), self.b.runner)
        return self._venv


def measure(job: Job, runtimes: list[Runtime]) -> list[Row]:
    return [_measure_one(job, rt) for rt in runtimes]


def _measure_one(job: Job, rt: Runtime) -> Row:
    avail = rt.availability(job.b)
    row = Row(rt.name, avail)
    if not avail.ok:
        return replace(row, why_not=avail.reason)
    if why := rt.refuses(job.spec):
        return replace(row, converted=Converted(False, reason=why), why_not=f"cannot convert: {why}")
    out = job.work / rt.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        converted = rt.convert(job, out)
    except EdgepackError as exc:
        converted = Converted(False, reason=exc.message)
    row = replace(row, converted=converted)
    if not converted.ok:
        named = f" (unsupported: {', '.join(converted.unsupported)})" if converted.unsupported else ""
        return replace(row, why_not=f"conversion failed{named}: {converted.reason}")
    row = _judge_and_time(job, rt, row, converted, out)
    if row.passes and rt.name != "onnxruntime" and job.spec.task in STREAMING:
        why = f"measured only: edgepack's {job.spec.task} runtime streams through onnxruntime sessions"
        row = replace(row, not_buildable=f"{why}, so an image of this model carries onnxruntime")
    return row


def _judge_and_time(job: Job, rt: Runtime, row: Row, converted: Converted, out: Path) -> Row:
    parity: dict[str, Any] = {}
    chosen, path = "", None
    for label, candidate in (("int8", converted.int8), ("fp32", converted.fp32)):
        if candidate is None:
            continue
        got_npz = out / f"outputs-{label}.npz"
        try:
            rt.run_host(job, candidate, job.feeds, got_npz, 1)
        except EdgepackError as exc:  # the runtime refused the input: this runtime's result, not the run's
            parity[label] = {"ok": False, "why": f"the host run failed: {exc.message}"}
            continue
        checked = judge(job.spec, job.reference, _read_outputs(got_npz), quantized=label == "int8")
        parity[label] = checked
        if checked["ok"] and not chosen:
            chosen, path = label, candidate
    if path is None:
        worst = parity.get("fp32") or parity.get("int8") or {}
        return replace(row, parity=parity, why_not=f"differs from the reference: {worst.get('why', '')}")
    host_ms = rt.run_host(job, path, job.feeds, out / "outputs-timed.npz", RUNS_HOST)
    mount, runtime_bytes = rt.board_files(job, row.available)
    board = emulated(job, path, mount)
    return replace(
        row,
        chosen=chosen,
        parity=parity,
        passes=True,
        model_bytes=path.stat().st_size,
        runtime_bytes=runtime_bytes,
        host_ms=round(host_ms, 3),
        emulated_ms=round(board["median_ms"], 3),
        start_ms=board.get("load_ms"),
        peak_rss_mb=board.get("peak_rss_mb"),
    )


def judge(
    spec: ModelSpec, reference: list[np.ndarray], got: list[np.ndarray], *, quantized: bool
) -> dict[str, Any]:
    """fp32 must match the reference within the spec's tolerance; int8 must keep every output's cosine
    at ``evaluate.min_output_cosine`` (the quantize gate's)."""
    if len(got) != len(reference):
        return {"ok": False, "why": f"{len(got)} outputs, the reference has {len(reference)}"}
    worst_abs, worst_cos = 0.0, 1.0
    for ref, out in zip(reference, got, strict=True):
        if ref.shape != out.shape:
            return {
                "ok": False,
                "why": f"an output of shape {list(out.shape)}, the reference's is {list(ref.shape)}",
            }
        a, b = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
        worst_abs = max(worst_abs, float(np.abs(a - b).max(initial=0.0)))
        norm = float(np.linalg.norm(a) * np.linalg.norm(b))
        worst_cos = min(worst_cos, float(a @ b / norm) if norm > 0 else float(np.array_equal(a, b)))
    tol, floor = spec.tolerance, spec.evaluate.min_output_cosine
    if quantized:
        ok = worst_cos >= floor
        why = "" if ok else f"int8 cosine {worst_cos:.4f} < {floor:g} (evaluate.min_output_cosine)"
    else:
        ok = all(
            np.allclose(o, r, rtol=tol.rtol * 10, atol=tol.atol * 10)
            for r, o in zip(reference, got, strict=True)
        )
        why = "" if ok else f"fp32 max abs {worst_abs:.3g} outside 10x the spec's tolerance"
    return {"ok": ok, "max_abs": worst_abs, "cosine": worst_cos, "why": why}


# The image's entrypoint runs Python isolated (-I: no PYTHONPATH): a runtime the image lacks is put on
# sys.path by a one-line launcher instead, and the runtime package runs as the entrypoint would run it.
_LAUNCH = (
    "import runpy, sys; sys.path.insert(0, '/opt/runtime'); sys.argv[0] = 'edgepack_runtime'; "
    "runpy.run_module('edgepack_runtime', run_name='__main__', alter_sys=True)"
)


def emulated(job: Job, model: Path, mount: Path | None) -> dict[str, Any]:
    """``bench-model`` of one file in the target's image, QEMU with the board's CPU (or natively);
    ``mount``: a runtime the image lacks, unpacked, put on sys.path."""
    t = job.b.target
    bench_args = [
        "bench-model",
        "--model",
        f"/bench/{model.name}",
        "--inputs",
        "/bench/feeds.npz",
        "--runs",
        str(RUNS_BOARD),
        "--threads",
        "1",
    ]
    command = ["-I", "-c", _LAUNCH, *bench_args] if mount else bench_args
    bench = job.work / "bench" / model.stem
    shutil.rmtree(bench, ignore_errors=True)
    bench.mkdir(parents=True)
    shutil.copyfile(model, bench / model.name)
    shutil.copyfile(job.feeds, bench / "feeds.npz")
    argv = run_argv(
        image=job.image,
        platform=t.platform,
        qemu_cpu=t.qemu_cpu if t.emulated else None,
        command=command,
        memory_mb=t.memory_mb,
        volumes={bench: "/bench", **({mount: "/opt/runtime"} if mount else {})},
        entrypoint="/usr/bin/python3" if mount else None,
    )
    result = job.b.runner.run(argv, what=f"{model.name} in {job.image}, {t.runs_on}", timeout=1800)
    line = result.stdout.strip().splitlines()[-1]
    answer: dict[str, Any] = json.loads(line)
    return answer


def _read_outputs(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def write(job: Job, rows: list[Row], choice: dict[str, Any], dest: Path, *, model_key: str) -> dict[str, Any]:
    from dataclasses import asdict

    doc = {
        "target": job.b.target.name,
        "spec": job.b.model,
        "model_key": model_key,  # runtime: auto takes the choice for this model only (runtimes.auto)
        "runs_on": job.b.target.runs_on,
        "model": job.spec.name,
        "fed": job.fed,
        "runs": {"host": RUNS_HOST, "board": RUNS_BOARD, "threads": 1},
        "rows": [_row_json(asdict(r)) for r in rows],
        "choice": choice,
    }
    with atomic_path(dest) as tmp:
        write_json(tmp, doc)
    return doc


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    conv = row.get("converted") or {}
    for key in ("fp32", "int8"):
        if conv.get(key) is not None:
            conv[key] = str(conv[key])
    return row


def require_available(b: Build, names: list[str]) -> None:
    """Refuse, before any work, when no runtime asked for can run on the target's board."""
    from edgepack.runtimes import registry

    runtimes = registry.all_runtimes()
    found = {rt.name: rt.availability(b) for rt in runtimes}
    if any(found[n].ok for n in names):
        return
    t = b.target
    others = [n for n, a in found.items() if a.ok and n not in names]
    raise ConfigError(
        "; ".join(f"{n} cannot run on {t.name} ({t.platform}): {found[n].reason}" for n in names) + ".",
        hint=f"Runtimes {t.name} can have: {', '.join(others) or 'none'} (--runtimes {','.join(others)}).",
    )


def run(b: Build, names: list[str], *, announce: Any = None) -> dict[str, Any]:
    """Build the target up to its image (cached like a build), then measure each runtime named."""
    from edgepack.modelpipe.export import run_onnx, session
    from edgepack.modelpipe.spec import is_spec_path
    from edgepack.modelpipe.steps import load
    from edgepack.pipeline.latency import bench_feeds
    from edgepack.pipeline.model import bundled_models
    from edgepack.pipeline.plan import plan
    from edgepack.pipeline.steps import execute
    from edgepack.runtimes import choose, registry
    from edgepack.runtimes.auto import measured

    # from the onnxruntime image whatever the target's runtime; and measuring leaves :latest alone
    b = replace(measured(b), tag_latest=False)
    require_available(b, names)
    if not is_spec_path(b.model) and b.model in bundled_models():
        raise ConfigError(
            f"'{b.model}' is a bundled model file: the comparison needs a model spec (models/NAME.yaml) "
            "or an .onnx file, which the build exports and quantizes.",
            hint="Pass --spec models/NAME.yaml (the bundled ones are in models/).",
        )
    spec = load(b)
    require_convertible(spec, names)
    steps = [s for s in plan(b) if s.phase != "smoke"]
    by_name = {r.name: r for r in execute(steps, b.cache, **({"on_start": announce} if announce else {}))}
    work = b.project.cache_dir("runtimes", by_name["quantize"].key)
    work.mkdir(parents=True, exist_ok=True)
    feeds, fed = bench_feeds(b)
    feeds_npz = work / "feeds.npz"
    np.savez(feeds_npz, **{t.name: feeds[t.name] for t in spec.inputs if t.name in feeds})  # type: ignore[arg-type]  # numpy's stub: **kwds as a bool
    fp32 = Path(by_name["export"].outputs["dir"]) / "model.onnx"
    job = Job(
        b=b,
        spec=spec,
        work=work,
        source_dir=Path(by_name["model"].outputs["dir"]),
        deps_dir=Path(by_name["deps"].outputs["site_packages"]) if "deps" in by_name else None,
        fp32_onnx=fp32,
        quantized_onnx=Path(by_name["quantize"].outputs["dir"]) / "model.onnx",
        feeds=feeds_npz,
        reference=run_onnx(session(fp32), feeds),
        image=by_name["image"].outputs["tag"],
        fed=fed,
    )
    wanted = set(names)
    rows = measure(job, [rt for rt in registry.all_runtimes() if rt.name in wanted])
    choice = choose.choose(rows)
    dest = record_path(b)
    doc = write(job, rows, choice, dest, model_key=by_name["quantize"].key)
    doc["json"] = str(dest)
    doc["png"] = str(chart(doc, dest.with_suffix(".png"))) if choice.get("runtime") else None
    return doc


def record_path(b: Build) -> Path:
    """build/<target>/runtimes/<model>.json: one comparison per model, so measuring another model does
    not replace the choice runtime: auto builds this one with."""
    return b.out_dir / "runtimes" / f"{Path(b.model).stem}.json"


def require_convertible(spec: ModelSpec, names: list[str]) -> None:
    """Refuse, before any work, when every runtime asked for refuses this kind of source."""
    from edgepack.runtimes import registry

    asked = [rt for rt in registry.all_runtimes() if rt.name in names]
    reasons = {rt.name: rt.refuses(spec) for rt in asked}
    if asked and all(reasons.values()):
        raise ConfigError(
            "; ".join(f"{n} cannot take '{spec.name}': {why}" for n, why in reasons.items()) + ".",
            hint="Add onnxruntime to --runtimes, or give the model as a torch factory (source.kind: torch).",
        )


def chart(doc: dict[str, Any], dest: Path) -> Path:
    """Two bars per runtime: latency on the board's CPU and size on the board (model + runtime)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["rows"] if r["passes"]]
    names = [f"{r['runtime']}\n({r['chosen']})" for r in rows]
    fig, (lat, size) = plt.subplots(1, 2, figsize=(9, 3.2))
    lat.bar(names, [r["emulated_ms"] for r in rows], color="#4c72b0")
    lat.set_title(f"latency, {doc['runs_on']} (ms, median)", fontsize=9)
    size.bar(names, [(r["model_bytes"] + r["runtime_bytes"]) / 1e6 for r in rows], color="#55a868")
    size.set_title("model + runtime on the board (MB)", fontsize=9)
    fig.suptitle(f"{doc['model']} on {doc['target']}: chosen {doc['choice'].get('runtime')}", fontsize=10)
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return dest
