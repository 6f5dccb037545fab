"""The base stage: the board's Debian packages unpacked into a distroless rootfs.tar (the locked closure)."""

from __future__ import annotations

from pathlib import Path

from edgepack import debian
from edgepack.debian.rootfs import DROP as ROOTFS_DROP
from edgepack.fsutil import sha256_file
from edgepack.pipeline import slim
from edgepack.pipeline.context import DEBIAN_SITE, Build, code_digest
from edgepack.pipeline.steps import Outputs, Step, key_of


def base_step(b: Build) -> Step:
    lock_path = b.project.lock_path(b.target, "debian")
    lock = debian.read_lock(lock_path, target=b.target.name)
    inputs = {"debian.lock": lock.digest(), "code": code_digest(debian), "python": b.target.python}
    drop = ROOTFS_DROP + slim.rootfs_globs(b.target)
    if b.target.deps == "debian":  # the target's prune applies to Debian's Python modules instead of wheels
        site = slim.site_groups(b.target)
        drop += tuple(f"{DEBIAN_SITE}/{pattern}" for globs in site.values() for pattern in globs)
        inputs["prune"] = " ".join(b.target.prune)
        inputs.update(slim.inputs({**site, "rootfs": slim.rootfs_globs(b.target)}, b.target))
    else:
        inputs.update(slim.inputs(slim.rootfs_globs(b.target), b.target))
    out = b.cache_dir("base", key_of("base", inputs)) / "rootfs.tar"

    def action() -> Outputs:
        debs = debian.fetch_debs(lock, sources=b.target.debian.sources, runner=b.runner, target=b.target.name)
        debian.build_rootfs_tar(lock, debs, out=out, python=b.target.python, drop=drop)
        return {"rootfs": str(out), "bytes": out.stat().st_size, "sha256": sha256_file(out)}

    summary = f"rootfs from {len(lock.packages)} {lock.arch} Debian packages"
    return Step("base", summary, inputs, action, lambda o: Path(o["rootfs"]).is_file())
