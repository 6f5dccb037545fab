"""Seeded example and check inputs from a spec: the export sizes, then sizes never seen at export.

Every check set differs from the export set in its sizes (one dynamic dim at a
time, then all at once) and in its values (another seed, the sign flipped), so
a trace that froze a shape or a data-dependent branch shows up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgepack.errors import InputError
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
    return {t.name: _tensor(t, sizes, rng) for t in spec.inputs}


def _tensor(t: TensorSpec, sizes: Mapping[str, int], rng: np.random.Generator) -> np.ndarray:
    shape = tuple(sizes[a] if isinstance(a, str) else a for a in t.shape)
    dtype = NP_DTYPES[t.dtype]
    if t.values == "zeros":
        return np.zeros(shape, dtype=dtype)
    if t.values == "integers":
        return rng.integers(int(t.low), int(t.high), size=shape).astype(dtype)
    if t.values == "uniform":
        return rng.uniform(t.low, t.high, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * t.std).astype(dtype)


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
    """Feeds (calibration, evaluation) must have the spec's names, dtypes and fixed sizes."""
    for t in spec.inputs:
        if t.name not in feeds:
            raise InputError(f"{what}: input '{t.name}' is missing (got {', '.join(sorted(feeds))}).")
        got = feeds[t.name]
        if got.dtype != NP_DTYPES[t.dtype]:
            raise InputError(f"{what}: input '{t.name}' is {got.dtype}, the spec says {t.dtype}.")
        fixed = [(i, a) for i, a in enumerate(t.shape) if isinstance(a, int)]
        if got.ndim != len(t.shape) or any(got.shape[i] != a for i, a in fixed):
            want = "[" + ", ".join(str(a) for a in t.shape) + "]"
            raise InputError(f"{what}: input '{t.name}' has shape {list(got.shape)}, the spec says {want}.")
