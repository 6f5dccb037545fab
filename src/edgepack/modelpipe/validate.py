"""Validation of the model that goes into the image against the fp32 export.

Fixed seeds and fixed inputs: the spec's synthetic sets (export sizes and
unseen sizes) and, for audio tasks, model inputs recorded from the real audio
of the evaluation set. Per output: shape, dtype, max abs/rel error, cosine.
An fp32 model must match within the spec's tolerances; a quantized one is
judged by its task metric, the cosine of every output, and a per-layer SQNR
ranking that names where the error comes from.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgepack.errors import ModelCheckError
from edgepack.modelpipe import layers, taskmetric
from edgepack.modelpipe.compare import OutputCheck, check_outputs
from edgepack.modelpipe.export import run_onnx, session
from edgepack.modelpipe.inputs import Feeds, check_sets, example
from edgepack.modelpipe.spec import ModelSpec

REAL_FEEDS = 8  # inputs recorded from real audio, spread over the files
LAYER_ROWS = 25  # worst layers kept in the report


@dataclass(frozen=True)
class Validation:
    ok: bool
    quantized: bool
    outputs: list[dict[str, Any]]
    layers: list[layers.LayerError]
    metrics: list[taskmetric.Metric]
    latency_ms: dict[str, float]
    size_bytes: dict[str, int]
    failures: list[str]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = d["layers"][:LAYER_ROWS]
        return d


def input_sets(spec: ModelSpec, fp32: Path, root: Path) -> list[tuple[str, Feeds]]:
    sets = [(s.label, s.feeds) for s in [example(spec), *check_sets(spec)]]
    if spec.task == "vad" and spec.evaluate.audio:
        recorded: list[Feeds] = []
        for name in spec.evaluate.audio:
            taskmetric.vad_probs(
                fp32, taskmetric.read_audio(root / name, spec, what="evaluation audio"), keep=recorded
            )
        step = max(1, len(recorded) // REAL_FEEDS)
        sets += [(f"audio chunk {i * step}", f) for i, f in enumerate(recorded[::step][:REAL_FEEDS])]
    return sets


def median_latency_ms(model: Path, feeds: Feeds, *, runs: int = 30, budget_s: float = 3.0) -> float:
    """Median of repeated runs, one thread, after one warm-up run."""
    sess = session(model, threads=1)
    run_onnx(sess, feeds)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < runs and (len(times) < 5 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        run_onnx(sess, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def validate(spec: ModelSpec, fp32: Path, final: Path, *, root: Path) -> Validation:
    quantized = spec.quantize.mode != "none"
    sets = input_sets(spec, fp32, root)
    ref_sess, got_sess = session(fp32), session(final)
    rows, checks = [], []
    tol = spec.tolerance
    for label, feeds in sets:
        got = check_outputs(
            spec.outputs, run_onnx(ref_sess, feeds), run_onnx(got_sess, feeds), rtol=tol.rtol, atol=tol.atol
        )
        if quantized:  # judged by cosine and the task metric, not by fp32 tolerances
            got = [_by_cosine(c, spec.evaluate.min_output_cosine) for c in got]
        checks += [(label, c) for c in got]
        rows += [{"inputs": label, **asdict(c)} for c in got]
    if quantized and any(label.startswith("audio") for label, _ in sets):
        # Real inputs judge a quantized model: random states and signals lie outside the ranges it was
        # calibrated for. The synthetic rows stay in the report.
        checks = [(label, c) for label, c in checks if label.startswith("audio")]
    ranked = (
        layers.compare_layers(
            fp32,
            final,
            [f for _, f in sets],
            input_names=[t.name for t in spec.inputs],
            qdq=spec.quantize.mode == "static",
        )
        if quantized
        else []
    )
    metrics = taskmetric.task_metrics(spec, fp32, final, root) if quantized else []
    failures = [f"output {c.line()} on '{label}'" for label, c in checks if not c.ok]
    failures += [f"{m.name} {m.value:.4g} (limit {m.limit:g}; {m.detail})" for m in metrics if not m.ok]
    feeds = sets[-1][1] if spec.task == "vad" and len(sets) > 1 else sets[0][1]
    latency = {"fp32": median_latency_ms(fp32, feeds), "final": median_latency_ms(final, feeds)}
    sizes = {"fp32": fp32.stat().st_size, "final": final.stat().st_size}
    return Validation(not failures, quantized, rows, ranked, metrics, latency, sizes, failures)


def _by_cosine(c: OutputCheck, minimum: float) -> OutputCheck:
    if c.why.startswith("got ["):  # shape or dtype changed: always a failure
        return c
    ok = c.cosine >= minimum
    return OutputCheck(
        c.name,
        c.shape,
        c.dtype,
        c.max_abs,
        c.max_rel,
        c.cosine,
        ok,
        "" if ok else f"cosine below {minimum:g}",
    )


def require_pass(spec: ModelSpec, v: Validation) -> None:
    if v.ok:
        return
    worst = v.layers[0] if v.layers else None
    layer = f" Worst layer: {worst.node} ({worst.op_type}) SQNR {worst.sqnr_db:.1f} dB." if worst else ""
    raise ModelCheckError(
        f"model '{spec.name}' ({spec.quantize.mode}) failed validation: "
        + "; ".join(v.failures[:3])
        + "."
        + layer,
        hint="Exclude the worst layers (quantize.exclude_nodes / exclude_op_types), try static QDQ with "
        "per_channel, or keep fp32 (quantize.mode: none).",
    )
