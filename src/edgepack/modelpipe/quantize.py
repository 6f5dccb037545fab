"""Quantization for ARM CPUs with onnxruntime: dynamic int8, static int8 (QDQ), fp16.

Pre-processing first (``quant_pre_process``: symbolic shape inference and
graph optimization), as onnxruntime's quantization guide asks. Then:

* dynamic: int8 weights, activations quantized at run time (uint8): the usual
  choice for RNNs and transformers, no calibration set.
* static: QDQ format (QuantizeLinear/DequantizeLinear pairs that onnxruntime's
  ARM kernels fuse into QLinearConv/QLinearMatMul), ranges from a calibration
  set by MinMax, Entropy or Percentile.
* fp16: weights and arithmetic in half precision; only on CPUs with fp16
  arithmetic (ARMv8.2-A and later: a Pi 5's Cortex-A76, not a Pi 4's A72).

On an ARMv8.0 core (Cortex-A72) onnxruntime's int8 GEMMs use widening NEON
multiplies (no SDOT/UDOT): int8 still quarters the weights and saves memory
bandwidth, but the arithmetic speed-up over fp32 is small; it is measured, not
assumed (bench/models.py).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from edgepack.errors import ConfigError, InputError, QuantizationGateError, tool_reason
from edgepack.modelpipe.inputs import Feeds
from edgepack.modelpipe.serial import PROCESS_STATE
from edgepack.modelpipe.spec import ModelSpec


@dataclass(frozen=True)
class CpuInfo:
    name: str
    arch: str
    dotprod: bool
    fp16: bool
    note: str


def cpu_info(cpu: str) -> CpuInfo:
    """What the board's core (a target's cpu, else its qemu_cpu) offers the model stage."""
    table = yaml.safe_load(resources.files("edgepack").joinpath("resources/cpus.yaml").read_text())
    row = table.get(cpu)
    if row is None:
        raise ConfigError(
            f"CPU '{cpu}' is not in resources/cpus.yaml: its features are unknown.",
            hint=f"Known CPUs: {', '.join(sorted(table))}.",
        )
    return CpuInfo(name=cpu, **row)


@dataclass(frozen=True)
class QuantResult:
    mode: str
    seconds: float
    excluded: tuple[str, ...]
    notes: tuple[str, ...]


class FeedReader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: Sequence[Feeds], input_names: Sequence[str]) -> None:
        self._feeds = [{k: v for k, v in f.items() if k in input_names} for f in feeds]
        self._i = 0

    def get_next(self) -> Feeds | None:
        if self._i >= len(self._feeds):
            return None
        self._i += 1
        return self._feeds[self._i - 1]

    def rewind(self) -> None:
        self._i = 0

    def __iter__(self) -> FeedReader:  # qdq_loss_debug iterates where quantize_static calls get_next
        return self

    def __next__(self) -> Feeds:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization logs progress with print() and logging: keep the terminal clean.

    Process-wide changes: one thread at a time (serial.PROCESS_STATE).
    """
    with PROCESS_STATE:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            root.setLevel(level)


def preprocess(src: Path, dst: Path) -> str:
    """Shape inference + optimization; falls back to ONNX shape inference when symbolic inference fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # When symbolic inference gives up, onnxruntime saves sym_shape_infer_temp.onnx
    # and a multi-MB external-data file into the current directory: run it in a
    # scratch one, so nothing lands in the user's project. chdir is process-wide:
    # _quiet() comes first, so its lock is held until the old cwd is back.
    with (
        _quiet(),
        tempfile.TemporaryDirectory(prefix="edgepack-preprocess-") as scratch,
        contextlib.chdir(scratch),
    ):
        try:
            quant_pre_process(str(src.resolve()), str(dst.resolve()))
            done = "symbolic shape inference + optimization"
        except Exception:  # symbolic shape inference gives up on some graphs (If, Loop)
            quant_pre_process(str(src.resolve()), str(dst.resolve()), skip_symbolic_shape=True)
            done = "ONNX shape inference + optimization (symbolic inference failed)"
    return done + _at_least_opset_13(dst)


def _at_least_opset_13(path: Path) -> str:
    """Per-channel QDQ needs DequantizeLinear's axis (opset 13): PP-OCR's opset-11 detector came out
    of quantize_static unloadable ("Unrecognized attribute: axis for operator DequantizeLinear")."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    if opset >= 13:
        return ""
    try:
        onnx.save(version_converter.convert_version(model, 13), str(path))
    except Exception:  # the converter lacks adapters for some ops: quantize the model as it is
        return f"; opset {opset} kept (the converter could not lift it to 13)"
    return f"; opset {opset} -> 13 (per-channel QDQ needs it)"


