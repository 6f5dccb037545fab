"""What ``ci.push`` requires of a build before it pushes it: a smoke test run here, and the image's source.

``push_image`` refuses a plan that is not fully cached, but a cached smoke
step is only a stamp, and CI restores stamps: a re-run, or a tag whose
commit was built on main, finds the smoke step cached and would push an
image no job smoke-tested. So the push also reads build/<target>/report.json,
which only a finished ``edgepack build`` writes and no cache holds (the
workflow removes it before its build step, with the restored image and smoke
stamps), and requires that this build ran the smoke step itself, for the
image and smoke keys about to be pushed, and tested the image the cache now
names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepack.errors import ConfigError

# The repository URL label (set by the workflow from github.server_url and github.repository)
# also links a ghcr.io package to its repository; build._labels sets it from the environment.
from edgepack.pipeline.image import IMAGE_SOURCE_ENV, SOURCE_LABEL


@dataclass(frozen=True)
class Planned:
    """What the push is about to publish: the plan's image and smoke keys, and the cached image's ID."""

    target: str
    image_key: str
    smoke_key: str
    image_id: str


def read_report(path: Path) -> Mapping[str, Any] | None:
    """A build's report.json; None when there is none (no build finished here) or it is not JSON."""
    try:
        report = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return report if isinstance(report, dict) else None


def require_smoke_run(report: Mapping[str, Any] | None, planned: Planned) -> None:
    """Refuse unless the build that wrote ``report`` ran the smoke test of exactly ``planned``."""
    name = planned.target
    rebuild = f"Run the build in the same job, just before the push: edgepack build --target {name}"
    if report is None:
        why = f"build/{name}/report.json is missing: no build finished here, so no smoke test ran for it"
        raise ConfigError(f"cannot push {name}: {why}.", hint=rebuild)
    steps = {s.get("name"): s for s in report.get("steps", []) if isinstance(s, dict)}
    smoke, image = steps.get("smoke"), steps.get("image")
    if report.get("ok") is not True or smoke is None or image is None:
        raise ConfigError(f"cannot push {name}: its report.json is not of a build that passed.", hint=rebuild)
    if (image.get("key"), smoke.get("key")) != (planned.image_key, planned.smoke_key):
        built, wanted = str(image.get("key"))[:12], planned.image_key[:12]
        why = f"the build here was of other inputs (image key {built}; the push's: {wanted})"
        raise ConfigError(f"cannot push {name}: {why}.", hint=rebuild)
    if smoke.get("cached") is not False:
        why = "the build here did not run its smoke test: it found a smoke stamp (restored from another run)"
        hint = "Build again without the restored image and smoke stamps (the workflow removes them)."
        raise ConfigError(f"cannot push {name}: {why}.", hint=hint)
    tested = (report.get("image") or {}).get("id")
    if tested != planned.image_id:
        why = f"the smoke-tested image ({tested}) is not the one the step cache names ({planned.image_id})"
        raise ConfigError(f"cannot push {name}: {why}.", hint=rebuild)


def require_source_label(labels: Mapping[str, str], *, source: str | None, target: str) -> None:
    """Refuse an image whose source label is not ``source`` (when one is asked for, as CI does)."""
    if not source:
        return
    found = labels.get(SOURCE_LABEL)
    if found != source:
        now = f"'{found}'" if found else "no such label"
        raise ConfigError(
            f"cannot push {target}: the image should carry {SOURCE_LABEL}={source} "
            f"(${IMAGE_SOURCE_ENV}); it has {now}.",
            hint=f"Build it with {IMAGE_SOURCE_ENV} set (the label is part of the image step's key).",
        )
