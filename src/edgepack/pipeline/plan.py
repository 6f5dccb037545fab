"""A target's build as a plan of steps, each naming what it needs (no plan has a shape by position).

    base ─────────────────────────────┐
    deps (wheels; none for deps: debian) ┤
    model → [export → quantize → validate] → app ─┴→ image → smoke → latency (a quantized model)

base, deps and the model chain do not depend on each other: the executor
(``pipeline.executor``) runs them at once.
"""

from __future__ import annotations

from edgepack.modelpipe.spec import is_spec_path
from edgepack.pipeline.app import app_step
from edgepack.pipeline.base import base_step
from edgepack.pipeline.context import Build
from edgepack.pipeline.deps import deps_step
from edgepack.pipeline.image import image_step
from edgepack.pipeline.latency import latency_step
from edgepack.pipeline.model import bundled_models, model_step
from edgepack.pipeline.smoke import smoke_step
from edgepack.pipeline.steps import Step


def plan(b: Build) -> list[Step]:
    """deps: debian has no deps step: numpy and onnxruntime are Debian packages of the base.
    ``runtime: auto`` is the runtime model.runtimes measured and chose for this model (runtimes.auto)."""
    from edgepack.runtimes.auto import resolve

    b, _ = resolve(b)
    base = base_step(b)
    deps = deps_step(b) if b.target.deps == "wheels" else None
    model_steps = model_steps_of(b)
    app = app_step(b, model_steps[-1])
    image = image_step(b, base=base, deps=deps, app=app)
    smoke = smoke_step(b, image=image, app=app)
    steps = [base, *([deps] if deps else []), *model_steps, app, image, smoke]
    by_name = {s.name: s for s in model_steps}
    if "quantize" in by_name:  # a model the build quantized: did it pay on the board's CPU?
        steps.append(
            latency_step(
                b,
                image=image,
                smoke=smoke,
                export=by_name["export"],
                quantize=by_name["quantize"],
                convert=by_name.get("convert"),
            )
        )
    return steps


def model_steps_of(b: Build) -> list[Step]:
    """A bundled model by name is one step (its pinned file as it is); a model spec (models/NAME.yaml)
    and a user's .onnx file are model, export, quantize, validate: every such path bakes a checked model."""
    if is_spec_path(b.model) or b.model not in bundled_models():
        from edgepack.modelpipe.steps import plan_model

        return plan_model(b)
    return [model_step(b)]
