"""``edgepack init``: a new project's files, as data (``plan_project``), then written (``write_project``).

A project is an ``edgepack.toml``, one target that ``extends:`` a built-in board, a model spec for
the user's ONNX file or torch factory, a ``samples/`` folder for recorded inputs, a ``tasks.py``
reusing edgepack's collection (``invoke build ...`` works too), and the generated CI workflow
(``edgepack ci.workflow``). Nothing is overwritten: an existing file stops init, naming it.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgepack.config import builtin_boards
from edgepack.errors import ConfigError, InputError
from edgepack.fsutil import write_text

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class ModelInput:
    name: str
    dtype: str
    shape: tuple[str | int, ...]


@dataclass(frozen=True)
class NewProject:
    root: Path
    name: str
    board: str
    files: dict[str, str]  # relative path -> text
    copy: dict[str, Path]  # relative path -> file to copy in (the user's model)


def onnx_inputs(path: Path) -> list[ModelInput]:
    """The graph's real inputs (initializers excluded), with dtypes and dims, read with onnx."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError...
        raise InputError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc}).") from None
    initializers = {i.name for i in model.graph.initializer}
    found = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "float32"
        dims = tuple(d.dim_param or (d.dim_value if d.dim_value else "n") for d in tensor.shape.dim)
        found.append(ModelInput(value.name, dtype, dims))
    return found


def plan_project(root: Path, *, name: str, board: str, model: Path | None, factory: str | None) -> NewProject:
    """The files of a new project in ``root``; ConfigError for a bad name, board or model argument."""
    if not _NAME.match(name):
        raise ConfigError(f"--name {name!r}: lowercase letters, digits and '-', starting with a letter.")
    boards = builtin_boards()
    if board not in boards:
        raise ConfigError(
            f"--board {board}: not a built-in board.", hint=f"Choose from: {', '.join(boards)}."
        )
    if (model is None) == (factory is None):
        raise ConfigError("init needs one model: --model PATH.onnx, or --factory package.module:callable.")
    copy: dict[str, Path] = {}
    if model is not None:
        if not model.is_file():
            raise InputError(f"--model {model}: no such file.")
        if model.suffix != ".onnx":
            raise InputError(f"--model {model}: expected an .onnx file (a torch model: --factory instead).")
        spec = _onnx_spec(name, f"models/{model.name}", onnx_inputs(model))
        copy[f"models/{model.name}"] = model
    else:
        assert factory is not None
        if not _FACTORY.match(factory):
            raise ConfigError(f"--factory {factory}: expected package.module:callable.")
        spec = _factory_spec(name, factory)
    files = {
        "edgepack.toml": TOML,
        f"targets/{name}.yaml": TARGET.format(name=name, board=board),
        f"models/{name}.yaml": spec,
        "samples/README.md": SAMPLES,
        "tasks.py": TASKS,
        ".gitignore": "build/\n__pycache__/\n",
        ".github/matrix.yaml": MATRIX,
    }
    return NewProject(root, name, board, files, copy)


def write_project(project: NewProject) -> list[Path]:
    """Write every file, refusing to overwrite one: an init is for a new project."""
    existing = [p for p in [*project.files, *project.copy] if (project.root / p).exists()]
    if existing:
        raise ConfigError(
            f"{project.root / existing[0]} exists: edgepack init does not overwrite files.",
            hint="Run it in an empty folder (edgepack init DIR).",
        )
    written = []
    for relative, text in project.files.items():
        write_text(project.root / relative, text)
        written.append(project.root / relative)
    for relative, source in project.copy.items():
        (project.root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, project.root / relative)
        written.append(project.root / relative)
    return written


def _dims(inputs: list[ModelInput]) -> list[str]:
    return sorted({d for i in inputs for d in i.shape if isinstance(d, str)})


def _onnx_spec(name: str, file: str, inputs: list[ModelInput]) -> str:
    lines = []
    for i in inputs:
        shape = ", ".join(str(d) for d in i.shape)
        values = "" if i.dtype.startswith("float") else ", values: integers, low: 0, high: 2"
        lines.append(f"  - {{name: {i.name}, shape: [{shape}], dtype: {i.dtype}{values}}}")
    dims = [f"  - {{name: {d}, export: 2, check: [1, 3]}}" for d in _dims(inputs)]
    return ONNX_SPEC.format(
        name=name, file=file, inputs="\n".join(lines) or "  []", dims="\n".join(dims) or "  []"
    )


def _factory_spec(name: str, factory: str) -> str:
    return FACTORY_SPEC.format(name=name, factory=factory)


TOML = """# An edgepack project (edgepack init). edgepack finds it from any folder below this one.
# targets: folder of your target files (each may `extends:` a built-in board: edgepack targets)
# build: where edgepack writes (build/<target>/: image.tar, model/, smoke/, run.sh, report.json)
# python_path: folders put on sys.path for your torch factories and sample callables
targets = "targets"
build = "build"
python_path = ["."]
"""

TARGET = """# A target: the built-in {board} board, with your model. Any key of the board can be overridden
# here (edgepack targets --schema writes the schema: targets/target.schema.json).
extends: {board}
description: {name} on the {board} board
image: {name}/{board}
model: models/{name}.yaml
"""

ONNX_SPEC = """# Your model (edgepack init): the ONNX file, its inputs and how it is checked.
# Give recorded inputs (samples/*.npz: one named array per input) so that the smoke test and
# the quantization are judged on real data; synthetic inputs follow the shapes and values below.
task: generic
source:
  kind: onnx
  file: {file}
inputs:
{inputs}
dims:
{dims}
quantize:
  mode: none
"""

FACTORY_SPEC = """# Your model (edgepack init): a torch factory returning an nn.Module; edgepack exports it.
# Declare its inputs (name, shape with named dims, dtype) and the dims to check at unseen sizes.
task: generic
source:
  kind: torch
  factory: {factory}
inputs:
  - {{name: x, shape: [batch, 16], dtype: float32}}
dims:
  - {{name: batch, export: 2, check: [1, 3]}}
quantize:
  mode: none
"""

SAMPLES = """# samples/

Recorded inputs of your model: `.npz` files, one named array per model input
(`numpy.savez("samples/one.npz", input_ids=..., attention_mask=...)`). edgepack feeds them to the
export checks, the calibration, the validation and the smoke test on the board.
"""

TASKS = '''"""This project's tasks: edgepack's collection (`invoke build --target T`, as `edgepack build`)."""

from edgepack.tasks import ns

__all__ = ["ns"]
'''

MATRIX = """# The CI matrix's runners and per-target overrides (edgepack ci.workflow writes the workflow from
# targets/ and this file). Every board builds on GitHub's x86-64 runner, its smoke test under QEMU
# with the board's own CPU model.
timeout_minutes: 60
runners:
  - label: ubuntu-24.04
    platform: linux/amd64
    default_for: [linux/amd64, linux/arm64, linux/arm/v7]
targets: []
"""
