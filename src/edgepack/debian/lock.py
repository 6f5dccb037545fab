"""The Debian lock: exact package versions and hashes a rootfs is built from.

Written by ``edgepack lock``, committed, and read by every build, so that a
build on a fresh machine takes the same bytes as the one that was tested.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgepack.errors import EdgepackError, InputError
from edgepack.fsutil import write_text

LOCK_FORMAT = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PACKAGE_KEYS = frozenset({"name", "version", "arch", "sha256", "filename", "size"})
_LOCK_KEYS = frozenset({"format", "suite", "arch", "roots", "exclude", "packages"})
_OPTIONAL_KEYS = frozenset({"resolved"})


@dataclass(frozen=True)
class DebPackage:
    """One locked package: what to download and the hash it must have."""

    name: str
    version: str
    arch: str
    sha256: str
    filename: str  # path in the archive's pool, from the Packages index
    size: int


@dataclass(frozen=True)
class DebianLock:
    suite: str
    arch: str
    roots: tuple[str, ...]
    exclude: tuple[str, ...]
    packages: tuple[DebPackage, ...]
    # When the index was read (UTC, snapshot.debian.org's form 20261201T120000Z):
    # where the snapshot archive has these exact versions. Not part of the digest.
    resolved: str = ""

    def to_json(self) -> dict[str, Any]:
        """The canonical form: roots, exclude and packages sorted by name."""
        extra = {"resolved": self.resolved} if self.resolved else {}
        return {
            **extra,
            "format": LOCK_FORMAT,
            "suite": self.suite,
            "arch": self.arch,
            "roots": sorted(self.roots),
            "exclude": sorted(self.exclude),
            "packages": [asdict(p) for p in sorted(self.packages, key=lambda p: p.name)],
        }

    def digest(self) -> str:
        """sha256 of the canonical JSON: a cache key for everything built from the lock."""
        content = {k: v for k, v in self.to_json().items() if k != "resolved"}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def write_lock(path: Path, lock: DebianLock) -> None:
    """Write the canonical JSON, indented so that a refresh reads well in a diff."""
    if not lock.packages:
        raise EdgepackError(f"writing {path} failed because the lock lists no packages.")
    write_text(path, json.dumps(lock.to_json(), indent=2, sort_keys=True) + "\n")


def read_lock(path: Path, *, target: str = "<name>") -> DebianLock:
    """Load and validate a lock; a missing or malformed file is an InputError naming it."""
    hint = f"Refresh it, run: edgepack lock --target {target}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"reading the Debian lock failed because {path} does not exist.", hint=hint
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"reading the Debian lock failed because {path} is not valid JSON: {exc}.", hint=hint
        ) from exc
    try:
        return _lock_from_json(data)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"reading the Debian lock failed because {path} is malformed: {exc}.", hint=hint
        ) from exc


def _lock_from_json(data: Any) -> DebianLock:
    _check_keys(data, _LOCK_KEYS, where="the lock", optional=_OPTIONAL_KEYS)
    if data["format"] != LOCK_FORMAT:
        raise ValueError(f"format {data['format']!r} is not {LOCK_FORMAT}")
    packages = tuple(_package_from_json(item, index=i) for i, item in enumerate(_list(data, "packages")))
    if not packages:
        raise ValueError("it lists no packages")
    return DebianLock(
        suite=_str(data, "suite"),
        arch=_str(data, "arch"),
        roots=tuple(_str_list(data, "roots")),
        exclude=tuple(_str_list(data, "exclude")),
        packages=packages,
        resolved=str(data.get("resolved", "")),
    )


def _package_from_json(item: Any, *, index: int) -> DebPackage:
    where = f"packages[{index}]"
    _check_keys(item, _PACKAGE_KEYS, where=where)
    if not _SHA256.match(str(item["sha256"])):
        raise ValueError(f"{where}.sha256 is not a sha256 hex digest")
    if not isinstance(item["size"], int) or item["size"] < 0:
        raise ValueError(f"{where}.size is not a non-negative integer")
    fields = {key: _str(item, key) for key in ("name", "version", "arch", "sha256", "filename")}
    return DebPackage(**fields, size=item["size"])


def _check_keys(
    data: Any, expected: frozenset[str], *, where: str, optional: frozenset[str] = frozenset()
) -> None:
    if not isinstance(data, dict):
        raise TypeError(f"{where} is not a JSON object")
    if missing := sorted(expected - data.keys()):
        raise ValueError(f"{where} lacks {', '.join(missing)}")
    if unknown := sorted(data.keys() - expected - optional):
        raise ValueError(f"{where} has unknown keys {', '.join(unknown)}")


def _str(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} is not a non-empty string")
    return value


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise TypeError(f"{key!r} is not a list")
    return value


def _str_list(data: dict[str, Any], key: str) -> list[str]:
    values = _list(data, key)
    if not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{key!r} is not a list of package names")
    return values
