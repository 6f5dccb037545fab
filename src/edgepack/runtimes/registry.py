"""The runtimes by name, and the locked facts of their board packages (``resources/runtimes.yaml``)."""

from __future__ import annotations

import difflib
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from edgepack.errors import ConfigError
from edgepack.runtimes.base import Availability, Runtime

if TYPE_CHECKING:
    from edgepack.config import Target

NAMES = ("onnxruntime", "litert", "executorch")


@cache
def facts() -> dict[str, Any]:
    text = resources.files("edgepack").joinpath("resources/runtimes.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def all_runtimes() -> list[Runtime]:
    from edgepack.runtimes.executorch import ExecuTorch
    from edgepack.runtimes.litert import LiteRT
    from edgepack.runtimes.ort import OnnxRuntime

    return [OnnxRuntime(), LiteRT(), ExecuTorch()]


def parse(names: str) -> list[str]:
    """``--runtimes onnxruntime,litert`` (or ``all``): known names, in the given order."""
    if names.strip().lower() in ("", "all"):
        return list(NAMES)
    wanted = [n.strip().lower() for n in names.split(",") if n.strip()]
    if not wanted:
        raise ConfigError(f"--runtimes {names!r} names no runtime. Known: {', '.join(NAMES)} (or all).")
    for name in wanted:
        if name not in NAMES:
            close = difflib.get_close_matches(name, NAMES, n=1)
            tip = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"--runtimes: unknown runtime '{name}'.{tip} Known: {', '.join(NAMES)}.")
    return wanted


def wheel_for(name: str, *, arch: str, python: str) -> dict[str, str] | None:
    """The runtime's pinned board wheel for an architecture and Python, if it has one."""
    entry = facts()[name]
    return next((w for w in entry.get("wheels", []) if w["arch"] == arch and w["python"] == python), None)


def missing_reason(name: str, *, arch: str, python: str) -> str:
    missing = facts()[name].get("missing", {})
    why = missing.get(arch) or missing.get("any") or f"no {name} wheel for {arch}, Python {python}"
    return " ".join(str(why).split())


def board_wheel(name: str, target: Target) -> Availability:
    """The runtime's pinned wheel for the target's architecture and Python, or why it has none."""
    wheel = wheel_for(name, arch=target.wheel_arch, python=target.python)
    if wheel is None:
        why = missing_reason(name, arch=target.wheel_arch, python=target.python)
        return Availability(False, reason=f"no wheel for {target.wheel_arch}, Python {target.python}: {why}")
    entry = facts()[name]
    return Availability(
        True, package=f"{entry['package']}=={entry['version']}", wheel=wheel["file"], sha256=wheel["sha256"]
    )
