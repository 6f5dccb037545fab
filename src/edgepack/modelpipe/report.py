"""The model report: JSON (build/<target>/model/report.json), a rich table, a PNG of per-layer error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepack.modelpipe.layers import LayerError
from edgepack.modelpipe.spec import ModelSpec

if TYPE_CHECKING:
    from edgepack.modelpipe.pipeline import Context
    from edgepack.modelpipe.validate import Validation


def document(
    spec: ModelSpec, ctx: Context, *, export_dir: Path, quant_dir: Path, validation: Validation
) -> dict[str, Any]:
    return {
        "model": spec.name,
        "spec": ctx.spec_file,
        "task": spec.task,
        "target_cpu": ctx.cpu.name,
        "onnxruntime": ctx.runtime,
        "export": json.loads((export_dir / "export.json").read_text()),
        "quantize": json.loads((quant_dir / "quantize.json").read_text()),
        "validation": validation.as_dict(),
    }


def plot_layers(rows: list[LayerError], out: Path, *, title: str, top: int = 30) -> None:
    """Horizontal bars of SQNR per layer, worst at the top (matplotlib's Agg backend: no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.sqnr_db is not None][:top]  # n/a rows have no SQNR to draw
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(shown) + 1.5))
    labels = [f"{r.node or r.tensor} ({r.op_type})"[-60:] for r in shown]
    values = [min(r.sqnr_db or 0.0, 120.0) for r in shown]
    colors = ["#c0392b" if v < 20 else "#e67e22" if v < 30 else "#27ae60" for v in values]
    ax.barh(range(len(shown)), values, color=colors)
    ax.set_yticks(range(len(shown)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("SQNR (dB), quantized vs float; higher is better")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100, metadata={"Software": None})  # no version stamp: same input, same bytes
    plt.close(fig)
