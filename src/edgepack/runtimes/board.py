"""A target's runtime in its deps layer: the lock's wheels with ONNX Runtime swapped for the chosen one.

The requirements lock pins onnxruntime and what only it needs (flatbuffers,
packaging, protobuf); with ``runtime: litert`` those go, and the board's
ai-edge-litert wheel, pinned by sha256 in ``resources/runtimes.yaml``, comes in
(its interpreter needs numpy only, so it is installed alone, ``--no-deps`` like
every wheel here). What its interpreter never loads is pruned afterwards.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from edgepack.config import Target
from edgepack.errors import ConfigError
from edgepack.locks.pypi import Pin, fetch_pin
from edgepack.locks.store import Store
from edgepack.runner import Runner
from edgepack.runtimes import registry

_REQUIRES = re.compile(r"^Requires-Dist:\s*([A-Za-z0-9][A-Za-z0-9._-]*)([^;]*)(;.*)?$")


def requires(wheel: Path) -> set[str]:
    """A wheel's unconditional requirements, by normalized name."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode("utf-8", "replace")
    found = set()
    for line in text.splitlines():
        m = _REQUIRES.match(line)
        if m and "extra" not in (m.group(3) or ""):
            found.add(m.group(1).lower().replace("_", "-"))
    return found


def swap(target: Target, pins: list[Pin], wheels: dict[str, Path], store: Store, runner: Runner) -> list[Pin]:
    """``pins`` for ``target.runtime``: as locked for onnxruntime; for another runtime, onnxruntime and
    what only it needs replaced by the runtime's pinned wheel (fetched into ``store``)."""
    if target.runtime == "onnxruntime":
        return pins
    entry = registry.wheel_for(target.runtime, arch=target.wheel_arch, python=target.python)
    if entry is None:  # config refuses this at load; a hand-made Target could still get here
        raise ConfigError(
            f"runtime: {target.runtime} has no wheel for {target.wheel_arch}, Python {target.python}."
        )
    others = {p.name for p in pins if p.name != "onnxruntime"}
    needed_by_others = set().union(*(requires(wheels[n]) for n in others if n in wheels))
    only_ort = (
        requires(wheels["onnxruntime"]) - needed_by_others - {"numpy"} if "onnxruntime" in wheels else set()
    )
    kept = [p for p in pins if p.name != "onnxruntime" and p.name not in only_ort]
    package = registry.facts()[target.runtime]["package"]
    pin = Pin(package, registry.facts()[target.runtime]["version"], (entry["sha256"],))
    if store.get(entry["sha256"]) is None:
        from edgepack.pipeline.pip import platform_args

        if not runner.dry_run and not fetch_pin(pin, platform_args(target), store, runner):
            raise ConfigError(
                f"PyPI serves no {entry['file']} with the pinned sha256 {entry['sha256'][:12]}."
            )
    return [*kept, pin]


def prune_list(target: Target) -> tuple[str, ...]:
    if target.runtime == "litert":
        from edgepack.runtimes.litert import PRUNE

        return PRUNE
    return ()
