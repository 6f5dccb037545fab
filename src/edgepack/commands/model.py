"""``edgepack model.*``: a spec's model stages alone (export, quantize, validate), its report, the schema."""

from __future__ import annotations

import json
from pathlib import Path

from invoke.context import Context

from edgepack.commands.boundary import command, given, project, runner
from edgepack.config import load_target
from edgepack.errors import ConfigError, ModelCheckError
from edgepack.fsutil import write_text
from edgepack.pipeline.context import Build
from edgepack.pipeline.steps import Step, execute
from edgepack.ui import console, errors
from edgepack.ui import model as ui_model

MODEL_HELP = {"target": "target name (its CPU and onnxruntime)", "spec": "model spec; default: the target's"}


@command(help=MODEL_HELP, required=("target",))
def export(c: Context, target: str | None = None, spec: str | None = None) -> None:
    """Export the spec's model to ONNX and verify it against eager torch at every check size."""
    model_stage("export", target_name=given(target), spec=spec)


@command(help=MODEL_HELP, required=("target",))
def quantize(c: Context, target: str | None = None, spec: str | None = None) -> None:
    """Export, then quantize as the spec asks (dynamic / static QDQ int8, fp16)."""
    model_stage("quantize", target_name=given(target), spec=spec)


@command(help=MODEL_HELP, required=("target",))
def validate(c: Context, target: str | None = None, spec: str | None = None) -> None:
    """Export, quantize, then validate against fp32: outputs, per-layer SQNR, task metric (gates)."""
    model_stage("validate", target_name=given(target), spec=spec)


@command(help={"target": "target name", "json": "print the report's JSON"}, required=("target",))
def report(c: Context, target: str | None = None, json: bool = False) -> None:
    """Show the last model validation report of a target (build/<target>/model/report.json)."""
    model_show(target_name=given(target), as_json=json)


@command(
    help={
        "target": "target name (its board, image and onnxruntime)",
        "spec": "model spec; default: the target's",
        "runtimes": "comma-separated runtimes to compare (onnxruntime, litert, executorch); default: all",
        "json": "print the comparison's JSON",
    },
    required=("target",),
)
def runtimes(
    c: Context, target: str | None = None, spec: str | None = None, runtimes: str = "all", json: bool = False
) -> None:
    """Compare on-device runtimes for the model on the target's board: conversion, parity, size, latency."""
    model_runtimes(target_name=given(target), spec=spec, names=runtimes, as_json=json)


@command()
def schema(c: Context) -> None:
    """Regenerate models/model.schema.json from the spec's types."""
    model_schema()


def model_stage(stage: str, *, target_name: str, spec: str | None) -> None:
    """Run the model steps up to ``stage`` (export, quantize, validate), cached like a build's."""
    from edgepack.modelpipe.spec import is_spec_path
    from edgepack.modelpipe.steps import STEP_NAMES, plan_model

    proj = project()
    target = load_target(proj, target_name)
    b = Build(target=target, project=proj, runner=runner(), model=spec or target.model)
    if not is_spec_path(b.model):
        raise ConfigError(
            f"'{b.model}' is not a model spec; the model tasks take one (models/NAME.yaml).",
            hint="Pass --spec models/NAME.yaml, or point the target's model at a spec.",
        )
    steps = plan_model(b)[: STEP_NAMES.index(stage) + 1]

    def announce(step: Step, hit: bool) -> None:
        console.print(f"[dim]{step.name:>8}[/] {'[green]cached[/]' if hit else 'running'}: {step.summary}")

    last = execute(steps, b.cache, on_start=announce)[-1].outputs
    record = {"export": "export.json", "quantize": "quantize.json", "validate": "report.json"}.get(stage)
    if stage == "validate":
        ui_model.render(json.loads((Path(last["dir"]) / "report.json").read_text()), console)
        console.print(f"report  {b.out_dir / 'model' / 'report.json'}")
    elif record:
        console.print_json((Path(last["dir"]) / record).read_text())


def model_runtimes(*, target_name: str, spec: str | None, names: str, as_json: bool) -> None:
    from edgepack.runtimes import compare, registry
    from edgepack.ui import runtimes as ui_runtimes

    wanted = registry.parse(names)
    proj = project()
    target = load_target(proj, target_name)
    b = Build(target=target, project=proj, runner=runner(), model=spec or target.model)

    says = errors if as_json else console  # with --json, stdout carries the JSON alone

    def announce(step: Step, hit: bool) -> None:
        says.print(f"[dim]{step.name:>8}[/] {'[green]cached[/]' if hit else 'running'}: {step.summary}")

    doc = compare.run(b, wanted, announce=announce)
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        ui_runtimes.render(doc, console)
        console.print(f"report  {doc['json']}" + (f"\nplot    {doc['png']}" if doc["png"] else ""))
    if doc["choice"]["runtime"] is None:
        raise ModelCheckError(
            f"no runtime can run '{b.model}' on {target.name}: {doc['choice']['why']}",
            hint="Each runtime's reason is in the table (unsupported ops, parity).",
        )


def model_show(*, target_name: str, as_json: bool = False) -> None:

    path = project().build_dir / target_name / "model" / "report.json"
    if not path.is_file():
        raise ConfigError(
            f"no model report at {path}.", hint=f"Run: edgepack model.validate --target {target_name}"
        )
    if as_json:
        print(path.read_text())
        return
    ui_model.render(json.loads(path.read_text()), console)
    png = path.with_name("layers.png")
    console.print(f"report  {path}" + (f"\nplot    {png}" if png.is_file() else ""))


def model_schema() -> None:
    from edgepack.modelpipe.spec import spec_schema

    path = project().root / "models" / "model.schema.json"
    write_text(path, json.dumps(spec_schema(), indent=2) + "\n")
    console.print(f"wrote {path}")
