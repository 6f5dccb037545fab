"""ONNX export with both torch exporters, and the checks that make an export trustworthy.

* The opset is the highest that both the exporter writes and the target's
  locked onnxruntime runs (``resources/onnx_opsets.yaml``).
* The file must pass ``onnx.checker`` and load in onnxruntime; an op the
  runtime lacks is named with the runtime's version.
* Every declared dynamic axis must still be dynamic: it must be symbolic in
  the graph, and the model must match eager torch at every check size,
  including sizes never used at export. torch 2.13's dynamo exporter baked the
  export length of a Conv1d+GRU model into its graph (shared TOOLCHAIN notes);
  a specialized axis fails the stage with the axis, the exporter and the other
  exporter to try.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from edgepack.errors import ConfigError, InputError, ModelCheckError, tool_reason
from edgepack.modelpipe.compare import check_outputs
from edgepack.modelpipe.inputs import InputSet
from edgepack.modelpipe.serial import PROCESS_STATE
from edgepack.modelpipe.spec import ModelSpec

Exporter = Literal["torchscript", "dynamo"]
OTHER = {"torchscript": "dynamo", "dynamo": "torchscript"}


@dataclass(frozen=True)
class SetResult:
    label: str
    ok: bool
    max_abs: float
    detail: str


@dataclass(frozen=True)
class ExportResult:
    exporter: str
    opset: int
    seconds: float
    checked: tuple[SetResult, ...]
    warnings: tuple[str, ...]


def opset_table() -> dict[str, Any]:
    table: dict[str, Any] = yaml.safe_load(
        resources.files("edgepack").joinpath("resources/onnx_opsets.yaml").read_text()
    )
    return table


def runtime_max_opset(version: str) -> int:
    """The highest ai.onnx opset an onnxruntime release implements (its table row, or the last one)."""
    rows = opset_table()["onnxruntime"]
    major_minor = tuple(int(p) for p in version.split(".")[:2])
    fits = [v for k, v in rows.items() if tuple(int(p) for p in k.split(".")) <= major_minor]
    if not fits:
        raise ConfigError(f"onnxruntime {version} is older than any row of resources/onnx_opsets.yaml.")
    return int(max(fits))


def choose_opset(spec: ModelSpec, exporter: Exporter, *, runtime: str) -> int:
    limits = opset_table()["exporters"][exporter]
    ceiling = min(limits["max"], runtime_max_opset(runtime))
    if spec.export.opset == 0:
        return int(ceiling)
    if not limits["min"] <= spec.export.opset <= ceiling:
        raise ConfigError(
            f"model spec '{spec.name}': export.opset {spec.export.opset} is outside what the {exporter} "
            f"exporter writes and onnxruntime {runtime} runs ({limits['min']}..{ceiling}).",
            hint="Leave export.opset at 0 to pick the highest that fits.",
        )
    return spec.export.opset


def debian_onnxruntime(lock: Path) -> str:
    """The upstream onnxruntime version of a Debian lock's python3-onnxruntime (1:1.21.0+dfsg-1 -> 1.21.0)."""
    from edgepack.debian import read_lock

    for package in read_lock(lock).packages:
        if package.name == "python3-onnxruntime":
            m = re.match(r"^(?:\d+:)?(\d+\.\d+(?:\.\d+)?)", package.version)
            if m:
                return m.group(1)
    raise ConfigError(f"{lock}: no python3-onnxruntime package; the target's runtime version is unknown.")


def locked_onnxruntime(lock: Path) -> str:
    """The onnxruntime version pinned in a target's requirements lock."""
    if not lock.is_file():
        raise ConfigError(f"{lock}: no requirements lock, so the target's onnxruntime version is unknown.",
                          hint="Create it: edgepack lock --target NAME")  # fmt: skip
    for line in lock.read_text().splitlines():
        m = re.match(r"^onnxruntime==([\w.]+)", line.strip())
        if m:
            return m.group(1)
    raise ConfigError(f"{lock}: no onnxruntime== pin; the target's runtime version is unknown.")


def pick_exporter(spec: ModelSpec) -> Exporter:
    # auto = torchscript: it kept the axes of RNN models dynamic where dynamo did not (TOOLCHAIN notes),
    # and it keeps a scripted module's control flow.
    return "dynamo" if spec.export.exporter == "dynamo" else "torchscript"


@contextlib.contextmanager
def _quiet(log: list[str]) -> Iterator[None]:
    """torch.onnx prints progress and warns about its own deprecations: keep them for the report.

    Process-wide changes: one thread at a time (serial.PROCESS_STATE).
    """
    out = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    import torch

    with PROCESS_STATE:
        levels = [lg.level for lg in loggers]
        # The TorchScript exporter writes the whole IR graph to fd 1 when it fails (56 KB for Silero's
        # .jit), from C++, past redirect_stdout: its logger is muted for the export.
        onnx_log = torch._C._jit_onnx_log
        torch._C._jit_onnx_log = _drop
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings(record=True) as seen, contextlib.redirect_stdout(out):
                warnings.simplefilter("always")
                yield
            log.extend(sorted({str(w.message).splitlines()[0][:160] for w in seen}))
        finally:
            torch._C._jit_onnx_log = onnx_log
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _drop(*_: object) -> None:
    return None


