"""Atomic outputs: write to a temporary path next to the target, then rename.

An interrupted build or a full disk never leaves a half-written file or
folder where a finished one is expected.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(final: Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; rename it into place on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}."
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=final.parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700: unreadable once COPYed into an image
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
    try:
        yield tmp
        if is_dir and final.exists():
            shutil.rmtree(final)
        tmp.replace(final)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


@contextlib.contextmanager
def held(lock: Path) -> Iterator[None]:
    """An exclusive lock on ``lock`` (created if missing), across threads and processes.

    flock locks belong to an open file description: each caller opens the
    file itself, so two threads of one process exclude each other too. The
    kernel drops the lock when its holder dies: no stale lock to clean up.
    """
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: Path) -> str:
    """Hash of a folder's relative paths, modes and contents (order-independent).

    Bytecode caches are left out: importing a module writes one, and the build
    copies the runtime without them, so they must not change a step's key.
    """
    digest = hashlib.sha256()
    files = (p for p in root.rglob("*") if (p.is_file() or p.is_symlink()) and "__pycache__" not in p.parts)
    for path in sorted(files):
        rel = path.relative_to(root).as_posix()
        digest.update(rel.encode() + b"\0")
        if path.is_symlink():
            digest.update(b"L" + str(path.readlink()).encode())
        else:
            digest.update(b"x" if os.access(path, os.X_OK) else b"f")
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()
