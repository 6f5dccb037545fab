"""The model report (export, quantization, validation) as tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def render(doc: dict[str, Any], console: Console, *, layers: int = 8) -> None:
    exp, quant, val = doc["export"], doc["quantize"], doc["validation"]
    console.print(f"[bold]model {doc['model']}[/] ({doc['task']}) from {doc['spec']}")
    if "exporter" in exp:
        console.print(f"  capture  {exp['method']}: {exp['why']}")
        console.print(
            f"  export   {exp['exporter']} exporter, opset {exp['opset']} (onnxruntime {doc['onnxruntime']})"
        )
    checks = exp.get("checks", [])
    worst = max((c["max_abs"] for c in checks), default=0.0)
    console.print(
        f"  verified at {len(checks)} input sets ({', '.join(c['label'] for c in checks)}): "
        f"max abs {worst:.2e}"
    )
    size, lat = val["size_bytes"], val["latency_ms"]
    console.print(
        f"  quantize {quant['mode']}: {size['fp32'] / 1e6:.2f} MB -> {size['final'] / 1e6:.2f} MB; "
        "host latency "
        f"(1 thread, median) {lat['fp32']:.3f} -> {lat['final']:.3f} ms"
    )
    for note in quant.get("notes", []):
        console.print(f"  [dim]{note}[/]")
    console.print(outputs_table(val["outputs"]))
    if val["metrics"]:
        table = Table(title="task metric", title_justify="left")
        for col in ("metric", "value", "limit", "pass", "detail"):
            table.add_column(col)
        for m in val["metrics"]:
            table.add_row(m["name"], f"{m['value']:.4f}", f"{m['limit']:g}", _mark(m["ok"]), m["detail"])
        console.print(table)
    if val["layers"]:
        table = Table(title=f"worst layers by SQNR (of {len(val['layers'])} kept)", title_justify="left")
        for col in ("node", "op", "SQNR dB", "max abs"):
            table.add_column(col)
        for r in val["layers"][:layers]:
            table.add_row(r["node"], r["op_type"], f"{r['sqnr_db']:.1f}", f"{r['max_abs']:.3g}")
        console.print(table)
    console.print(f"  validation {_mark(val['ok'])}")


def outputs_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="outputs vs fp32 export", title_justify="left")
    for col in ("inputs", "output", "shape", "dtype", "max abs", "max rel", "cosine", "pass"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["inputs"],
            r["name"],
            str(r["shape"]),
            r["dtype"],
            f"{r['max_abs']:.3g}",
            f"{r['max_rel']:.3g}",
            f"{r['cosine']:.6f}",
            _mark(r["ok"]),
        )
    return table


def _mark(ok: bool) -> str:
    return "[green]pass[/]" if ok else "[red]FAIL[/]"
