"""Debian control-file syntax: stanzas, relation fields and version order.

Pure functions, no I/O: the Packages index that apt downloads is parsed here
rather than asked of apt, because apt with an empty dpkg status would pull the
whole Essential set (perl, dpkg, apt) into the closure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# A field starts at column 0 (not a comment); continuation lines start with a blank.
_FIELD = re.compile(r"^([^\s:#][^:\n]*):[ \t]*(.*(?:\n[ \t].*)*)", re.MULTILINE)

Op = Literal["<<", "<=", "=", ">=", ">>"]

# "<" and ">" are obsolete spellings of "<=" and ">=" (Debian Policy 7.1).
_OPS: dict[str, Op] = {"<<": "<<", "<=": "<=", "=": "=", ">=": ">=", ">>": ">>", "<": "<=", ">": ">="}
_RELATION = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9+.\-]*)(?::(?P<qual>[a-z0-9\-]+))?"
    r"\s*(?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^)\s]+)\s*\))?"
    r"\s*(?:\[[^\]]*\])?\s*(?:<[^>]*>\s*)*$"
)


@dataclass(frozen=True)
class Relation:
    """One alternative of a dependency, e.g. ``libc6 (>= 2.34)``."""

    name: str
    op: Op | None = None
    version: str | None = None

    def __str__(self) -> str:
        return self.name if self.op is None else f"{self.name} ({self.op} {self.version})"


# A dependency is a tuple of alternatives: "a | b (>= 1)".
Dependency = tuple[Relation, ...]


def parse_stanzas(text: str, *, keep: frozenset[str] | None = None) -> Iterator[dict[str, str]]:
    """Yield the paragraphs of a control file as {field: value}.

    ``keep`` limits the fields stored: the arm64 index is about 50 MB, and
    only a dozen fields matter for resolution. Continuation lines stay in the
    value, joined by newlines.
    """
    for block in _PARAGRAPH_BREAK.split(text):
        stanza = {key: value.strip() for key, value in _FIELD.findall(block) if keep is None or key in keep}
        if stanza:
            yield stanza


def parse_relations(field: str) -> tuple[Dependency, ...]:
    """Parse a Depends-like field into dependencies of alternatives.

    Architecture qualifiers (``python3:any``) are dropped: a lock covers a
    single architecture plus ``all``, so every candidate is installable.
    """
    deps: list[Dependency] = []
    for group in field.split(","):
        if not group.strip():
            continue
        deps.append(tuple(_parse_relation(alt) for alt in group.split("|")))
    return tuple(deps)


def _parse_relation(text: str) -> Relation:
    match = _RELATION.match(" ".join(text.split()))
    if match is None:
        raise ValueError(f"not a package relation: {text.strip()!r}")
    op = match["op"]
    return Relation(match["name"], _OPS[op] if op else None, match["version"])


def parse_provides(field: str) -> tuple[tuple[str, str | None], ...]:
    """``Provides: a, b (= 1.0)`` -> ((a, None), (b, "1.0"))."""
    return tuple((rel.name, rel.version) for (rel, *_rest) in parse_relations(field))


def satisfies(version: str | None, relation: Relation) -> bool:
    """Whether ``version`` meets the relation's constraint (None: unversioned)."""
    if relation.op is None:
        return True
    if version is None or relation.version is None:
        return False  # an unversioned Provides never satisfies a versioned dependency
    order = compare_versions(version, relation.version)
    return {
        "<<": order < 0,
        "<=": order <= 0,
        "=": order == 0,
        ">=": order >= 0,
        ">>": order > 0,
    }[relation.op]


def compare_versions(a: str, b: str) -> int:
    """dpkg's version order: -1, 0 or 1 (epoch, then upstream, then revision)."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def _split_version(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.partition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
    return int(epoch or 0), upstream, revision


def _char_order(char: str) -> int:
    # "~" sorts before everything, even the end of the string; letters before
    # other characters (deb-version(7)).
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternate non-digit and digit runs."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _char_order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            cb = _char_order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ca != cb:
                return -1 if ca < cb else 1
            i, j = i + 1, j + 1
        start_i, start_j = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[start_i:i] or 0), int(b[start_j:j] or 0)
        if na != nb:
            return -1 if na < nb else 1
    return 0
