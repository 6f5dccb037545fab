"""Did quantization do anything? Quantized nodes counted, in the main graph and inside If/Loop/Scan bodies.

onnxruntime's quantizer works on the main graph: a model whose LSTMs sit in
``If`` branches (Silero VAD's ONNX file) came out of dynamic int8 with no node
quantized and 43% bigger (the quantizer's added Cast/scale nodes). So the
outcome is counted, not assumed: integer kernels (MatMulInteger, ConvInteger,
QLinear*, DynamicQuantize*, QAttention...) and, for QDQ models, compute nodes
fed by a DequantizeLinear of a weight. Quantizable nodes left in float inside
subgraphs are named, so the report can say they were skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUANTIZABLE = {"MatMul", "Conv", "Gemm", "LSTM", "GRU", "Attention", "ConvTranspose"}
_HELPERS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


@dataclass(frozen=True)
class Outcome:
    quantized: int  # nodes that compute in int8 (or are fed int8 weights through QDQ)
    in_subgraphs: int  # of which inside If/Loop/Scan bodies
    float_candidates: int  # MatMul/Conv/Gemm/LSTM/GRU still float, anywhere
    skipped_in_subgraphs: tuple[str, ...]  # those inside subgraphs, "If node/branch: LSTM name"
    by_op: dict[str, int]


def _walk(graph: Any, where: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(location, node, graph) of every node, descending into graph attributes (If, Loop, Scan)."""
    for node in graph.node:
        yield where, node, graph
        for attr in node.attribute:
            subs = [attr.g] if attr.type == 5 else list(attr.graphs) if attr.type == 10 else []  # GRAPH(S)
            for sub in subs:
                yield from _walk(sub, f"{where}{node.op_type} {node.name or '?'}/{attr.name}: ")


def _is_int8_kernel(op: str) -> bool:
    if op in _HELPERS:
        return False
    return (
        "Integer" in op
        or op.startswith(("QLinear", "DynamicQuantize", "QAttention", "QGemm"))
        or op
        in {
            "MatMulIntegerToFloat",
            "QOrderedMatMul",
        }
    )


def count(model_path: Path) -> Outcome:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    initializers: set[str] = set()
    dq_of_weight: set[str] = set()
    for _, _node, graph in _walk(model.graph):
        initializers.update(i.name for i in graph.initializer)
    for _, node, _ in _walk(model.graph):
        if node.op_type == "DequantizeLinear" and node.input and node.input[0] in initializers:
            dq_of_weight.update(node.output)
    quantized = in_sub = 0
    by_op: dict[str, int] = {}
    candidates = 0
    skipped: list[str] = []
    for where, node, _ in _walk(model.graph):
        op = node.op_type
        is_q = _is_int8_kernel(op) or (op not in _HELPERS and any(i in dq_of_weight for i in node.input))
        if is_q:
            quantized += 1
            in_sub += bool(where)
            by_op[op] = by_op.get(op, 0) + 1
        elif op in QUANTIZABLE:
            candidates += 1
            if where:
                skipped.append(f"{where}{op} {node.name or '?'}")
    return Outcome(quantized, in_sub, candidates, tuple(skipped), dict(sorted(by_op.items())))


def ratio_notes(*, size: tuple[int, int], latency_ms: tuple[float, float] | None, host: str) -> list[str]:
    """Warnings for a quantized model that is bigger or slower than fp32 (onnxruntime#20052, #16009)."""
    notes = []
    if size[1] > size[0]:
        notes.append(f"the quantized model is {size[1] / size[0] - 1:.0%} bigger than fp32")
    if latency_ms and latency_ms[1] > latency_ms[0] * 1.1:
        notes.append(
            f"the quantized model runs {latency_ms[1] / latency_ms[0]:.2f}x slower than fp32 on this host "
            f"({host}); the board's figure is measured under QEMU by bench/models.py"
        )
    return notes
