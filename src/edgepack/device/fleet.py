"""Run one action on many boards at once: bounded parallelism, one row per board.

A board that fails (unreachable, refused, a failed smoke) fails its own row
and never the others; the run's exit code says whether every row passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from edgepack.device.inventory import BoardSpec
from edgepack.errors import EdgepackError


@dataclass(frozen=True)
class Row:
    board: str
    destination: str
    ok: bool
    seconds: float
    detail: str  # a summary when ok, the error's first line otherwise
    result: dict[str, Any] | None = None
    exit_code: int = 0


Action = Callable[[BoardSpec], tuple[str, dict[str, Any]]]  # -> (summary, result)


def run_one(spec: BoardSpec, action: Action) -> Row:
    t0 = time.perf_counter()
    try:
        detail, result = action(spec)
    except EdgepackError as exc:
        seconds = round(time.perf_counter() - t0, 1)
        return Row(spec.name, spec.destination, False, seconds, exc.render(), None, exc.exit_code)
    except Exception as exc:  # a bug must fail its row, not hide the other boards' results
        seconds = round(time.perf_counter() - t0, 1)
        return Row(spec.name, spec.destination, False, seconds, f"{type(exc).__name__}: {exc}", None, 1)
    return Row(spec.name, spec.destination, True, round(time.perf_counter() - t0, 1), detail, result)


def run_fleet(specs: Sequence[BoardSpec], action: Action, *, jobs: int) -> list[Row]:
    """``action`` on every board, at most ``jobs`` at a time; rows in the boards' order."""
    if len(specs) == 1:
        return [run_one(specs[0], action)]
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="board") as pool:
        return list(pool.map(lambda spec: run_one(spec, action), specs))


def exit_code(rows: Sequence[Row]) -> int:
    """0 when every row passed; else the first failure's code (all boards' codes are in the table)."""
    return next((r.exit_code for r in rows if not r.ok), 0)
