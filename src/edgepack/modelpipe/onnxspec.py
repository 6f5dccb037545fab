"""A model spec for a bare ``.onnx`` file (``edgepack build --model X.onnx``), read from the graph.

A user's ONNX file goes through the same stages as a spec (export checks,
quantize, validate): this writes the spec they would have written. Each
symbolic axis becomes a dim (a leading one checked at 1 and 3, the others at
32 and 64, the sizes a plain CNN or transformer takes); an integer input that
indexes a table (a Gather on an initializer: token ids) is drawn within the
table's rows, one named like a mask is all ones, others 0..1. Samples
(``--samples``) replace all of that with real inputs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgepack.errors import InputError
from edgepack.modelpipe.spec import ModelSpec, spec_from_document
from edgepack.yamlconf import Located

_DTYPES = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 9: "bool"}  # onnx.TensorProto
_LEADING = {"export": 2, "check": [1, 3]}
_OTHER = {"export": 32, "check": [64]}


def spec_for_onnx(path: Path, *, shown_as: str, quantize: str, samples: tuple[str, ...]) -> ModelSpec:
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InputError(f"{shown_as}: not a readable ONNX model ({str(exc)[:160]}).") from None
    tables = _gather_tables(graph)
    initializers = {i.name for i in graph.initializer}
    dims: dict[str, dict[str, Any]] = {}
    inputs = []
    for tensor in graph.input:
        if tensor.name in initializers:
            continue
        tt = tensor.type.tensor_type
        dtype = _DTYPES.get(tt.elem_type)
        if dtype is None:
            raise InputError(
                f"{shown_as}: input '{tensor.name}' has ONNX element type {tt.elem_type}, which edgepack "
                "cannot feed.",
                hint="Wrap the model so its inputs are float32, float16, int64, int32 or bool.",
            )
        shape: list[int | str] = []
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(int(d.dim_value))
                continue
            name = _dim_name(d.dim_param, tensor.name, axis)
            dims.setdefault(name, {"name": name, **(_LEADING if axis == 0 else _OTHER)})
            shape.append(name)
        inputs.append(
            {"name": tensor.name, "shape": shape, "dtype": dtype, **_values(tensor.name, dtype, tables)}
        )
    data = {
        "task": "generic",
        "source": {"kind": "onnx", "file": str(path)},
        "inputs": inputs,
        "outputs": [o.name for o in graph.output],
        "dims": list(dims.values()),
        "samples": list(samples),
        "quantize": {"mode": quantize},
    }
    return spec_from_document(Located(data, {}, Path(shown_as)))


def _dim_name(param: str, tensor: str, axis: int) -> str:
    base = re.sub(r"\W+", "_", param).strip("_") if param else f"{tensor}_{axis}"
    return base if re.match(r"^[A-Za-z_]", base) else f"d_{base}"


def _gather_tables(graph: Any) -> dict[str, int]:
    """Graph inputs used as Gather indices into an initializer: the table's row count (a vocabulary)."""
    from onnx import numpy_helper

    rows = {i.name: int(numpy_helper.to_array(i).shape[0]) for i in graph.initializer if len(i.dims) >= 1}
    found: dict[str, int] = {}
    for node in graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[0] in rows:
            found[node.input[1]] = min(found.get(node.input[1], rows[node.input[0]]), rows[node.input[0]])
    return found


def _values(name: str, dtype: str, tables: dict[str, int]) -> dict[str, Any]:
    if dtype.startswith("float"):
        return {}
    if name in tables:
        return {"range": [0, tables[name] - 1]}
    if "mask" in name.lower():
        return {"fill": "ones"}
    return {"range": [0, 1]}
