"""``quantize.mode: auto``: try the usual recipes, keep the smallest, fastest model that passes the gate.

Users of onnxruntime's quantization find the working recipe by hand: per-channel
weights, static calibration with real data, some layers kept in float (the
MiniLM embedding model here needed per-channel weights and six FFN MatMuls in
fp32 to hold a 0.99 cosine; four tries). Auto does those tries in order:

1. dynamic int8, 2. dynamic int8 with per-channel weights, 3. static QDQ int8,
   4. static QDQ int8 per-channel and 5. the same with int8 (not uint8) activations,
   calibrated on the samples (synthetic inputs without them);
6. if none passes: from the try with the best output cosine, keep its worst
   meaningful layer (per-layer SQNR) in fp32, one more layer a step, for at
   most ``quantize.auto_steps`` steps, until one passes.

Every try is quantized, counted (a try that quantized nothing fails) and
validated on the same inputs as the validate step. Among the tries that pass,
those not slower than fp32 on this host come first, then the smallest file wins,
then the fastest. Every try is reported.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from edgepack.errors import ModelCheckError, QuantizationGateError
from edgepack.modelpipe import layers, outcome, quantize, validate
from edgepack.modelpipe.inputs import Feeds
from edgepack.modelpipe.spec import ActivationType, ModelSpec, QuantMode


@dataclass(frozen=True)
class Attempt:
    label: str
    mode: QuantMode
    per_channel: bool
    exclude_nodes: tuple[str, ...]
    ok: bool
    activation_type: ActivationType = "uint8"
    bytes: int = 0
    host_ms: float = 0.0
    fp32_ms: float = 0.0
    quantized_nodes: int = 0
    least_cosine: float = 0.0
    why: str = ""  # the first failure
    worst_layer: str = ""


@dataclass(frozen=True)
class Search:
    chosen: Attempt
    attempts: tuple[Attempt, ...]

    def effective(self) -> dict[str, Any]:
        c = self.chosen
        return {"mode": c.mode, "per_channel": c.per_channel, "exclude_nodes": list(c.exclude_nodes),
                "activation_type": c.activation_type}  # fmt: skip


def variant(
    spec: ModelSpec,
    *,
    mode: QuantMode,
    per_channel: bool,
    exclude: Sequence[str] = (),
    activation_type: ActivationType | None = None,
) -> ModelSpec:
    q = spec.quantize
    excluded = tuple(sorted({*q.exclude_nodes, *exclude}))
    act = activation_type or q.activation_type
    changed = replace(q, mode=mode, per_channel=per_channel, exclude_nodes=excluded, activation_type=act)
    return replace(spec, quantize=changed)


def search(
    spec: ModelSpec,
    fp32: Path,
    work: Path,
    *,
    calibration: Sequence[Feeds],
    samples: list[tuple[str, Feeds]],
    cpu: quantize.CpuInfo,
    runtime: str,
    root: Path,
) -> tuple[Search, Path]:
    """Every try in ``work``; returns the search and the chosen model's path."""
    pre = work / "preprocessed.onnx"
    quantize.preprocess(fp32, pre)
    tries: list[tuple[str, QuantMode, bool, ActivationType]] = [
        ("dynamic", "dynamic", False, "uint8"),
        ("dynamic, per-channel", "dynamic", True, "uint8"),
        ("static QDQ", "static", False, "uint8"),
        ("static QDQ, per-channel", "static", True, "uint8"),
        # PP-OCRv4's detector: its ConvTranspose head lost all signal with uint8 activations
        # (cosine 0) and kept IoU 0.96 with int8 ones.
        ("static QDQ, per-channel, int8 activations", "static", True, "int8"),
    ]
    attempts: list[Attempt] = []
    paths: dict[str, Path] = {}

    def attempt(
        label: str, mode: QuantMode, per_channel: bool, act: ActivationType, exclude: Sequence[str] = ()
    ) -> Attempt:
        v = variant(spec, mode=mode, per_channel=per_channel, exclude=exclude, activation_type=act)
        out = work / f"try{len(attempts)}.onnx"
        a = _run(v, label, fp32, out, pre=pre, calibration=calibration, samples=samples, cpu=cpu,
                 runtime=runtime, root=root)  # fmt: skip
        attempts.append(a)
        paths[label] = out
        return a

    for label, mode, per_channel, act in tries:
        attempt(label, mode, per_channel, act)
    if not any(a.ok for a in attempts):
        best = max((a for a in attempts if a.quantized_nodes), key=lambda a: a.least_cosine, default=None)
        exclude: list[str] = list(best.exclude_nodes) if best else []
        recipe = best.label if best else ""
        for _ in range(spec.quantize.auto_steps if best else 0):
            assert best is not None
            node = _next_culprit(spec, fp32, paths[best.label], pre, samples, calibration, exclude)
            if node is None:
                break
            exclude.append(node)
            a = attempt(f"{recipe}, {len(exclude)} layer(s) fp32", best.mode, best.per_channel,
                        best.activation_type, exclude)  # fmt: skip
            if a.ok:
                break
            best = a
    passing = [a for a in attempts if a.ok]
    if not passing:
        lines = "; ".join(f"{a.label}: {a.why[:150]}" for a in attempts)
        error = QuantizationGateError(
            f"model '{spec.name}': quantize.mode auto found no int8 model that passes the gate ({lines}).",
            hint="Keep fp32 (quantize.mode: none), give samples closer to real use, raise "
            "quantize.auto_steps, or relax the evaluate limits. Every try: "
            "build/<target>/model/quantize-attempts.json.",
        )
        error.attempts = tuple(asdict(a) for a in attempts)
        raise error
    chosen = min(passing, key=preference)
    return Search(chosen, tuple(attempts)), paths[chosen.label]


