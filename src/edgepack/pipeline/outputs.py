"""What a build leaves where people look: build/<target>/ holds the image, model, smoke input and run.sh.

    build/<target>/image.tar          the smoke-tested image (docker load -i)
    build/<target>/model/model.onnx   the model baked into it (and model.json, the smoke clip)
    build/<target>/smoke/spec.json    what the smoke test ran: `python -m edgepack_runtime smoke --spec ...`
    build/<target>/run.sh             how to run the image on the board (and here, under QEMU)
    build/<target>/report.json        the build's report (pipeline.report)

Everything is written to a temporary path and renamed; files are hard links into the step cache
where they can be (no copies of the model).
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from edgepack.fsutil import atomic_path, write_text
from edgepack.pipeline.context import Build
from edgepack.pipeline.docker import run_argv
from edgepack.pipeline.steps import StepRecord

RUN_SH = """#!/bin/sh
# {target}: {description}
# The smoke-tested image of this build ({tag}), and how to run it.
#
# On the board (a {platform} Linux with Docker; 64-bit Raspberry Pi OS, Debian, ...):
#   scp {tar} user@board:   then on the board:   docker load -i image.tar
#   or, over SSH from here (resumable, checked):  edgepack device.deploy --target {target} --host user@board
#   or a whole SD card:                           edgepack flash.image --target {target}
# Then, on the board:
#   docker run --rm --read-only --network none {tag} smoke            # the smoke test
#   docker run --rm --read-only --network none {tag} info             # versions and CPU features
#   docker run --rm --read-only --network none -p 127.0.0.1:9464:9464 {tag} serve   # /metrics
# Live audio needs the sound device and its group: add  --device /dev/snd --group-add audio
#
# Here (this x86 host, under QEMU with the board's CPU), this script runs the image's command:
#   ./run.sh smoke | info | bench | transcribe FILE ...
set -eu
cd "$(dirname "$0")"
docker image inspect {tag} >/dev/null 2>&1 || docker load -i image.tar
exec {run} "$@"
"""


def publish_outputs(b: Build, records: list[StepRecord]) -> Path:
    """Hard-link the image tar, the model and the smoke spec into build/<target>/ and write run.sh."""
    by_name = {r.name: r.outputs for r in records}
    image, app = by_name["image"], by_name["app"]
    out = b.out_dir
    tar = out / "image.tar"
    with atomic_path(tar) as tmp:
        tmp.unlink()
        os.link(image["tar"], tmp)
    opt = Path(app["root"]) / "opt" / "edgepack"
    for part in ("model", "smoke"):
        _link_tree(opt / part, out / part)
    t = b.target
    run = run_argv(image=image["tag"], platform=t.platform, qemu_cpu=t.qemu_cpu, memory_mb=t.memory_mb)
    text = RUN_SH.format(target=t.name, description=t.description, tag=image["tag"], platform=t.platform,
                         tar=tar.relative_to(b.project.root) if tar.is_relative_to(b.project.root) else tar,
                         run=shlex.join(run))  # fmt: skip
    write_text(out / "run.sh", text)
    (out / "run.sh").chmod(0o755)
    return tar


def _link_tree(source: Path, dest: Path) -> None:
    """dest becomes a copy of source made of hard links (a report already published there stays)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        target = dest / path.relative_to(source)
        if path.is_dir():
            target.mkdir(exist_ok=True)
            continue
        with atomic_path(target) as tmp:
            tmp.unlink()
            try:
                os.link(path, tmp)
            except OSError:  # another file system: copy
                shutil.copy2(path, tmp)
