"""Output against reference: shape, dtype, max abs/rel error, cosine similarity, pass/fail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OutputCheck:
    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs: float
    max_rel: float
    cosine: float
    ok: bool
    why: str = ""

    def line(self) -> str:
        return (
            f"{self.name} {list(self.shape)} {self.dtype}: max abs {self.max_abs:.3g}, "
            f"max rel {self.max_rel:.3g}, cosine {self.cosine:.6f}" + (f" ({self.why})" if self.why else "")
        )


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 or ny == 0.0:
        return 1.0 if nx == ny else 0.0
    return float(np.dot(x, y) / (nx * ny))


def check_output(name: str, ref: np.ndarray, got: np.ndarray, *, rtol: float, atol: float) -> OutputCheck:
    if got.shape != ref.shape or got.dtype != ref.dtype:
        why = f"got {list(got.shape)} {got.dtype}, expected {list(ref.shape)} {ref.dtype}"
        return OutputCheck(name, tuple(got.shape), str(got.dtype), np.inf, np.inf, 0.0, False, why)
    if ref.dtype == np.bool_ or np.issubdtype(ref.dtype, np.integer):
        same = bool(np.array_equal(ref, got))
        return OutputCheck(
            name,
            tuple(ref.shape),
            str(ref.dtype),
            0.0 if same else np.inf,
            0.0 if same else np.inf,
            1.0 if same else 0.0,
            same,
            "" if same else "values differ",
        )
    r, g = ref.astype(np.float64), got.astype(np.float64)
    diff = np.abs(g - r)
    max_abs = float(diff.max(initial=0.0))
    max_rel = float((diff / np.maximum(np.abs(r), 1e-12)).max(initial=0.0))
    ok = bool(np.all(diff <= atol + rtol * np.abs(r))) and not np.isnan(g).any()
    why = "" if ok else f"outside rtol={rtol:g} atol={atol:g}"
    return OutputCheck(name, tuple(ref.shape), str(ref.dtype), max_abs, max_rel, cosine(r, g), ok, why)


def check_outputs(
    names: Sequence[str], ref: Sequence[np.ndarray], got: Sequence[np.ndarray], *, rtol: float, atol: float
) -> list[OutputCheck]:
    if len(ref) != len(got):
        return [
            OutputCheck(
                "outputs", (), "", np.inf, np.inf, 0.0, False, f"{len(got)} outputs, expected {len(ref)}"
            )
        ]
    labels = list(names) + [f"output{i}" for i in range(len(names), len(ref))]
    return [check_output(n, r, g, rtol=rtol, atol=atol) for n, r, g in zip(labels, ref, got, strict=False)]
