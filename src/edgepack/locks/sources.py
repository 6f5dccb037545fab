"""Sources in order, per lock: the store, then the lock's mirrors, then Debian's snapshot archive.

A file is fetched by its path in the archive (the ``Filename`` of the Packages
index, which the lock keeps) and accepted only with the lock's sha256: the same
bytes a signed index named when the lock was written, whichever server serves
them. A server that cannot be reached is skipped with one line, once.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from edgepack.locks.store import Store

SNAPSHOT_ENV = "EDGEPACK_DEBIAN_SNAPSHOT"
# Debian's permanent archive: every version ever published, by the time it was
# current (https://snapshot.debian.org/). {archive}: debian, debian-security.
SNAPSHOT_DEFAULT = "https://snapshot.debian.org/archive/{archive}/{resolved}/"
_DEB_LINE = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(?P<uri>\S+)\s+\S+")
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Wanted:
    """One file to have in the store: its sha256, path under a mirror's root and file name."""

    sha256: str
    path: str
    name: str
    label: str  # "linux-libc-dev 6.1.192-2", for messages


def mirror_roots(sources: Sequence[str]) -> list[str]:
    """The archive root of each apt ``deb`` line, in order, once each."""
    roots: list[str] = []
    for line in sources:
        match = _DEB_LINE.match(line.strip())
        if match and (uri := match["uri"].rstrip("/")) not in roots:
            roots.append(uri)
    return roots


def snapshot_roots(sources: Sequence[str], *, resolved: str) -> tuple[list[str], str]:
    """The snapshot archive's roots for the mirrors' archives at the lock's time; or why none.

    ``$EDGEPACK_DEBIAN_SNAPSHOT``: a template with {archive} and {resolved}, or
    ``none`` to never ask it (a machine that cannot reach it).
    """
    template = os.environ.get(SNAPSHOT_ENV, SNAPSHOT_DEFAULT).strip()
    if template.lower() in ("", "none", "off"):
        return [], f"the snapshot archive is off (${SNAPSHOT_ENV}=none)"
    if not resolved:
        return [], "the lock records no resolve time (refresh it once to add one)"
    archives = [root.rsplit("/", 1)[-1] for root in mirror_roots(sources)]
    roots = [template.format(archive=a, resolved=resolved).rstrip("/") for a in dict.fromkeys(archives)]
    return roots, ""


@dataclass
class Fetcher:
    """Fills the store from HTTP sources; remembers which servers failed."""

    store: Store
    say: Callable[[str], None]
    unreachable: set[str] = field(default_factory=set)
    requests: int = 0

    def fetch(self, wanted: Sequence[Wanted], roots: Sequence[str]) -> list[Wanted]:
        """Store every wanted file some root serves with the right sha256; return the rest."""
        left = [w for w in wanted if not self.store.has(w.sha256)]
        for root in roots:
            if not left:
                break
            left = [w for w in left if not self._try(root, w)]
        return left

    def _try(self, root: str, want: Wanted) -> bool:
        if root in self.unreachable:
            return False
        url = f"{root}/{want.path.lstrip('/')}"
        incoming = self.store.incoming()
        tmp = incoming / want.name
        try:
            self.requests += 1
            with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, tmp.open("wb") as out:
                digest = _copy_hashing(response, out)
        except urllib.error.HTTPError as exc:
            _cleanup(incoming)
            if exc.code in (403, 404, 410):
                return False  # this server does not have it: try the next one
            self._skip(root, f"HTTP {exc.code} {exc.reason}")
            return False
        except (urllib.error.URLError, OSError, ValueError) as exc:
            _cleanup(incoming)
            reason = getattr(exc, "reason", exc)
            self._skip(root, str(reason))
            return False
        if digest != want.sha256:
            _cleanup(incoming)
            self.say(f"  {url}: sha256 {digest[:12]}... is not the locked {want.sha256[:12]}...: not used")
            return False
        self.store.put(tmp, sha256=want.sha256, name=want.name)
        _cleanup(incoming)
        return True

    def _skip(self, root: str, reason: str) -> None:
        self.unreachable.add(root)
        self.say(f"  skipped {root}: {reason}")


def _copy_hashing(response: IO[bytes], out: IO[bytes]) -> str:
    h = hashlib.sha256()
    while block := response.read(1 << 20):
        h.update(block)
        out.write(block)
    return h.hexdigest()


def _cleanup(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
