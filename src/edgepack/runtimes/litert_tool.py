"""Runs inside the LiteRT converter venv (``runtimes.toolchain``): stdlib, numpy, torch, litert-torch.

It imports nothing of edgepack, so the venv needs no edgepack: the model comes
as a ``torch.export`` program (saved by the main venv, same torch), the inputs
as an ``.npz``. Two commands, each writing one JSON object to stdout:

``convert PROGRAM INPUTS OUT_DIR``: ``model.tflite`` (fp32) and
``model.int8.tflite`` (dynamic-range int8 weights, LiteRT's own quantizer),
or ``{"ok": false, "unsupported": [op, ...], "reason": ...}``.

``run MODEL INPUTS OUTPUTS RUNS``: the model on the inputs (outputs to an
``.npz``, in the program's order) and its median latency over RUNS, one thread.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_OP = re.compile(r"(?:aten|prims|torch\.ops\.\w+)\.\w+(?:\.\w+)?")


def _inputs(path: str) -> tuple[list[str], list[Any]]:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        names = list(data.files)
        return names, [data[k] for k in names]


def convert(program: str, inputs: str, out_dir: str) -> dict[str, Any]:
    import torch

    names, arrays = _inputs(inputs)
    args = tuple(torch.from_numpy(a) for a in arrays)
    out = Path(out_dir)
    log = io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            import litert_torch

            module = torch.export.load(program).module()
            edge = litert_torch.convert(module, args)
            edge.export(str(out / "model.tflite"))
    except Exception as exc:  # the converter raises many types; its reason is the result
        text = f"{type(exc).__name__}: {exc}"
        ops = sorted(set(_OP.findall(text)))
        return {"ok": False, "unsupported": ops, "reason": text.strip().splitlines()[0][:300]}
    seconds = time.perf_counter() - t0
    quantized = _quantize(out / "model.tflite", out / "model.int8.tflite", log)
    return {
        "ok": True,
        "inputs": names,
        "seconds": round(seconds, 3),
        "fp32_bytes": (out / "model.tflite").stat().st_size,
        **quantized,
    }


def _quantize(fp32: Path, int8: Path, log: io.StringIO) -> dict[str, Any]:
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            from ai_edge_quantizer import quantizer, recipe

            q = quantizer.Quantizer(str(fp32))
            q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
            q.quantize().export_model(str(int8), overwrite=True)
    except Exception as exc:  # the quantizer's errors are untyped too
        return {"int8_error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    return {"int8_bytes": int8.stat().st_size, "int8_recipe": "dynamic_wi8_afp32"}


def run(model: str, inputs: str, outputs: str, runs: int) -> dict[str, Any]:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    _, arrays = _inputs(inputs)
    interpreter = Interpreter(model_path=model, num_threads=1)
    runner = interpreter.get_signature_runner()
    details = runner.get_input_details()
    feeds = {
        k: a.astype(details[k]["dtype"]) if a.dtype.kind == np.dtype(details[k]["dtype"]).kind else a
        for k, a in zip(details, arrays, strict=True)
    }  # TFLite has no int64 ids: litert-torch makes them int32
    got = runner(**feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner(**feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    ordered = [got[k] for k in sorted(got, key=_index)]
    np.savez(outputs, *ordered)
    return {"median_ms": statistics.median(times) if times else 0.0, "outputs": len(ordered)}


def _index(name: str) -> int:
    """litert-torch names outputs output_0, output_1, ...: their order in the program."""
    digits = re.findall(r"\d+", name)
    return int(digits[-1]) if digits else 0


def main(argv: list[str]) -> int:
    command, *rest = argv
    if command == "convert":
        result = convert(*rest)
    elif command == "run":
        result = run(rest[0], rest[1], rest[2], int(rest[3]))
    else:
        print(f"litert_tool: unknown command {command!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