def excluded_nodes(model_path: Path, spec: ModelSpec) -> list[str]:
    import onnx

    q = spec.quantize
    graph = onnx.load(str(model_path), load_external_data=False).graph
    names = {n.name for n in graph.node}
    unknown = [n for n in q.exclude_nodes if n not in names]
    if unknown:
        raise ConfigError(
            f"model spec '{spec.name}': quantize.exclude_nodes names no node: {', '.join(unknown)}.",
            hint="Node names are in build/<target>/model/report.json (layers).",
        )
    by_type = [n.name for n in graph.node if n.op_type in q.exclude_op_types]
    return sorted({*q.exclude_nodes, *by_type})


def missing_int8_kernels(model_path: Path, spec: ModelSpec, *, runtime: str) -> tuple[list[str], list[str]]:
    """Nodes dynamic int8 would turn into a kernel the target's onnxruntime lacks; and a note why.

    resources/onnx_opsets.yaml (int8_weight_kernels) says from which release an
    integer kernel takes int8 weights: ConvInteger only since 1.24, so Debian
    trixie's onnxruntime 1.21 refuses the model at load ("Could not find an
    implementation for ConvInteger(10)"). Those nodes stay fp32.
    """
    import onnx

    q = spec.quantize
    if q.mode != "dynamic" or q.weight_type != "int8":
        return [], []
    from edgepack.modelpipe.export import opset_table

    version = tuple(int(p) for p in runtime.split(".")[:2])
    late = {op: row for op, row in opset_table()["int8_weight_kernels"].items()
            if version < tuple(int(p) for p in row["since"].split("."))}  # fmt: skip
    graph = onnx.load(str(model_path), load_external_data=False).graph
    nodes = [n.name for n in graph.node if n.op_type in late and (not q.op_types or n.op_type in q.op_types)]
    notes = [f"{op} kept fp32: onnxruntime {runtime} has {row['kernel']} for uint8 weights only "
             f"(int8 since {row['since']}, {row['ref']})" for op, row in sorted(late.items())
             if any(n.op_type == op for n in graph.node)]  # fmt: skip
    return nodes, notes


def default_mode(cpu: CpuInfo) -> str:
    """What a bare .onnx gets without --quantize: dynamic int8 on every CPU edgepack targets.

    Every listed core has int8 GEMMs in onnxruntime (SDOT/UDOT on ARMv8.2, widening NEON on
    ARMv8.0, AVX2 on x86): int8 weights quarter the model and its memory traffic; none but
    ARMv8.2 has fp16 arithmetic, and fp16 only halves. The outcome is checked, not assumed:
    a model it leaves unquantized, bigger or slower is reported (outcome.py).
    """
    return "dynamic"


