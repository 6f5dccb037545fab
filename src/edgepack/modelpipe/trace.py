"""TorchScript capture: trace, check the trace against eager, script when the trace is wrong.

``torch.jit.trace`` records the operations one input happened to run: a
Python-side branch or a data-dependent ``if`` is frozen to the path the example
took, a size read with ``int()`` becomes a constant. Tracing is kept only if
the traced module agrees with eager torch on inputs of other sizes and other
values (:func:`edgepack.modelpipe.inputs.check_sets`); otherwise the module is
scripted (``torch.jit.script`` keeps control flow) and verified the same way.
The result says which method was used, why, and which input exposed a bad trace.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from edgepack.errors import InputError, ModelCheckError
from edgepack.modelpipe.compare import OutputCheck, check_outputs
from edgepack.modelpipe.inputs import Feeds, InputSet, check_sets, example
from edgepack.modelpipe.serial import PROCESS_STATE
from edgepack.modelpipe.spec import ModelSpec

if TYPE_CHECKING:
    import torch

Method = Literal["trace", "script", "torchscript-file"]


@dataclass(frozen=True)
class Capture:
    module: Any = field(repr=False)  # torch.jit.ScriptModule
    method: Method
    why: str
    tracer_warnings: tuple[str, ...] = ()
    rejected_trace: str = ""  # the input that exposed the trace, and how


def run_torch(module: Any, spec: ModelSpec, feeds: Feeds) -> list[np.ndarray]:
    import torch

    args = [torch.from_numpy(np.ascontiguousarray(feeds[t.name])) for t in spec.inputs]
    reset = getattr(module, "reset_states", None)  # a stateful module (Silero's .jit): each set from scratch
    if callable(reset):
        reset()
    with torch.no_grad():
        out = module(*args)
    return [t.detach().cpu().numpy() for t in _flatten(out)]


def _flatten(out: Any) -> list[torch.Tensor]:
    if isinstance(out, tuple | list):
        return [t for item in out for t in _flatten(item)]
    return [out]


def eager_outputs(module: Any, spec: ModelSpec, sets: Sequence[InputSet]) -> list[list[np.ndarray]]:
    """Reference outputs; wrong example inputs fail here, with the input named."""
    refs = []
    for s in sets:
        try:
            refs.append(run_torch(module, spec, s.feeds))
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in s.feeds.items())
            first = str(exc).strip().splitlines()[0][:200]
            raise InputError(
                f"model spec '{spec.name}': the module rejects the spec's inputs "
                f"({s.label}: {shapes}): {first}",
                hint="Fix inputs[].shape / dtype / dims in the spec to what forward() takes.",
            ) from None
    return refs


def require_repeatable(module: Any, spec: ModelSpec, first: InputSet, ref: list[np.ndarray]) -> None:
    """The same input twice gives the same output: a module that keeps state between calls without a
    ``reset_states()`` edgepack can call would make every later check compare different things."""
    again = run_torch(module, spec, first.feeds)
    if all(np.array_equal(a, b) for a, b in zip(ref, again, strict=True)):
        return
    has_reset = getattr(module, "resettable", callable(getattr(module, "reset_states", None)))
    raise ModelCheckError(
        f"model '{spec.name}': forward() gives another output for the same input ('{first.label}') on a "
        "second call: the module keeps state between calls"
        + (", and its reset_states() does not clear it." if has_reset else " and has no reset_states()."),
        hint="Give it a reset_states() that clears the state (in a TorchScript file, decorated "
        "@torch.jit.export, or torch.jit.script leaves it out of the saved file).",
    )


def disagreement(
    module: Any, spec: ModelSpec, sets: Sequence[InputSet], refs: Sequence[list[np.ndarray]]
) -> tuple[str, list[OutputCheck]] | None:
    """The first input set on which ``module`` differs from eager (label, checks), or None."""
    tol = spec.tolerance
    for s, ref in zip(sets, refs, strict=True):
        try:
            got = run_torch(module, spec, s.feeds)
        except RuntimeError as exc:
            return s.label, [OutputCheck("run", (), "", np.inf, np.inf, 0.0, False, "raised " + _last(exc))]
        checks = check_outputs(spec.outputs, ref, got, rtol=tol.rtol, atol=tol.atol)
        if not all(c.ok for c in checks):
            return s.label, checks
    return None


def capture(module: torch.nn.Module, spec: ModelSpec, *, method: str = "auto") -> Capture:
    """TorchScript of ``module``, verified against eager on every check set."""
    import torch
    from torch.jit._trace import TracerWarning  # not re-exported by torch.jit's stubs

    ex = example(spec)
    sets = [ex, *check_sets(spec)]
    refs = eager_outputs(module, spec, sets)
    args = tuple(torch.from_numpy(ex.feeds[t.name]) for t in spec.inputs)
    rejected, caught = "", cast(tuple[str, ...], ())
    if method in ("auto", "trace"):
        with PROCESS_STATE, warnings.catch_warnings(record=True) as seen:  # warnings' state is process-wide
            warnings.simplefilter("always")
            traced = torch.jit.trace(module, args, check_trace=False)  # type: ignore[no-untyped-call]  # unannotated in torch
        caught = tuple(sorted({_warning_line(w) for w in seen if issubclass(w.category, TracerWarning)}))
        bad = disagreement(traced, spec, sets, refs)
        if bad is None:
            why = f"trace agrees with eager on {len(sets) - 1} other input sets (sizes and values)"
            return Capture(traced, "trace", why, caught)
        rejected = f"trace disagrees with eager on '{bad[0]}': {_worst(bad[1])}"
        if method == "trace":
            raise ModelCheckError(
                f"model '{spec.name}': {rejected}.",
                hint="The trace froze a branch or a size. Use export.method: script (or auto).",
            )
    try:
        with PROCESS_STATE, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(module)
    except Exception as exc:  # torch.jit.frontend raises many types for unsupported Python
        raise ModelCheckError(
            f"model '{spec.name}': {rejected or 'scripting was asked for'}, and torch.jit.script failed: "
            f"{_first(exc)}",
            hint="Make forward() scriptable (type annotations, no unsupported Python), or remove the "
            "data-dependent branch so a trace is valid.",
        ) from None
    bad = disagreement(scripted, spec, sets, refs)
    if bad is not None:
        raise ModelCheckError(
            f"model '{spec.name}': the scripted module disagrees with eager on '{bad[0]}': {_worst(bad[1])}."
        )
    why = (
        f"{rejected}; scripted module agrees on all {len(sets)} input sets"
        if rejected
        else f"script asked for; agrees with eager on all {len(sets)} input sets"
    )
    return Capture(scripted, "script", why, caught, rejected)


def _worst(checks: list[OutputCheck]) -> str:
    bad = [c for c in checks if not c.ok] or checks
    return "; ".join(c.why if c.name == "run" else c.line() for c in bad[:2])


def _last(exc: BaseException) -> str:
    """TorchScript errors start with boilerplate and end with the cause."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:200]


def _first(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _warning_line(w: warnings.WarningMessage) -> str:
    return f"{Path(w.filename).name}:{w.lineno}: {str(w.message).splitlines()[0][:160]}"
