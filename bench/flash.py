"""Benchmark: `edgepack flash.image --target rpi4`, cold and cached, and the card's sizes.

    .venv/bin/python bench/flash.py [--boot]

cold    the card's own steps from scratch: sdrootfs (unpack the locked
        Debian packages, configure, depmod) and sdimage (initramfs, FAT,
        ext4, MBR, xz, sha256, manifest). The container build's steps it
        shares (deps, model..., app) come from build/cache as for a
        developer who has run `edgepack build`; they are not timed here.
cached  the same plan again: every step a cache hit.
image   a second assembly of the image from the cached tree (what the
        reproducibility test does), with the first one's SOURCE_DATE_EPOCH
        (from the plan: a commit made meanwhile moves the default), and
        whether its bytes are the same.
boot    with --boot: the QEMU boot to the smoke result (flash.boot's path).

The machine is shared (2 cores, other work running): one run each, the load
average recorded next to the numbers. Results: bench/results/flash.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "runtime" / "src")]

from edgepack.config import Project, load_target  # noqa: E402
from edgepack.flash import layout, qemu  # noqa: E402
from edgepack.flash import steps as flash_steps  # noqa: E402
from edgepack.fsutil import write_json  # noqa: E402
from edgepack.pipeline.context import Build  # noqa: E402
from edgepack.pipeline.steps import execute  # noqa: E402
from edgepack.runner import Runner  # noqa: E402


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - t0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boot", action="store_true", help="also boot the image under QEMU")
    args = parser.parse_args()
    proj = Project(REPO)
    target = load_target(proj, "rpi4")
    card = layout.require_sdcard(target, proj)
    b = Build(target=target, project=proj, runner=Runner(echo=False), model=target.model)
    steps = flash_steps.plan(b)
    execute(steps[:-2], b.cache)  # the container build's steps: not timed
    for step in steps[-2:]:  # forget the card's own steps: a cold build
        stamp = b.cache.stamp(step)
        stamp.unlink(missing_ok=True)
    records, cold = timed(lambda: execute(steps, b.cache))
    per_step = {r.name: r.seconds for r in records[-2:]}
    again, cached = timed(lambda: execute(steps, b.cache))
    assert all(r.cached for r in again)
    image = records[-1].outputs
    with tempfile.TemporaryDirectory(dir=proj.build_dir) as tmp:
        tree = next(r for r in records if r.name == "sdrootfs").outputs
        again = Path(tmp) / "again"
        _, second = timed(
            lambda: flash_steps.make_image(
                Path(tree["tree"]),
                again,
                b=b,
                card=card,
                kernel=tree["kernel"],
                epoch=int(steps[-1].inputs["epoch"]),
            )
        )
        names = sorted(p.name for p in Path(image["image"]).parent.iterdir())
        _, different, _ = filecmp.cmpfiles(
            Path(image["image"]).parent, Path(tmp) / "again", names, shallow=False
        )
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
        "tools": {
            "mke2fs": _first_line(["mkfs.ext4", "-V"]),
            "qemu": _first_line(["qemu-system-aarch64", "--version"]),
        },
        "seconds": {
            "cold": cold,
            **{f"cold_{k}": v for k, v in per_step.items()},
            "cached": cached,
            "image_again": second,
        },
        "same_bytes_twice": different == [],
        "bytes": {
            "img": image["bytes"],
            "img_xz": image["xz_bytes"],
            "xz_preset": card.xz_preset,
            "card_mb": card.card_mb,
        },
    }
    if args.boot:
        with tempfile.TemporaryDirectory() as tmp:
            booted, wall = timed(
                lambda: qemu.boot(
                    Path(image["image"]),
                    workdir=Path(tmp),
                    cpu=target.qemu_cpu,
                    timeout_s=card.boot_timeout_s,
                    runner=Runner(echo=False),
                )
            )
            result["seconds"]["boot_to_smoke"] = booted.seconds
            result["seconds"]["boot_wall"] = wall
            result["boot_status"] = booted.status
    result["host"]["load_avg_end"] = os.getloadavg()
    out = REPO / "bench" / "results" / "flash.json"
    write_json(out, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")


def _first_line(argv: list[str]) -> str:
    tool = shutil.which(argv[0], path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if tool is None:
        return "missing"
    done = subprocess.run([tool, *argv[1:]], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0]


if __name__ == "__main__":
    main()
