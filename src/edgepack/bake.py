"""``docker buildx bake``: the image builds of several targets from one generated file.

``invoke build --target all`` writes build/bake.json (one bake target per
board, a group ``all``) and builds the images through it, so buildx runs
them concurrently with one shared layer cache. The file is a pure function
of the image jobs, unit-tested against a golden file.

Two facts of buildx 0.13 shape this module (both verified here):

* bake has no network setting: ``"network": "none"`` is dropped from the
  file and ``--set *.network=none`` fails with "unknown key: network". A
  RUN instruction would then need the engine's bridge, which dockerd here
  runs without ("network bridge not found"). edgepack's runtime Dockerfile
  has no RUN: ADD and COPY of a context assembled on the host. Bake refuses a
  Dockerfile with RUN rather than build it with a network.
* one failing target cancels its siblings (they are not loaded), so a
  failed bake is followed by one bake per target not loaded, from the same
  file: each then fails or succeeds on its own (layers already built are
  reused from the cache).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgepack.build import ImageJob
from edgepack.errors import ConfigError

GROUP = "all"
_RUN = re.compile(r"^\s*RUN\b", re.IGNORECASE)


def bake_name(target: str) -> str:
    """Bake target names allow [A-Za-z0-9_-]; target names are file names."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", target)


def bake_file(jobs: Sequence[ImageJob]) -> dict[str, Any]:
    """The bake definition (JSON) of ``jobs``: one target each, all in the group 'all'."""
    targets: dict[str, Any] = {}
    for job in jobs:
        targets[bake_name(job.target)] = {
            "context": str(job.context),
            "dockerfile": str(job.dockerfile),
            "platforms": [job.platform],
            "tags": list(job.tags),
            "labels": dict(sorted(job.labels.items())),
            "args": dict(sorted(job.build_args.items())),
            "pull": False,  # nothing is pulled: every base is built locally
            "output": ["type=docker"],  # loaded into the engine, like buildx build --load
        }
    return {"group": {GROUP: {"targets": list(targets)}}, "target": targets}


def bake_argv(*, file: Path, targets: Sequence[str], metadata: Path) -> list[str]:
    argv = ["docker", "buildx", "bake", "--builder", "default", "--file", str(file)]
    argv += ["--progress", "plain", "--metadata-file", str(metadata)]
    return [*argv, *(bake_name(t) for t in targets)]


def require_no_run(dockerfile: Path) -> None:
    """Refuse a Dockerfile that would need a network in bake (buildx 0.13 cannot say none)."""
    for number, line in enumerate(dockerfile.read_text().splitlines(), start=1):
        if _RUN.match(line):
            raise ConfigError(
                f"{dockerfile}:{number}: RUN in a Dockerfile built by buildx bake, which (0.13) cannot "
                "set --network none.",
                hint="Do the work on the host (edgepack's steps) and ADD/COPY the result.",
            )
