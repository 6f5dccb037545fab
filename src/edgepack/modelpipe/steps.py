"""The model stages as cached build steps: model (source) -> export -> quantize -> validate.

Keys hash the spec, the source files (or the pinned wheel they come from),
the evaluation and calibration audio, the target's onnxruntime and CPU, and
the code of edgepack.modelpipe, so a change to any of them re-runs exactly the
stages it affects. torch is imported by the actions only, never at plan time.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType
from typing import cast

from edgepack.config import BUILTIN
from edgepack.errors import ConfigError
from edgepack.fsutil import sha256_file, sha256_tree
from edgepack.modelpipe import (
    auto,
    compare,
    export,
    inputs,
    layers,
    onnxspec,
    outcome,
    pipeline,
    quantize,
    report,
    samples,
    sources,
    spec,
    taskmetric,
)
from edgepack.modelpipe import trace as trace_mod
from edgepack.modelpipe import validate as validate_mod
from edgepack.modelpipe.spec import QuantMode
from edgepack.pipeline.context import RUNTIME_SRC, Build
from edgepack.pipeline.steps import Outputs, Step, digest, key_of

STEP_NAMES = ("model", "export", "quantize", "validate", "convert")


def _code(*modules: ModuleType) -> str:
    return digest(*(inspect.getsource(m) for m in modules))


def target_onnxruntime(b: Build) -> str:
    """The onnxruntime the board runs: its wheel's lock, or its Debian lock (deps: debian)."""
    if b.target.deps == "debian":
        return export.debian_onnxruntime(b.project.lock_path(b.target, "debian"))
    return export.locked_onnxruntime(b.project.lock_path(b.target, "requirements"))


def spec_root(b: Build) -> Path:
    """What the spec's relative paths (weights, samples, manifests) are relative to: its project.

    A built-in spec (models/cmdasr.yaml from edgepack itself) names edgepack's own files.
    """
    path = b.project.find(b.model).absolute()  # not resolved: BUILTIN's entries are symlinks in a clone
    return BUILTIN if path.is_relative_to(BUILTIN) else b.project.root


def context(b: Build) -> pipeline.Context:
    return pipeline.Context(
        root=spec_root(b),
        cache=b.project.cache_dir("model-src"),
        runner=b.runner,
        runtime=target_onnxruntime(b),
        cpu=quantize.cpu_info(b.target.cpu_model),
        spec_file=b.model,
        report_dir=b.out_dir / "model",
    )


def load(b: Build) -> spec.ModelSpec:
    """The build's spec: models/NAME.yaml, or the one read from a bare .onnx; then --samples/--quantize."""
    from edgepack.pipeline.model import resolve

    opts = b.model_options
    if not spec.is_spec_path(b.model):
        ref = resolve(b.model, project_root=b.project.root)  # checks it is a loadable .onnx
        assert ref.path is not None
        mode = opts.quantize or quantize.default_mode(quantize.cpu_info(b.target.cpu_model))
        return onnxspec.spec_for_onnx(ref.path, shown_as=b.model, quantize=mode, samples=opts.samples)
    s = spec.load_spec(b.project.find(b.model))
    if opts.samples:
        s = replace(s, samples=opts.samples)
    if opts.quantize:
        s = replace(s, quantize=replace(s.quantize, mode=cast(QuantMode, opts.quantize)))
    return s


def _module_digest(ref: str) -> str:
    """sha256 of the source file of ``package.module:callable``'s module (found, not run); "" for none."""
    import importlib.util

    module = ref.partition(":")[0]
    if not module:
        return ""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return "unresolved"
    origin = Path(found.origin) if found is not None and found.origin else None
    return sha256_file(origin) if origin is not None and origin.is_file() else "unresolved"


def _files(names: tuple[str, ...] | list[str], root: Path) -> str:
    return digest(*(f"{n}={sha256_file(root / n) if (root / n).is_file() else 'missing'}" for n in names))


