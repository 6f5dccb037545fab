"""The package store: every .deb and wheel edgepack fetched, by sha256, outside any clone.

Shared by every clone, target and CI run on the machine (cargo's registry
cache and uv's cache play the same part): a fresh clone on a machine that has
built before fetches nothing. Each entry is ``sha256/<aa>/<sha256>/<file name>``,
so a wheel keeps the name pip needs. Every read of the bytes re-hashes the file: a
corrupt entry (a disk fault, an interrupted copy by hand) is removed and fetched
again. The check each build makes before planning (is every locked file here?)
looks without reading (``present``): hashing every .deb and wheel of every lock
took a quarter of a no-change rebuild.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgepack.errors import EdgepackError
from edgepack.fsutil import sha256_file

STORE_ENV = "EDGEPACK_STORE"
BUILT_ENV = "EDGEPACK_BUILT"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def default_root() -> Path:
    """``$EDGEPACK_STORE``, else ``$XDG_CACHE_HOME/edgepack/store``, else ``~/.cache/edgepack/store``."""
    if configured := os.environ.get(STORE_ENV):
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "edgepack" / "store"


def built_root() -> Path | None:
    """Where this machine keeps what edgepack built from locked inputs, for every clone to reuse.

    ``$EDGEPACK_BUILT``, else ``built/`` beside the package store; ``off`` keeps
    each project's builds to itself (the reproducibility tests build twice).
    Entries are keyed like the project's own (every input hashed, the code
    that builds included) and verified by sha256 where they are read.
    """
    configured = os.environ.get(BUILT_ENV, "")
    if configured.lower() in {"off", "0", "no", "none"}:
        return None
    return Path(configured).expanduser() if configured else default_root().parent / "built"


@dataclass(frozen=True)
class Store:
    root: Path

    @classmethod
    def default(cls) -> Store:
        return cls(default_root())

    def _folder(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError(f"{sha256!r} is not a sha256 hex digest")
        return self.root / "sha256" / sha256[:2] / sha256

    def get(self, sha256: str) -> Path | None:
        """The stored file with this sha256, verified now; None when absent or corrupt (then removed)."""
        folder = self._folder(sha256)
        files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        if len(files) == 1 and sha256_file(files[0]) == sha256:
            return files[0]
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        return None

    def present(self, sha256: str) -> Path | None:
        """The stored file with this sha256, unread: the cheap check a no-change build makes (every lock's
        files there?). Whoever uses the bytes reads them with ``get``, which verifies and re-fetches."""
        folder = self._folder(sha256)
        files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        return files[0] if len(files) == 1 and files[0].stat().st_size > 0 else None

    def has(self, sha256: str) -> bool:
        return self.get(sha256) is not None

    def put(self, source: Path, *, sha256: str, name: str) -> Path:
        """Move (or copy, across filesystems) ``source`` in as ``name``; refuse a wrong hash."""
        actual = sha256_file(source)
        if actual != sha256:
            raise EdgepackError(
                f"storing {name} failed because its sha256 is {actual}, not the expected {sha256}."
            )
        return self._install(source, sha256=sha256, name=name, move=True)

    def adopt(self, source: Path, *, sha256: str, name: str) -> Path:
        """Copy a file already verified by the caller (``source`` stays)."""
        return self._install(source, sha256=sha256, name=name, move=False)

    def incoming(self) -> Path:
        """A scratch folder on the store's filesystem: downloads land here, then rename in."""
        base = self.root / "incoming"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="fetch-", dir=base))

    def _install(self, source: Path, *, sha256: str, name: str, move: bool) -> Path:
        folder = self._folder(sha256)
        if (found := self.get(sha256)) is not None:
            return found
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}.", dir=folder.parent))
        try:
            if move:
                shutil.move(source, tmp / name)
            else:
                shutil.copyfile(source, tmp / name)
            (tmp / name).chmod(0o644)
            tmp.chmod(0o755)
            try:
                tmp.rename(folder)
            except OSError:  # another process stored the same bytes first: theirs is as good
                if self.get(sha256) is None:
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder / name

    def entries(self) -> Iterator[Path]:
        yield from sorted((self.root / "sha256").glob("*/*/*"))
