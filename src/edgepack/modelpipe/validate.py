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

from edgepack.errors import InputError, ModelCheckError, QuantizationGateError, tool_reason
from edgepack.modelpipe import layers, outcome, taskmetric
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
    warnings: list[str]
    judged_on: str  # which input sets judged a quantized model: "samples", "audio" or "synthetic"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = d["layers"][:LAYER_ROWS]
        return d


def input_sets(
    spec: ModelSpec, fp32: Path, root: Path, samples: list[tuple[str, Feeds]] | None = None
) -> list[tuple[str, Feeds]]:
    sets = [(s.label, s.feeds) for s in [example(spec), *check_sets(spec)]]
    sets += [(f"sample {label}", feeds) for label, feeds in samples or []]
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


def validate(
    spec: ModelSpec,
    fp32: Path,
    final: Path,
    *,
    root: Path,
    samples: list[tuple[str, Feeds]] | None = None,
    rank_layers: bool = True,
) -> Validation:
    """``samples`` (label, feeds): real inputs; when given, they judge a quantized model (and its metric)."""
    quantized = spec.quantize.mode != "none"
    sets = input_sets(spec, fp32, root, samples)
    ref_sess, got_sess = session(fp32), session(final)
    rows, checks, outputs = [], [], []
    tol = spec.tolerance
    for label, feeds in sets:
        ref, got = run_checked(ref_sess, feeds, label, spec), run_checked(got_sess, feeds, label, spec)
        outputs.append((label, ref, got))
        found = check_outputs(spec.outputs, ref, got, rtol=tol.rtol, atol=tol.atol)
        if quantized:  # judged by cosine and the task metric, not by fp32 tolerances
            found = [_by_cosine(c, spec.evaluate.min_output_cosine) for c in found]
        checks += [(label, c) for c in found]
        rows += [{"inputs": label, **asdict(c)} for c in found]
    judged = (
        "samples" if samples else "audio" if any(lb.startswith("audio") for lb, _ in sets) else "synthetic"
    )
    if quantized and judged != "synthetic":
        # Real inputs judge a quantized model: random states and signals lie outside the ranges it was
        # calibrated for. The synthetic rows stay in the report, marked as not judged.
        checks = [(label, c) for label, c in checks if label.startswith(("audio", "sample"))]
        for row in rows:
            row["judged"] = row["inputs"].startswith(("audio", "sample"))
    ranked = (
        layers.compare_layers(
            fp32,
            final,
            [f for _, f in sets],
            input_names=[t.name for t in spec.inputs],
            qdq=_is_qdq(final),
        )
        if quantized and rank_layers
        else []
    )
    judged_outputs = [o for o in outputs if judged == "synthetic" or o[0].startswith(("audio", "sample"))]
    metrics = taskmetric.task_metrics(spec, fp32, final, root, judged_outputs) if quantized else []
    failures = [f"output {c.line()} on '{label}'" for label, c in checks if not c.ok]
    failures += [f"{m.name} {m.value:.4g} (limit {m.limit:g}; {m.detail})" for m in metrics if not m.ok]
    feeds = (
        sets[-1][1] if spec.task == "vad" and len(sets) > 1 else (samples[0][1] if samples else sets[0][1])
    )
    latency = {"fp32": median_latency_ms(fp32, feeds), "final": median_latency_ms(final, feeds)}
    sizes = {"fp32": fp32.stat().st_size, "final": final.stat().st_size}
    notes = (
        outcome.ratio_notes(
            size=(sizes["fp32"], sizes["final"]), latency_ms=(latency["fp32"], latency["final"]), host=_host()
        )
        if quantized
        else []
    )
    return Validation(not failures, quantized, rows, ranked, metrics, latency, sizes, failures, notes, judged)


def run_checked(sess: Any, feeds: Feeds, label: str, spec: ModelSpec) -> list[Any]:
    """onnxruntime's error on one input set, named with the set and its inputs (never a traceback)."""
    try:
        return run_onnx(sess, feeds)
    except Exception as exc:  # onnxruntime's errors are untyped
        shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in feeds.items())
        raise InputError(
            f"model '{spec.name}': onnxruntime failed on input set '{label}' ({shapes}): "
            f"{tool_reason(str(exc)) or type(exc).__name__}",
            hint="Give samples the model accepts (--samples / samples:), or declare the inputs' dims and "
            "values in a spec (range, values, fill).",
        ) from None


def _is_qdq(path: Path) -> bool:
    import onnx

    return any(
        n.op_type == "DequantizeLinear" for n in onnx.load(str(path), load_external_data=False).graph.node
    )


def _host() -> str:
    import platform

    return platform.machine() or "host"


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
    worst = layers.worst_meaningful(v.layers)
    layer = f" Worst layer: {worst.node} ({worst.op_type}) SQNR {worst.sqnr_db:.1f} dB." if worst else ""
    error = QuantizationGateError if v.quantized else ModelCheckError
    raise error(
        f"model '{spec.name}' ({spec.quantize.mode}) failed validation: "
        + "; ".join(v.failures[:3])
        + "."
        + layer,
        hint="Exclude the worst layers (quantize.exclude_nodes / exclude_op_types), try static QDQ with "
        "per_channel, or keep fp32 (quantize.mode: none).",
    )
