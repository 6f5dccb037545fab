"""Resolve the dependency closure of a few root packages from Packages indexes.

Only Pre-Depends and Depends are followed, never Recommends, and nothing is
implied by Essential or Priority: a distroless rootfs holds exactly what its
roots need to be loaded, not what a Debian system needs to be administered.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from edgepack.debian.control import (
    Dependency,
    Relation,
    compare_versions,
    parse_provides,
    parse_relations,
    satisfies,
)
from edgepack.errors import ConfigError

INDEX_FIELDS = frozenset(
    {"Package", "Version", "Architecture", "Pre-Depends", "Depends", "Provides"}
    | {"Filename", "Size", "SHA256", "Priority"}
)
# Among several providers of a virtual package, prefer the one Debian ranks
# as most basic (mawk over gawk for "awk"), then the name: deterministic.
_PRIORITY_RANK = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}
_HINT = "Check the target's Debian sources, roots and exclude lists."


@dataclass(frozen=True)
class Candidate:
    """One version of one binary package, as listed in a Packages index."""

    name: str
    version: str
    arch: str
    filename: str
    size: int
    sha256: str
    priority: str = "optional"
    depends: str = ""  # raw Pre-Depends and Depends, parsed only when reached
    provides: tuple[tuple[str, str | None], ...] = ()

    def dependencies(self) -> tuple[Dependency, ...]:
        return parse_relations(self.depends)


def candidate_from_stanza(stanza: Mapping[str, str]) -> Candidate:
    try:
        depends = ", ".join(stanza[key] for key in ("Pre-Depends", "Depends") if stanza.get(key))
        return Candidate(
            name=stanza["Package"],
            version=stanza["Version"],
            arch=stanza["Architecture"],
            filename=stanza["Filename"],
            size=int(stanza["Size"]),
            sha256=stanza["SHA256"],
            priority=stanza.get("Priority", "optional"),
            depends=depends,
            provides=parse_provides(stanza["Provides"]) if "Provides" in stanza else (),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"bad Packages stanza for {stanza.get('Package', '?')!r}: {exc}") from exc


@dataclass(frozen=True)
class PackageIndex:
    """Candidates by name (highest version first) and by virtual name provided."""

    packages: Mapping[str, tuple[Candidate, ...]]
    providers: Mapping[str, tuple[tuple[Candidate, str | None], ...]]

    @classmethod
    def from_stanzas(cls, stanzas: Iterable[Mapping[str, str]], *, arch: str) -> PackageIndex:
        """Index the stanzas of ``arch`` and ``all``; the same version in two suites counts once."""
        seen: dict[tuple[str, str], Candidate] = {}
        for stanza in stanzas:
            if stanza.get("Architecture") in (arch, "all"):
                cand = candidate_from_stanza(stanza)
                seen.setdefault((cand.name, cand.version), cand)
        by_name: dict[str, list[Candidate]] = {}
        providers: dict[str, list[tuple[Candidate, str | None]]] = {}
        for cand in seen.values():
            by_name.setdefault(cand.name, []).append(cand)
            for virtual, version in cand.provides:
                providers.setdefault(virtual, []).append((cand, version))
        return cls(
            packages={name: _highest_first(cands) for name, cands in by_name.items()},
            providers={name: tuple(provs) for name, provs in providers.items()},
        )

    def best(self, relation: Relation) -> Candidate | None:
        """The highest version of the real package ``relation.name`` that satisfies it."""
        for cand in self.packages.get(relation.name, ()):
            if satisfies(cand.version, relation):
                return cand
        return None

    def find(self, name: str, version: str) -> Candidate | None:
        return next((c for c in self.packages.get(name, ()) if c.version == version), None)


def _highest_first(cands: list[Candidate]) -> tuple[Candidate, ...]:
    def descending(a: Candidate, b: Candidate) -> int:
        return compare_versions(b.version, a.version)

    return tuple(sorted(cands, key=functools.cmp_to_key(descending)))


def resolve_closure(
    index: PackageIndex, *, roots: Sequence[str], exclude: Sequence[str]
) -> tuple[Candidate, ...]:
    """The packages needed by ``roots`` through Pre-Depends and Depends, sorted by name.

    A dependency whose alternatives are all excluded is dropped: that is what
    ``exclude`` is for (``readline-common`` depends on ``dpkg | install-info``
    only to register an info page).
    """
    excluded = frozenset(exclude)
    selected: dict[str, Candidate] = {}
    parent: dict[str, str | None] = {}
    queue: deque[Candidate] = deque()
    for root in sorted(set(roots)):
        if root in excluded:
            raise ConfigError(f"Debian package {root!r} is both a root and excluded.", hint=_HINT)
        _add(_choose(index, (Relation(root),), selected, excluded, chain=[]), None, selected, parent, queue)
    while queue:
        cand = queue.popleft()
        chain = _chain(cand.name, parent)
        for dep in cand.dependencies():
            choice = _choose(index, dep, selected, excluded, chain=chain)
            _add(choice, cand.name, selected, parent, queue)
    return tuple(sorted(selected.values(), key=lambda c: c.name))


def _add(
    cand: Candidate | None,
    why: str | None,
    selected: dict[str, Candidate],
    parent: dict[str, str | None],
    queue: deque[Candidate],
) -> None:
    if cand is None or cand.name in selected:
        return
    selected[cand.name] = cand
    parent[cand.name] = why
    queue.append(cand)


def _chain(name: str, parent: Mapping[str, str | None]) -> list[str]:
    """Root-first list of the packages that pulled ``name`` in, for error messages."""
    chain = [name]
    while (up := parent.get(chain[-1])) is not None:
        chain.append(up)
    return chain[::-1]


def _choose(
    index: PackageIndex,
    dep: Dependency,
    selected: Mapping[str, Candidate],
    excluded: frozenset[str],
    *,
    chain: list[str],
) -> Candidate | None:
    """The first available alternative of ``dep``; None when all are excluded."""
    alternatives = [rel for rel in dep if rel.name not in excluded]
    if not alternatives:
        return None
    for rel in alternatives:
        found = _satisfy(index, rel, selected, excluded)
        if found is not None:
            return found
    wanted = " | ".join(str(rel) for rel in dep)
    if not chain:
        raise ConfigError(f"Debian package {wanted!r} was not found in the sources.", hint=_HINT)
    clashes = [
        f"{n} {selected[n].version} is already selected" for n in (r.name for r in dep) if n in selected
    ]
    because = f" ({'; '.join(clashes)})" if clashes else ""
    raise ConfigError(
        f"resolving Debian packages failed because {' -> '.join(chain)} depends on {wanted!r}, "
        f"which no package in the sources satisfies{because}.",
        hint=_HINT,
    )


def _satisfy(
    index: PackageIndex, rel: Relation, selected: Mapping[str, Candidate], excluded: frozenset[str]
) -> Candidate | None:
    """A real package, else a provider, that satisfies ``rel``; already selected ones win."""
    chosen = selected.get(rel.name)
    if chosen is not None:
        return chosen if satisfies(chosen.version, rel) else None
    real = index.best(rel)
    if real is not None:
        return real
    providers = [
        cand
        for cand, provided in index.providers.get(rel.name, ())
        if cand.name not in excluded and satisfies(provided, rel)
    ]
    for cand in providers:
        if selected.get(cand.name) == cand:
            return cand
    providers = [c for c in providers if c.name not in selected]  # another version is already in
    providers.sort(key=lambda c: (_PRIORITY_RANK.get(c.priority, 9), c.name, index.packages[c.name].index(c)))
    return providers[0] if providers else None