def quantize(
    spec: ModelSpec,
    fp32: Path,
    out: Path,
    *,
    calibration: Sequence[Feeds],
    cpu: CpuInfo,
    runtime: str,
    prepared: Path | None = None,
) -> QuantResult:
    """``prepared``: a pre-processed copy of ``fp32`` (auto mode pre-processes once for its tries)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    q = spec.quantize
    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    t0 = time.perf_counter()
    if q.mode == "none":
        shutil.copyfile(fp32, out)
        return QuantResult("none", 0.0, (), ("fp32 kept: quantize.mode is none",))
    if q.mode == "fp16":
        return _fp16(spec, fp32, out, cpu=cpu)
    pre = out.with_name(out.stem + ".preprocessed.onnx")
    if prepared is not None:
        shutil.copyfile(prepared, pre)
        notes = ["pre-processing: done once for every try"]
    else:
        notes = [f"pre-processing: {preprocess(fp32, pre)}"]
    gaps, why = missing_int8_kernels(pre, spec, runtime=runtime)
    excluded = sorted({*excluded_nodes(pre, spec), *gaps})
    notes += why
    common: dict[str, Any] = {
        "per_channel": q.per_channel,
        "reduce_range": q.reduce_range,
        "weight_type": types[q.weight_type],
        "nodes_to_exclude": excluded,
        "op_types_to_quantize": list(q.op_types) or None,
    }
    try:
        with _quiet():
            if q.mode == "dynamic":
                quantize_dynamic(str(pre), str(out), **common)
            else:
                if not calibration:
                    raise InputError(
                        f"model spec '{spec.name}': the calibration set is empty.",
                        hint="Set quantize.calibration (audio files, or samples for synthetic).",
                    )
                names = [t.name for t in spec.inputs]
                method = getattr(CalibrationMethod, q.calibration.method)
                quantize_static(
                    str(pre),
                    str(out),
                    FeedReader(calibration, names),
                    quant_format=QuantFormat.QDQ,
                    activation_type=types[q.activation_type],
                    calibrate_method=method,
                    **common,
                )
    except (InputError, ConfigError):
        raise
    except Exception as exc:  # onnxruntime.quantization raises assorted errors
        raise QuantizationGateError(
            f"model '{spec.name}': {q.mode} quantization failed: {tool_reason(str(exc))}",
            hint="Exclude the node or op type it names (quantize.exclude_*).",
        ) from None
    finally:
        pre.unlink(missing_ok=True)
    _require_loadable(spec, out)
    notes.append(_arm_note(q.mode, cpu))
    return QuantResult(q.mode, time.perf_counter() - t0, tuple(excluded), tuple(notes))


def _require_loadable(spec: ModelSpec, out: Path) -> None:
    """onnxruntime's quantizer can write a model its own runtime refuses (per-channel QDQ on an opset
    older than 13: "Unrecognized attribute: axis for operator DequantizeLinear")."""
    from edgepack.modelpipe.export import session

    try:
        session(out)
    except Exception as exc:  # onnxruntime's errors are untyped
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise QuantizationGateError(
            f"model '{spec.name}': the {spec.quantize.mode} model does not load in onnxruntime: "
            f"{first.split(' : ')[-1][:200]}",
            hint="Try another quantize.mode (or auto), per_channel: false, or keep fp32.",
        ) from None


def _fp16(spec: ModelSpec, fp32: Path, out: Path, *, cpu: CpuInfo) -> QuantResult:
    if not cpu.fp16:
        raise ConfigError(
            f"model spec '{spec.name}': quantize.mode fp16, but the target's {cpu.name} ({cpu.arch}) has "
            "no fp16 "
            "arithmetic: onnxruntime would run it slower than fp32, through casts.",
            hint="Use quantize.mode dynamic or static (int8) for this target.",
        )
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    t0 = time.perf_counter()
    with _quiet():
        model = convert_float_to_float16(
            onnx.load(str(fp32)),
            keep_io_types=True,
            node_block_list=list(spec.quantize.exclude_nodes),
            op_block_list=list(spec.quantize.exclude_op_types) or None,
        )
    onnx.save(model, str(out))
    return QuantResult(
        "fp16", time.perf_counter() - t0, spec.quantize.exclude_nodes, ("inputs/outputs stay float32",)
    )


def _arm_note(mode: str, cpu: CpuInfo) -> str:
    if cpu.arch.startswith("x86"):
        return (
            f"{cpu.name} ({cpu.arch}): int8 GEMMs run on AVX2 (u8 x s8 with 16-bit saturation where there "
            f"is no VNNI); {mode} int8 saves size and bandwidth."
        )
    if cpu.dotprod:
        return f"{cpu.name} ({cpu.arch}) has SDOT/UDOT: onnxruntime's int8 GEMMs use the dot-product kernels."
    return (
        f"{cpu.name} ({cpu.arch}) has no dot-product instructions: int8 GEMMs run on widening NEON "
        f"multiplies; {mode} int8 saves size and bandwidth more than arithmetic."
    )
