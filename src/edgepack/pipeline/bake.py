"""``docker buildx bake``: the image builds of several targets from one generated file.

``edgepack build --target all`` writes build/bake.json (one bake target per
board, a group ``all``) and builds the images through it, so buildx runs
them concurrently with one shared layer cache. The file is a pure function
of the image jobs, unit-tested against a golden file.

Two facts of buildx 0.13 shape this module (both verified here):

* bake has no network setting: ``"network": "none"`` is dropped from the
  file and ``--set *.network=none`` fails with "unknown key: network". A
  RUN instruction would then need the engine's bridge, which dockerd here
  runs without ("network bridge not found"). So only images whose stages
  have no RUN go through bake (ADD and COPY of a context assembled on the
  host); an image that runs something while it builds (a 32-bit board's
  bytecode, compiled by the image's own Python) is built by itself with
  ``buildx build --network none``, alongside the bake (``run_lines``).
* one failing target cancels its siblings (they are not loaded), so a
  failed bake is followed by one bake per target not loaded, from the same
  file: each then fails or succeeds on its own (layers already built are
  reused from the cache).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgepack.pipeline.image import ImageJob

GROUP = "all"
_RUN = re.compile(r"^\s*RUN\b", re.IGNORECASE)
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE)
_ARG = re.compile(r"^\s*ARG\s+(\w+)(?:=(\S*))?", re.IGNORECASE)
_COPY_FROM = re.compile(r"^\s*COPY\s+.*--from=(\S+)", re.IGNORECASE)


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


def run_lines(dockerfile: Path, build_args: Mapping[str, str]) -> list[int]:
    """Line numbers of the RUN instructions that building ``dockerfile`` with ``build_args`` executes.

    Only the stages the last one needs count (``FROM <stage>`` and
    ``COPY --from=<stage>``, with ARG values substituted): BuildKit skips the
    others, so a RUN in an unused stage needs no network.
    """
    stages: list[tuple[str, list[str], list[int]]] = []  # (name, stages it needs, RUN lines)
    defaults: dict[str, str] = {}

    def expand(text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: build_args.get(m[1], defaults.get(m[1], "")), text)

    for number, line in enumerate(dockerfile.read_text().splitlines(), start=1):
        if match := _FROM.match(line):
            stages.append(((match[2] or "").lower(), [expand(match[1]).lower()], []))
        elif not stages and (match := _ARG.match(line)):
            defaults[match[1]] = match[2] or ""
        elif stages and (match := _COPY_FROM.search(line)):
            stages[-1][1].append(expand(match[1]).lower())
        elif stages and _RUN.match(line):
            stages[-1][2].append(number)
    by_name = {name: i for i, (name, _, _) in enumerate(stages) if name}
    lines: list[int] = []
    todo, seen = [len(stages) - 1], set()
    while todo:
        i = todo.pop()
        if i in seen or i < 0:
            continue
        seen.add(i)
        lines += stages[i][2]
        todo += [by_name[n] for n in stages[i][1] if n in by_name]
    return sorted(lines)
