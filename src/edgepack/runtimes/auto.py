"""``runtime: auto``: the runtime ``model.runtimes`` measured and chose for this model on this board.

The choice is a measurement (each runtime converted, checked and timed under
QEMU with the board's CPU), recorded in ``build/<target>/runtimes.json`` with the
key of the model it measured. A build with ``runtime: auto`` takes that choice
when the key is its own model's, like a lock; otherwise it stops and says to
run the comparison, which is never silently skipped or guessed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from edgepack.errors import ConfigError
from edgepack.pipeline.context import Build


def measured(b: Build) -> Build:
    """``b`` as onnxruntime builds it: what the comparison starts from (its image runs onnxruntime, and
    every other runtime mounted beside it), whatever the target's own setting."""
    if b.target.runtime == "onnxruntime":
        return b
    return replace(b, target=replace(b.target, runtime="onnxruntime"))


def model_key(b: Build) -> str:
    """The key of the build's quantize step: the model (spec, source, export, quantization) measured."""
    from edgepack.modelpipe.steps import plan_model

    return next(s.key for s in plan_model(measured(b)) if s.name == "quantize")


def resolve(b: Build) -> tuple[Build, dict[str, Any]]:
    """``b`` with ``runtime: auto`` replaced by the recorded choice (and that choice), else ``b``."""
    if b.target.runtime != "auto":
        return b, {}
    run = f"edgepack model.runtimes --target {b.target.name}" + (
        f" --spec {b.model}" if b.model != b.target.model else ""
    )
    from edgepack.runtimes.compare import record_path

    path = record_path(b)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ConfigError(
            f"targets/{b.target.name}.yaml: runtime: auto, and no comparison of the runtimes for this model "
            f"on {b.target.name} has been recorded ({path}).",
            hint=f"Measure them first: {run}",
        ) from None
    if doc.get("model_key") != model_key(b):
        raise ConfigError(
            f"targets/{b.target.name}.yaml: runtime: auto, but {path} measured another model "
            f"({doc.get('spec', '?')}, or the same one before a change).",
            hint=f"Measure this one: {run}",
        )
    choice = doc.get("choice") or {}
    if not choice.get("runtime"):
        raise ConfigError(
            f"targets/{b.target.name}.yaml: runtime: auto, but no runtime passed for this model: "
            f"{choice.get('why', '?')}",
            hint=f"See {path}, or set runtime: onnxruntime.",
        )
    chosen = {
        "setting": "auto",
        "runtime": choice["runtime"],
        "why": choice.get("why", ""),
        "from": str(path),
    }
    return replace(b, target=replace(b.target, runtime=choice["runtime"])), chosen
