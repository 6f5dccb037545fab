"""What a target's image leaves out: its ``prune`` globs and the ``unused`` groups its features allow.

Pure functions over the typed target (no I/O but ``remove``): the base step
drops the rootfs globs while it unpacks the Debian packages, the deps step
removes the site-packages globs after pip; each step's inputs name the groups
(so ``--dry`` shows them) and its outputs list what each group removed.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from edgepack.config import Target, UnusedGroup
from edgepack.pipeline.steps import digest

PRUNE = "prune"  # the target's plain `prune` globs (tests, headers, tools), as a group of their own


def applied(target: Target) -> tuple[UnusedGroup, ...]:
    """The unused groups this target leaves out: all but those a feature of the target needs."""
    return tuple(g for g in target.unused if g.unless is None or g.unless not in target.features)


def kept(target: Target) -> tuple[UnusedGroup, ...]:
    """The groups a feature keeps (the allow-list): shown in the plan beside what goes."""
    return tuple(g for g in target.unused if g.unless is not None and g.unless in target.features)


def site_groups(target: Target) -> dict[str, tuple[str, ...]]:
    """Site-packages globs by group, the target's ``prune`` first."""
    groups = {PRUNE: target.prune} if target.prune else {}
    groups.update({g.name: g.site for g in applied(target) if g.site})
    return groups


def rootfs_globs(target: Target) -> tuple[str, ...]:
    return tuple(glob for g in applied(target) for glob in g.rootfs)


def inputs(globs: dict[str, tuple[str, ...]] | tuple[str, ...], target: Target) -> dict[str, str]:
    """A step's key inputs for what it leaves out: the group names (readable in --dry), the globs' digest."""
    flat = [f"{k}:{' '.join(v)}" for k, v in globs.items()] if isinstance(globs, dict) else list(globs)
    names = [g.name for g in applied(target)]
    keep = [f"{g.name} (for {g.unless})" for g in kept(target)]
    out = {"unused": " ".join(names) or "none", "unused.globs": digest(*flat)}
    if keep:
        out["kept for features"] = " ".join(keep)
    return out


def remove(tree: Path, patterns: Sequence[str]) -> list[str]:
    """Remove what matches ``patterns`` (globs relative to ``tree``); return what went, pattern by pattern."""
    removed = []
    for pattern in patterns:
        for path in sorted(tree.glob(pattern)):
            if not (path.exists() or path.is_symlink()):
                continue  # inside a folder an earlier pattern removed
            removed.append(path.relative_to(tree).as_posix())
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    return removed


def remove_groups(tree: Path, groups: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """``remove`` group by group: what each group took out (the step's record of it)."""
    return {name: remove(tree, globs) for name, globs in groups.items()}
