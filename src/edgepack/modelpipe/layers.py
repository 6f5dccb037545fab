"""Per-layer comparison of a float model and its quantized version, worst layers first.

Both models are run with every intermediate float tensor added as an output
(onnxruntime.quantization.qdq_loss_debug). For a QDQ model the tensors are
matched by its ``create_activation_matching`` (through the Quantize/Dequantize
pairs); for dynamic and fp16 models, whose quantized nodes keep their output
names, by name. Each matched tensor gets the SQNR of the quantized model's
value against the float model's (dB; higher is better), attributed to the
node that produces it.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepack.modelpipe.inputs import Feeds
from edgepack.modelpipe.quantize import FeedReader, _quiet


@dataclass(frozen=True)
class LayerError:
    tensor: str
    node: str
    op_type: str
    sqnr_db: float | None  # None: the reference is zero or constant (n/a)
    max_abs: float


def _activations(
    model: Path, feeds: Sequence[Feeds], names: Sequence[str], tmp: Path
) -> dict[str, list[np.ndarray]]:
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        modify_model_output_intermediate_tensors,
    )

    # onnxruntime's shape inference writes "<model>-inferred.onnx" beside its input and deletes it:
    # beside the shared export, two targets' validations (run in parallel by --target all) would
    # delete each other's file. A private copy keeps it in this step's own temporary folder.
    tmp.mkdir()
    private = tmp / "model.onnx"  # exports carry no external data: the .onnx is the whole model
    shutil.copyfile(model, private)
    augmented = tmp / "model.augmented.onnx"
    with _quiet():
        modify_model_output_intermediate_tensors(str(private), str(augmented))
        reader = FeedReader(feeds, names)
        activations: dict[str, list[np.ndarray]] = collect_activations(str(augmented), reader)
        return activations


def compare_layers(
    fp32: Path, quant: Path, feeds: Sequence[Feeds], *, input_names: Sequence[str], qdq: bool
) -> list[LayerError]:
    """Matched intermediate tensors, ranked by SQNR (worst first)."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio as sqnr
    from onnxruntime.quantization.qdq_loss_debug import create_activation_matching

    with tempfile.TemporaryDirectory(prefix="edgepack-layers-") as tmp:
        f_acts = _activations(fp32, feeds, input_names, Path(tmp) / "fp32")
        q_acts = _activations(quant, feeds, input_names, Path(tmp) / "quant")
    if qdq:
        matched = create_activation_matching(q_acts, f_acts)
        pairs = {
            k: (v["float"], v["post_qdq"]) for k, v in matched.items() if v.get("float") and "post_qdq" in v
        }
    else:
        pairs = {k: (f_acts[k], q_acts[k]) for k in f_acts if k in q_acts}
    producers = {
        out: n for n in onnx.load(str(fp32), load_external_data=False).graph.node for out in n.output
    }
    rows = []
    for name, (ref, got) in pairs.items():
        node = producers.get(name)
        if node is None or name in input_names:  # graph inputs are not layers
            continue
        if any(a.shape != b.shape for a, b in zip(ref, got, strict=True)):
            continue
        value = float(sqnr(list(ref), list(got)))
        sqnr_value = None if not informative(list(ref)) else value if math.isfinite(value) else 999.0
        diff = max(
            float(np.abs(a.astype(np.float64) - b).max(initial=0.0)) for a, b in zip(ref, got, strict=True)
        )
        rows.append(LayerError(name, node.name, node.op_type, sqnr_value, diff))
    return rank(rows)


def rank(rows: list[LayerError]) -> list[LayerError]:
    """Worst SQNR first; tensors with no signal to compare against (n/a) last."""
    return sorted(rows, key=lambda r: (r.sqnr_db is None, r.sqnr_db if r.sqnr_db is not None else 0.0))


def worst_meaningful(rows: list[LayerError]) -> LayerError | None:
    """The worst layer whose reference carries a signal: the one to blame in a failure message."""
    return next((r for r in rank(rows) if r.sqnr_db is not None), None)


def informative(ref: list[np.ndarray]) -> bool:
    """A reference that is all zero or constant has no signal: its SQNR says nothing (n/a, not 0 dB).

    A mask's Where that outputs zeros everywhere ranked worst at 0.0 dB and was named in every
    failure, while the real culprit (an FFN MatMul at 6.4 dB) came second.
    """
    return any(a.size > 1 and float(np.ptp(a)) > 0.0 for a in ref)
