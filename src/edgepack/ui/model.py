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
        f"  verified at {len(checks)} input sets ({_few([c['label'] for c in checks])}): max abs {worst:.2e}"
    )
    size, lat = val["size_bytes"], val["latency_ms"]
    console.print(
        f"  quantize {quant['mode']}: {size['fp32'] / 1e6:.2f} MB -> {size['final'] / 1e6:.2f} MB; "
        "host latency "
        f"(1 thread, median) {lat['fp32']:.3f} -> {lat['final']:.3f} ms"
    )
    for note in quant.get("notes", []):
        console.print(f"  [dim]{note}[/]")
    counted = quant.get("outcome") or {}
    if counted:
        console.print(
            f"  quantized nodes {counted['quantized']} ({counted['in_subgraphs']} in subgraphs), "
            f"{counted['float_candidates']} MatMul/Conv/Gemm/RNN left float"
        )
        if counted.get("note"):
            console.print(f"  [yellow]{counted['note']}[/]")
    for warning in val.get("warnings", []):
        console.print(f"  [yellow]warning:[/] {warning}")
    if quant.get("attempts"):
        console.print(attempts_table(quant["attempts"]))
    if val.get("judged_on"):
        console.print(f"  judged on {val['judged_on']} inputs")
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
            sqnr = "n/a" if r["sqnr_db"] is None else f"{r['sqnr_db']:.1f}"
            table.add_row(r["node"], r["op_type"], sqnr, f"{r['max_abs']:.3g}")
        console.print(table)
    console.print(f"  validation {_mark(val['ok'])}")


def fed_lines(fed: dict[str, Any]) -> list[str]:
    """What the smoke test feeds (or fed): its source, then each input's shape, dtype and range."""
    lines = [f"smoke   input: {fed.get('source', 'unknown')}"]
    for name, d in (fed.get("inputs") or {}).items():
        lines.append(f"          {name} {d['shape']} {d['dtype']}, values {d['min']} .. {d['max']}")
    return lines


def attempts_table(rows: list[dict[str, Any]]) -> Table:
    """quantize.mode auto: every try, the kept one marked."""
    table = Table(title="quantize auto: tries", title_justify="left")
    for col in ("try", "quantized nodes", "MB", "host ms", "least cosine", "pass", "why"):
        table.add_column(col, overflow="fold")
    for r in rows:
        label = f"[bold]{r['label']}[/] (kept)" if r.get("chosen") else r["label"]
        table.add_row(label, str(r["quantized_nodes"]), f"{r['bytes'] / 1e6:.2f}", f"{r['host_ms']:.3f}",
                      f"{r['least_cosine']:.4f}", _mark(r["ok"]), r["why"][:120])  # fmt: skip
    return table


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
            _mark(r["ok"]) if r.get("judged", True) else "[dim]not judged[/]",
        )
    return table


def _few(labels: list[str], n: int = 6) -> str:
    return ", ".join(labels[:n]) + (f", ... (+{len(labels) - n})" if len(labels) > n else "")


def _mark(ok: bool) -> str:
    return "[green]pass[/]" if ok else "[red]FAIL[/]"
