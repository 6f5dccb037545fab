"""Seeded example and check inputs from a spec: the export sizes, then sizes never seen at export.

Every check set differs from the export set in its sizes (one dynamic dim at a
time, then all at once) and in its values (another seed, the sign flipped), so
a trace that froze a shape or a data-dependent branch shows up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgepack.errors import ConfigError, InputError
from edgepack.modelpipe.spec import ModelSpec, TensorSpec

Feeds = dict[str, np.ndarray]
NP_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "bool": np.bool_,
}


@dataclass(frozen=True)
class InputSet:
    label: str  # how it differs from the export inputs, for messages: "frames=37, seed 1"
    sizes: Mapping[str, int]
    feeds: Feeds


def export_sizes(spec: ModelSpec) -> dict[str, int]:
    return {d.name: d.export for d in spec.dims}


def make_feeds(spec: ModelSpec, sizes: Mapping[str, int], *, seed: int) -> Feeds:
    rng = np.random.default_rng(seed)
    feeds = {t.name: _tensor(t, sizes, rng) for t in spec.inputs}
    for t in spec.inputs:  # a constant input proves nothing (a mask of zeros, ids all 0), unless asked for
        a = feeds[t.name]
        if not t.fill and t.values != "zeros" and a.size > 1 and np.all(a == a.flat[0]):
            raise ConfigError(
                f"model spec '{spec.name}': input '{t.name}' would be constant ({a.flat[0]!r}): its "
                "declared values leave one choice.",
                hint=f"Widen inputs[{t.name}].range or values, set fill: ones|zeros if constant is "
                "meant, or give samples.",
            )
    return feeds


def _tensor(t: TensorSpec, sizes: Mapping[str, int], rng: np.random.Generator) -> np.ndarray:
    shape = tuple(sizes[a] if isinstance(a, str) else a for a in t.shape)
    dtype = NP_DTYPES[t.dtype]
    integral = not np.issubdtype(dtype, np.floating)
    if t.fill:
        return (np.ones if t.fill == "ones" else np.zeros)(shape, dtype=dtype)
    if isinstance(t.values, tuple):
        return rng.choice(np.array(t.values), size=shape).astype(dtype)
    if t.range:
        lo, hi = t.range
        if integral:
            return rng.integers(int(lo), int(hi), size=shape, endpoint=True).astype(dtype)
        return rng.uniform(lo, hi, size=shape).astype(dtype)
    if t.values == "zeros":
        return np.zeros(shape, dtype=dtype)
    if t.values == "integers":
        return rng.integers(int(t.low), int(t.high), size=shape).astype(dtype)
    if t.values == "uniform":
        return rng.uniform(t.low, t.high, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * t.std).astype(dtype)


def describe(feeds: Mapping[str, np.ndarray]) -> dict[str, dict[str, object]]:
    """What was fed, for the plan, the report and the summary: shape, dtype, value range per input."""
    out: dict[str, dict[str, object]] = {}
    for name, a in feeds.items():
        lo, hi = (a.min().item(), a.max().item()) if a.size else (0, 0)
        out[name] = {"shape": list(a.shape), "dtype": str(a.dtype), "min": _num(lo), "max": _num(hi)}
    return out


def _num(v: float | int | bool) -> float | int:
    return round(float(v), 4) if isinstance(v, float) else int(v)


def example(spec: ModelSpec) -> InputSet:
    sizes = export_sizes(spec)
    return InputSet("export inputs", sizes, make_feeds(spec, sizes, seed=spec.seed))


def check_sets(spec: ModelSpec) -> list[InputSet]:
    """Inputs the exported model must agree on: new values, then each unseen size, then all together."""
    base = export_sizes(spec)
    sets = [InputSet("same sizes, other values", base, make_feeds(spec, base, seed=spec.seed + 1))]
    flipped = {k: _flip(v) for k, v in make_feeds(spec, base, seed=spec.seed + 2).items()}
    sets.append(InputSet("same sizes, negated values", base, flipped))
    seed = spec.seed + 3
    for dim in spec.dims:
        for size in dim.check:
            if size == dim.export:
                continue
            sizes = {**base, dim.name: size}
            sets.append(InputSet(f"{dim.name}={size}", sizes, make_feeds(spec, sizes, seed=seed)))
            seed += 1
    if len(spec.dims) > 1:
        sizes = {d.name: max(d.check) for d in spec.dims}
        label = ", ".join(f"{k}={v}" for k, v in sizes.items())
        sets.append(InputSet(label, sizes, make_feeds(spec, sizes, seed=seed)))
    return sets


def _flip(a: np.ndarray) -> np.ndarray:
    return -a if np.issubdtype(a.dtype, np.floating) else a


def require_matching(spec: ModelSpec, feeds: Feeds, *, what: str) -> None:
    """Feeds (calibration, evaluation, samples) must have the spec's names, dtypes and fixed sizes."""
    extra = sorted(set(feeds) - {t.name for t in spec.inputs})
    if extra:
        raise InputError(
            f"{what}: the model has no input {', '.join(repr(e) for e in extra)} "
            f"(its inputs: {', '.join(t.name for t in spec.inputs)})."
        )
    for t in spec.inputs:
        if t.name not in feeds:
            raise InputError(
                f"{what}: input '{t.name}' is missing (got {', '.join(sorted(feeds)) or 'none'})."
            )
        got = feeds[t.name]
        if not isinstance(got, np.ndarray):
            raise InputError(f"{what}: input '{t.name}' is a {type(got).__name__}, not a numpy array.")
        if got.dtype != NP_DTYPES[t.dtype]:
            raise InputError(
                f"{what}: input '{t.name}' is {got.dtype}, the model takes {t.dtype}.",
                hint=f"Convert it: array.astype(numpy.{t.dtype}).",
            )
        fixed = [(i, a) for i, a in enumerate(t.shape) if isinstance(a, int)]
        if got.ndim != len(t.shape) or any(got.shape[i] != a for i, a in fixed):
            want = "[" + ", ".join(str(a) for a in t.shape) + "]"
            raise InputError(f"{what}: input '{t.name}' has shape {list(got.shape)}, the model takes {want}.")