def preference(a: Attempt) -> tuple[bool, int, float]:
    """Not slower than fp32 first (int8 that runs 5x slower on this host is not a gain: onnxruntime
    #20052), then the smallest file, then the fastest."""
    return (a.host_ms > a.fp32_ms * 1.1, a.bytes, a.host_ms)


def _run(
    v: ModelSpec,
    label: str,
    fp32: Path,
    out: Path,
    *,
    pre: Path,
    calibration: Sequence[Feeds],
    samples: list[tuple[str, Feeds]],
    cpu: quantize.CpuInfo,
    runtime: str,
    root: Path,
) -> Attempt:
    q = v.quantize
    base = Attempt(label, q.mode, q.per_channel, q.exclude_nodes, ok=False, activation_type=q.activation_type)
    try:
        quantize.quantize(v, fp32, out, calibration=calibration, cpu=cpu, runtime=runtime, prepared=pre)
    except ModelCheckError as exc:
        return replace(base, why=exc.message)
    counted = outcome.count(out)
    if counted.quantized == 0:
        return replace(base, bytes=out.stat().st_size, why="quantized no node")
    result = validate.validate(v, fp32, out, root=root, samples=samples, rank_layers=False)
    judged = [
        r
        for r in result.outputs
        if result.judged_on == "synthetic" or r["inputs"].startswith(("sample", "audio"))
    ]
    return replace(
        base,
        ok=result.ok,
        bytes=out.stat().st_size,
        host_ms=round(result.latency_ms["final"], 3),
        fp32_ms=round(result.latency_ms["fp32"], 3),
        quantized_nodes=counted.quantized,
        least_cosine=min((r["cosine"] for r in judged), default=0.0),
        why=result.failures[0] if result.failures else "",
    )


def _next_culprit(
    spec: ModelSpec,
    fp32: Path,
    quant: Path,
    pre: Path,
    samples: list[tuple[str, Feeds]],
    calibration: Sequence[Feeds],
    excluded: list[str],
) -> str | None:
    """The quantizable node (in the pre-processed graph) behind the worst meaningful layer, not yet kept."""
    import onnx

    feeds = [f for _, f in samples] or list(calibration)[:4]
    ranked = layers.compare_layers(fp32, quant, feeds, input_names=[t.name for t in spec.inputs],
                                   qdq=validate._is_qdq(quant))  # fmt: skip
    graph = onnx.load(str(pre), load_external_data=False).graph
    producers = {out: n for n in graph.node for out in n.output}
    for row in ranked:
        if row.sqnr_db is None:
            continue
        node = _quantizable_above(row.tensor, producers, set(excluded))
        if node is not None:
            return node
    return None


def _quantizable_above(tensor: str, producers: dict[str, Any], excluded: set[str]) -> str | None:
    """The nearest MatMul/Conv/Gemm... at or above ``tensor``: the error there comes from an int8 kernel."""
    seen: set[str] = set()
    todo = [tensor]
    while todo:
        t = todo.pop(0)
        node = producers.get(t)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in outcome.QUANTIZABLE and node.name and node.name not in excluded:
            return str(node.name)
        todo += list(node.input)
        if len(seen) > 64:
            break
    return None


def as_rows(s: Search) -> list[dict[str, Any]]:
    return [{**asdict(a), "chosen": a is s.chosen} for a in s.attempts]


def keep(src: Path, dest: Path) -> None:
    shutil.copyfile(src, dest)