def plan_model(b: Build) -> list[Step]:
    """The four model steps of build ``b`` (its model is a spec), each naming the one before it."""
    s = load(b)
    ctx = context(b)
    root = spec_root(b)
    files = {k: sources.file_digest(v, s, root=root) for k, v in sources.source_files(s).items()}
    src = _step(
        b,
        "model",
        f"model source: {s.source.kind} ({s.name})",
        {"spec": s.digest(), **files, "code": _code(sources, pipeline, onnxspec)},
        lambda out: pipeline.source_stage(s, ctx, out),
    )
    exp = _step(
        b,
        "export",
        f"export + verify at {1 + len(inputs.check_sets(s))} input sets",
        {
            "model": src.key,
            "onnxruntime": ctx.runtime,
            "torch": _torch_version(),
            "samples": samples.key(s.samples, root),
            "code": _code(export, trace_mod, inputs, compare, spec, samples),
        },
        lambda out: pipeline.export_stage(s, ctx, _dir(b, src), out),
        needs=src,
    )
    cal = s.quantize.calibration
    qua = _step(
        b,
        "quantize",
        f"quantize: {s.quantize.mode}"
        + (" (tries recipes, keeps a passing one)" if s.quantize.mode == "auto" else ""),
        {
            "export": exp.key,
            "cpu": json.dumps(asdict(ctx.cpu), sort_keys=True),
            "calibration": _files(cal.files, root),
            # audio calibration streams through the runtime's front end and streaming step
            "runtime": sha256_tree(RUNTIME_SRC),
            "code": _code(
                quantize, taskmetric, validate_mod, layers, compare, auto, outcome, pipeline, samples
            ),
        },
        lambda out: pipeline.quantize_stage(s, ctx, _dir(b, exp), out),
        needs=exp,
    )
    ev = s.evaluate
    audio = [*ev.audio, *([ev.manifest] if ev.manifest else []), *_manifest_audio(ev.manifest, root)]
    val = _step(
        b,
        "validate",
        f"validate against fp32 ({s.task} metric, per-layer error)",
        {
            "quantize": qua.key,
            "audio": _files(audio, root),
            # the task metrics run the runtime's code (features, VAD, streaming, the grammar decoder),
            # and the spec's evaluate.decoder, which may be the project's own module
            "runtime": sha256_tree(RUNTIME_SRC),
            "decoder": _module_digest(ev.decoder),
            "code": _code(validate_mod, layers, report, taskmetric, compare, pipeline),
        },
        lambda out: pipeline.validate_stage(s, ctx, _dir(b, exp), _dir(b, qua), out),
        needs=qua,
    )
    if b.target.runtime == "onnxruntime":
        return [src, exp, qua, val]
    return [src, exp, qua, val, _convert_step(b, s, src, exp, val)]


def _convert_step(b: Build, s: spec.ModelSpec, src: Step, exp: Step, val: Step) -> Step:
    """The model in the target's runtime's format (``runtime: litert``), checked against the export."""
    from edgepack.runtimes import compare as rt_compare
    from edgepack.runtimes import convert, litert, litert_tool, toolchain

    if why := litert.LiteRT().refuses(s):
        raise ConfigError(
            f"targets/{b.target.name}.yaml: runtime: {b.target.runtime} cannot build '{b.model}': {why}.",
            hint="Keep runtime: onnxruntime for this model, or give it as a torch factory (kind: torch).",
        )
    if s.task in convert.STREAMING:
        raise ConfigError(
            f"targets/{b.target.name}.yaml: runtime: {b.target.runtime}, but '{b.model}' is the {s.task} "
            "kind of model, whose runtime streams through onnxruntime sessions.",
            hint="Keep runtime: onnxruntime for this target, or build a generic, embedding, classifier or "
            "mask model.",
        )
    return _step(
        b,
        "convert",
        f"convert to {b.target.runtime} (litert-torch; int8: ai-edge-quantizer), checked against the export",
        {
            "validate": val.key,
            "converter": sha256_file(toolchain.lock_file()),
            "code": _code(convert, litert, litert_tool, rt_compare, toolchain),
        },
        lambda out: convert.convert_stage(
            b, s, source_dir=_dir(b, src), export_dir=_dir(b, exp), validate_dir=_dir(b, val), out=out
        ),
        needs=val,
    )


def _step(
    b: Build,
    name: str,
    summary: str,
    inputs: dict[str, str],
    run: Callable[[Path], Outputs],
    *,
    needs: Step | None = None,
) -> Step:
    """A model step, declared once: its output folder follows from its key."""
    out = b.cache_dir(name, key_of(name, inputs))

    def action() -> Outputs:
        return run(out)

    def valid(o: Outputs) -> bool:
        return Path(o["dir"]).is_dir()

    return Step(name, summary, inputs, action, valid, needs=(needs.name,) if needs else ())


def _manifest_audio(manifest: str, root: Path) -> list[str]:
    """The evaluation set's audio files (project-relative), so a changed recording re-runs validation."""
    if not manifest or not (root / manifest).is_file():
        return []
    return [str(wav.relative_to(root)) for wav, _ in taskmetric.read_manifest(root / manifest)]


def _dir(b: Build, step: Step) -> Path:
    return Path(json.loads(b.cache.stamp(step).read_text())["dir"])


def _torch_version() -> str:
    """torch's version without importing it (plan time stays fast)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "absent"
