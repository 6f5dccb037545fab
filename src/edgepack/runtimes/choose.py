"""``auto``'s rule, readable: among the runtimes that pass the gate and a build can carry for this
model, the fastest on the board's CPU; one within 10 % of the fastest but smaller on the board (model
plus runtime) wins instead."""

from __future__ import annotations

from typing import Any

from edgepack.runtimes.base import Row

NEAR = 1.10  # latencies within 10 %: QEMU's timing does not tell them apart


def choose(rows: list[Row]) -> dict[str, Any]:
    ready = [r for r in rows if r.passes and not r.not_buildable and r.emulated_ms is not None]
    out = {r.runtime: r.why_not or r.not_buildable for r in rows if r not in ready}
    if not ready:
        return {
            "runtime": None,
            "why": "; ".join(f"{k}: {v}" for k, v in out.items()),
            "out": out,
        }
    fastest = min(ready, key=lambda r: r.emulated_ms or 0.0)
    near = [r for r in ready if (r.emulated_ms or 0.0) <= (fastest.emulated_ms or 0.0) * NEAR]
    pick = min(near, key=lambda r: (r.model_bytes + r.runtime_bytes, r.emulated_ms or 0.0))
    others = [r for r in ready if r is not pick]
    why = [f"{pick.runtime} ({pick.chosen}) passes the gate"]
    if pick is fastest:
        why[0] += f" and is the fastest on the board's CPU ({pick.emulated_ms:.2f} ms)"
    else:
        why[0] += (
            f" and is within 10 percent of the fastest ({fastest.runtime}, {fastest.emulated_ms:.2f} ms vs "
            f"{pick.emulated_ms:.2f} ms) while smaller on the board"
        )
    for r in others:
        why.append(
            f"{r.runtime}: {_ratio(r.emulated_ms, pick.emulated_ms)} the latency, "
            f"{_ratio(r.model_bytes + r.runtime_bytes, pick.model_bytes + pick.runtime_bytes)} the size"
        )
    return {"runtime": pick.runtime, "file": pick.chosen, "why": "; ".join(why), "out": out}


def _ratio(a: float | int | None, b: float | int | None) -> str:
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}x"
