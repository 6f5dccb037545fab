"""The base stage: the board's Debian packages unpacked into a distroless rootfs.tar (the locked closure).

A target with the ``capture`` feature also gets ALSA's configuration
(``/usr/share/alsa``, Debian's libasound2-data) at the version of the
libasound that its PyAudio wheel carries: the one in the wheels' sysroot
lock, which the wheel was linked and repaired against. Without it no ALSA
device name (``default``, ``hw:1,0``, ``plughw:...``) resolves.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgepack import debian
from edgepack.debian.lock import DebianLock, DebPackage
from edgepack.debian.rootfs import DROP as ROOTFS_DROP
from edgepack.fsutil import sha256_file
from edgepack.pipeline import slim
from edgepack.pipeline.context import DEBIAN_SITE, Build, code_digest
from edgepack.pipeline.steps import Outputs, Step, key_of


def base_step(b: Build) -> Step:
    lock_path = b.project.lock_path(b.target, "debian")
    lock = with_capture_data(debian.read_lock(lock_path, target=b.target.name), b)
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


ALSA_DATA = "libasound2-data"


def capture_data(b: Build) -> DebPackage | None:
    """ALSA's configuration package for a capture target, from the sysroot lock its PyAudio was built in."""
    if "capture" not in b.target.features or "pyaudio" not in b.target.wheels:
        return None
    from edgepack.wheels import sysroot

    path = sysroot.lock_path(b.project, b.target, "sysroot")
    if not path.is_file():
        return None
    found = [p for p in debian.read_lock(path, target=b.target.name).packages if p.name == ALSA_DATA]
    return found[0] if found else None


def with_capture_data(lock: DebianLock, b: Build) -> DebianLock:
    extra = capture_data(b)
    if extra is None or any(p.name == extra.name for p in lock.packages):
        return lock
    return dataclasses.replace(lock, packages=(*lock.packages, extra))
