"""Toy model specs shared by the model-stage unit tests."""

from __future__ import annotations

from pathlib import Path

from edgepack.modelpipe.spec import ModelSpec, load_spec


def spec_from(tmp: Path, text: str, name: str = "toy") -> ModelSpec:
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return load_spec(path)


def toy(factory: str, *, shape: str, dims: str, extra: str = "") -> str:
    return f"""source: {{kind: torch, factory: "edgepack.modelpipe.zoo.toys:{factory}"}}
inputs:
  - {{name: x, shape: {shape}}}
outputs: [y]
dims:
{dims}
{extra}"""


# A generic torch model (Conv1d + GRU) with two dynamic axes: what runtime: litert converts.
CONV_GRU = """task: generic
source: {kind: torch, factory: "edgepack.modelpipe.zoo.toys:conv_gru"}
inputs:
  - {name: x, shape: [batch, frames, 8]}
outputs: [y]
dims:
  - {name: batch, export: 2, check: [1, 3]}
  - {name: frames, export: 12, check: [5, 20]}
"""