def export(
    module: Any, eager: Any, spec: ModelSpec, example: InputSet, *, out: Path, exporter: Exporter, opset: int
) -> tuple[float, tuple[str, ...]]:
    """Write ``out``. ``module``: what the TorchScript exporter takes: the nn.Module itself when a
    trace was verified (the exporter traces it the same way, with shape information a saved trace
    lacks), the scripted module when control flow had to be kept. ``eager``: what dynamo takes."""
    import torch

    args = tuple(torch.from_numpy(example.feeds[t.name]) for t in spec.inputs)
    names = [t.name for t in spec.inputs]
    log: list[str] = []
    reset = getattr(eager, "reset_states", None)  # a stateful module: its state at export time is baked in
    if callable(reset):
        reset()
    t0 = time.perf_counter()
    try:
        with _quiet(log):
            if exporter == "torchscript":
                axes = {
                    t.name: {i: a for i, a in enumerate(t.shape) if isinstance(a, str)} for t in spec.inputs
                }
                torch.onnx.export(
                    module,
                    args,
                    str(out),
                    dynamo=False,
                    opset_version=opset,
                    input_names=names,
                    output_names=list(spec.outputs),
                    dynamic_axes={k: v for k, v in axes.items() if v},
                )
            else:
                dims = {d.name: torch.export.Dim(d.name, min=1) for d in spec.dims}
                shapes = tuple(
                    {i: dims[a] for i, a in enumerate(t.shape) if isinstance(a, str)} or None
                    for t in spec.inputs
                )
                program = torch.onnx.export(
                    eager,
                    args,
                    dynamo=True,
                    opset_version=opset,
                    input_names=names,
                    output_names=list(spec.outputs),
                    dynamic_shapes=shapes,
                    external_data=False,
                    optimize=True,
                )
                if program is None:  # torch returns None only when asked not to export
                    raise RuntimeError("the dynamo exporter returned no program")
                program.save(str(out), external_data=False)
    except Exception as exc:  # the exporters raise dozens of error types
        if spec.source.kind == "torchscript":
            raise ModelCheckError(
                f"model '{spec.name}': the TorchScript file cannot be exported to ONNX: {unsupported(exc)}.",
                hint="Load its weights into a torch factory instead (source.kind: torch, factory: "
                "package.module:fn, weights: the .jit file; as models/silero-vad.yaml does).",
            ) from None
        raise ModelCheckError(
            f"model '{spec.name}': the {exporter} exporter failed: {unsupported(exc)}",
            hint=f"Try export.exporter: {OTHER[exporter]}.",
        ) from None
    return time.perf_counter() - t0, tuple(log)


_CONSTRUCT = (
    re.compile(r"(ONNX export does NOT support [^\[\n]{0,160}?)\s*(?:\[|$)", re.M),
    re.compile(r"(Exporting the operator '?[\w:.]+'? to ONNX opset version \d+ is not supported)"),
    re.compile(r"(Unsupported: [^\n]{0,160})"),
    re.compile(r"((?:prim|aten)::\w+[^\n]{0,40} (?:is not|not) (?:supported|implemented)[^\n]{0,60})"),
    re.compile(r"(Expected [^\n]{0,80} but got [^\n]{0,80})"),
)


_SOURCE_LINE = re.compile(r"# (?:[^\s:]*/)?([\w.-]+\.py:\d+)(?::\d+)?")


def unsupported(exc: BaseException) -> str:
    """The construct an exporter refused, in one line: never the IR dump (56 KB for a ScriptModule)."""
    text = str(exc)
    for pattern in _CONSTRUCT:
        m = pattern.search(text)
        if m:
            at = _SOURCE_LINE.search(text[m.end() : m.end() + 1000])  # the line the refused value came from
            return m.group(1).strip() + (f" (at {at.group(1)})" if at else "")
    first = next(
        (ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith((" ", "%", "graph("))), ""
    )
    return (first or type(exc).__name__)[:200]


def check_onnx(path: Path, *, runtime: str, shown_as: str) -> list[str]:
    """onnx.checker, then loadable by onnxruntime ``runtime``; returns notes for the report."""
    import onnx
    import onnxruntime as ort

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.checker.ValidationError) as exc:
        raise InputError(f"{shown_as}: fails onnx.checker: {_first(exc)}") from None
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InputError(f"{shown_as}: not a readable ONNX model ({_first(exc)}).") from None
    try:
        session(path)
    except Exception as exc:  # onnxruntime raises untyped errors
        raise InputError(_runtime_refusal(str(exc), runtime=runtime, shown_as=shown_as)) from None
    if ort.__version__ != runtime:
        return [
            f"op support checked with the host's onnxruntime {ort.__version__}, not the target's {runtime}"
        ]
    return []


