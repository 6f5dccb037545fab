"""forward()'s non-tensor arguments, bound once: every stage then calls the model with tensors only.

A whole TorchScript file often takes more than tensors: Silero VAD's
``forward(x, sr: int)``, a resampler's rate, a flag. ONNX graphs take tensors,
so such an argument is fixed at one value (``source.args``) and baked into the
export: :class:`Bound` wraps the module and calls it with the spec's tensors
(``inputs``) and those values, each where forward()'s signature puts it. A
stateful module (one with ``reset_states()``) is reset through the wrapper
before every input set, so each set is computed from scratch.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any

import torch

from edgepack.errors import InputError, ModelCheckError
from edgepack.modelpipe.spec import ModelSpec

_TENSOR_TYPES = ("Tensor", "Optional[Tensor]", "torch.Tensor")


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # as the signature says it: "Tensor", "int", "float", ... or "" when unannotated
    required: bool


class Bound(torch.nn.Module):
    """``inner`` called with the spec's tensors (positional, in ``inputs`` order) and the bound values."""

    def __init__(self, inner: torch.nn.Module, layout: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.inner = inner
        self.layout = layout  # per forward() parameter: ("input", index) or ("value", constant)

    def forward(self, *tensors: torch.Tensor) -> Any:
        args = [tensors[v] if kind == "input" else v for kind, v in self.layout]
        return self.inner(*args)

    @property
    def resettable(self) -> bool:
        return callable(getattr(self.inner, "reset_states", None))

    def reset_states(self) -> None:
        reset = getattr(self.inner, "reset_states", None)
        if callable(reset):
            reset()


def parameters(module: Any) -> list[Param]:
    """forward()'s parameters after self: from a ScriptModule's schema, or a Python signature."""
    method = getattr(module, "forward", None)
    schema = getattr(method, "schema", None)
    if schema is not None:  # a ScriptModule (loaded from a .jit file: no Python source)
        return [
            Param(a.name, str(a.type), a.default_value is None and not str(a.type).startswith("Optional"))
            for a in schema.arguments[1:]
        ]
    try:
        signature = inspect.signature(method)  # type: ignore[arg-type]  # checked callable by nn.Module
    except (TypeError, ValueError):
        return []
    out = []
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        hint = p.annotation
        name = "" if hint is inspect.Parameter.empty else getattr(hint, "__name__", str(hint))
        out.append(Param(p.name, name, p.default is inspect.Parameter.empty))
    return out


def bind(module: torch.nn.Module, spec: ModelSpec) -> torch.nn.Module:
    """``module`` itself when the spec's inputs are all it takes, else a :class:`Bound` over it.

    Values in ``source.args`` go to the parameters of those names; the spec's inputs fill the other
    parameters in order, as they always have (their names need not be forward()'s).
    """
    params = parameters(module)
    given = {a.name: a.value for a in spec.source.args}
    if not params:
        if given:
            raise InputError(
                f"model spec '{spec.name}': source.args is set, but forward()'s signature "
                "cannot be read to place them."
            )
        return module
    names = [p.name for p in params]
    for name in given:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            tip = f" Did you mean '{close[0]}'?" if close else ""
            raise InputError(
                f"model spec '{spec.name}': source.args names '{name}', which forward() does "
                f"not take (it takes {_signature(params)}).{tip}"
            )
    layout: list[tuple[str, Any]] = []
    left = len(spec.inputs)
    for p in params:
        if p.name in given:
            layout.append(("value", _checked(given[p.name], p, spec)))
        elif left:
            layout.append(("input", len(spec.inputs) - left))
            left -= 1
        elif p.required:
            raise InputError(
                f"model spec '{spec.name}': forward() takes '{p.name}: {p.type or 'any'}', which is not in "
                "the spec.",
                hint=f"A tensor goes in inputs; a {p.type or 'value'} is bound in source.args, e.g. "
                f"args: [{{name: {p.name}, value: ...}}].",
            )
        else:
            break  # an optional argument left out: it and the ones after it keep their defaults
    if left and given:
        raise InputError(
            f"model spec '{spec.name}': inputs has {len(spec.inputs)} tensors, but forward() "
            f"takes {len(params) - len(given)} besides source.args ({_signature(params)})."
        )
    return Bound(module, layout).eval() if given else module


def describe(spec: ModelSpec) -> str:
    return ", ".join(f"{a.name}={a.value!r}" for a in spec.source.args)


def traced(module: Bound, spec: ModelSpec) -> Any:
    """A trace of the wrapper: the values become constants, a scripted inner module keeps its control flow."""
    import warnings

    from edgepack.modelpipe.export import unsupported
    from edgepack.modelpipe.inputs import example
    from edgepack.modelpipe.serial import PROCESS_STATE

    args = tuple(torch.from_numpy(example(spec).feeds[t.name]) for t in spec.inputs)
    module.reset_states()
    try:
        with PROCESS_STATE, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            out = torch.jit.trace(module, args, check_trace=False)  # type: ignore[no-untyped-call]  # unannotated in torch
    except Exception as exc:  # the tracer raises many types
        raise ModelCheckError(
            f"model '{spec.name}': the TorchScript file cannot be traced with {describe(spec)}: "
            f"{unsupported(exc)}.",
            hint="Load its weights into a torch factory instead (source.kind: torch, factory: "
            "package.module:fn, weights: the .jit file; as models/silero-vad.yaml does).",
        ) from None
    finally:
        module.reset_states()
    return out


def _checked(value: Any, p: Param, spec: ModelSpec) -> Any:
    kinds = {"int": int, "float": float, "bool": bool, "str": str}
    want = kinds.get(p.type)
    if p.type in _TENSOR_TYPES:
        raise InputError(
            f"model spec '{spec.name}': source.args binds '{p.name}', but forward() takes a tensor there.",
            hint=f"Declare '{p.name}' in inputs (shape, dtype) instead.",
        )
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is not None and (not isinstance(value, want) or (want is int and isinstance(value, bool))):
        raise InputError(
            f"model spec '{spec.name}': source.args '{p.name}' is {value!r}, but forward() takes "
            f"'{p.name}: {p.type}'.",
            hint=f"Give {'an' if p.type[:1] in 'aeiou' else 'a'} {p.type} value.",
        )
    return value


def _signature(params: list[Param]) -> str:
    return ", ".join(f"{p.name}: {p.type}" if p.type else p.name for p in params)