def _runtime_refusal(message: str, *, runtime: str, shown_as: str) -> str:
    m = re.search(r"Could not find an implementation for (\w+)\((\d+)\)", message)
    if m:
        return (
            f"{shown_as}: op {m.group(1)} (opset {m.group(2)}) is not implemented by onnxruntime {runtime}."
        )
    m = re.search(r"([\w.]*:?\w+)\((-?\d+)\) is not a registered function/op", message)
    if m:
        return f"{shown_as}: op {m.group(1)} is not an op onnxruntime {runtime} has."
    return f"{shown_as}: onnxruntime {runtime} cannot load it: {_first_text(message)}"


def session(path: Path | bytes, *, threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # failed runs log errors on stderr: the checks report them instead
    model = str(path) if isinstance(path, Path) else path
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def run_onnx(sess: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    wanted = {i.name for i in sess.get_inputs()}
    return list(sess.run(None, {k: v for k, v in feeds.items() if k in wanted}))


def specialized_axes(path: Path, spec: ModelSpec, refs_by_set: Sequence[list[np.ndarray]]) -> list[str]:
    """Declared-dynamic axes the graph fixed: inputs from the spec, outputs where eager sizes vary."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    found = []
    inputs = {i.name: i for i in graph.input}
    for t in spec.inputs:
        declared = inputs.get(t.name)
        if declared is None:
            continue
        dims = declared.type.tensor_type.shape.dim
        for axis, a in enumerate(t.shape):
            if isinstance(a, str) and axis < len(dims) and dims[axis].HasField("dim_value"):
                found.append(f"input {t.name} axis {axis} ('{a}') fixed at {dims[axis].dim_value}")
    for k, out in enumerate(graph.output):
        dims = out.type.tensor_type.shape.dim
        sizes = [r[k].shape for r in refs_by_set if k < len(r)]
        for axis, d in enumerate(dims):
            varies = len({s[axis] for s in sizes if axis < len(s)}) > 1
            if varies and d.HasField("dim_value"):
                found.append(f"output {out.name} axis {axis} fixed at {d.dim_value}")
    return found


def verify(
    path: Path,
    spec: ModelSpec,
    sets: Sequence[InputSet],
    refs: Sequence[list[np.ndarray]] | None,
    *,
    exporter: str,
) -> tuple[SetResult, ...]:
    """Run the ONNX model on every set; against eager outputs when there are some."""
    sess = session(path)
    tol = spec.tolerance
    results = []
    for i, s in enumerate(sets):
        try:
            got = run_onnx(sess, s.feeds)
        except Exception as exc:  # onnxruntime's errors are untyped
            results.append(SetResult(s.label, False, float("inf"), f"onnxruntime failed: {_first(exc)}"))
            continue
        if refs is None:
            results.append(SetResult(s.label, True, 0.0, "runs"))
            continue
        checks = check_outputs(spec.outputs, refs[i], got, rtol=tol.rtol, atol=tol.atol)
        worst = max(checks, key=lambda c: c.max_abs)
        detail = "; ".join(c.line() for c in checks if not c.ok)
        results.append(SetResult(s.label, all(c.ok for c in checks), worst.max_abs, detail))
    fixed = specialized_axes(path, spec, refs) if refs is not None else []
    bad = [r for r in results if not r.ok]
    broken = [r for r in bad if "got [" in r.detail or "onnxruntime failed" in r.detail]
    if fixed or broken:
        exported = {d.name: d.export for d in spec.dims}
        at = next((s for s in sets if broken and s.label == broken[0].label), None)
        axes = sorted({k for k, v in (at.sizes if at else {}).items() if v != exported[k]})
        axes = axes or sorted({a.split("'")[1] for a in fixed if "'" in a})
        parts = [f"'{a}' (exported at {exported.get(a)})" for a in axes]
        what = f"dynamic axis {', '.join(parts)}" if parts else "a dynamic axis"
        facts = [*fixed, *(f"at {r.label}: {r.detail[:200]}" for r in broken[:1])]
        raise ModelCheckError(
            f"model '{spec.name}': the {exporter} exporter specialized {what}: " + "; ".join(facts) + ".",
            hint=f"Try export.exporter: {OTHER.get(exporter, 'torchscript')}"
            " (and check the model does not read sizes with int() or .item()).",
        )
    if bad:
        raise ModelCheckError(
            f"model '{spec.name}': the ONNX export differs from eager torch at '{bad[0].label}': "
            f"{bad[0].detail}.",
            hint="Widen tolerance.rtol/atol in the spec if this error is expected (e.g. fp16).",
        )
    return tuple(results)


def _first(exc: BaseException) -> str:
    return _first_text(str(exc)) or type(exc).__name__


def _first_text(text: str) -> str:
    """The reason a tool gave, whole (errors.tool_reason), never its C++ signature cut at a length."""
    return tool_reason(text) if text.strip() else ""
