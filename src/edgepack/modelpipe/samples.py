"""Recorded inputs ("samples"): real data for every stage, instead of placeholders.

A spec's ``samples`` (or ``edgepack build --samples``) lists, in order:

* ``.npz`` files of named arrays, one file one input set (``numpy.savez(path, input_ids=..., ...)``);
* folders: every ``*.npz`` inside, by name;
* ``package.module:fn``: a callable taking no argument that returns or yields dicts of numpy
  arrays (a tokenizer over a few sentences, an image preprocessor over a few pictures).

They feed the export checks, the calibration set, the validation (and its task
metric), the host reference and the smoke test (the first set). Each set is
checked against the model's inputs (names, dtypes, fixed sizes) before use,
so a wrong file fails in one line naming the sample and the input.
"""

from __future__ import annotations

import importlib
import importlib.util
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgepack.errors import ConfigError, InputError
from edgepack.fsutil import sha256_file
from edgepack.modelpipe.inputs import Feeds, require_matching
from edgepack.modelpipe.spec import ModelSpec
from edgepack.pipeline.steps import digest

MAX_SETS = 64  # more sets make validation slower, not truer: the first 64 are kept


@dataclass(frozen=True)
class Sample:
    label: str  # where it came from, for messages and the report: "samples/cat.npz", "pkg.mod:fn #3"
    feeds: Feeds


def is_callable_ref(entry: str) -> bool:
    return ":" in entry and not entry.endswith(".npz") and "/" not in entry.split(":", 1)[0]


def _files(entry: str, root: Path) -> list[Path]:
    path = (root / entry).resolve()
    if path.is_dir():
        found = sorted(path.glob("*.npz"))
        if not found:
            raise InputError(f"samples folder {entry}: no .npz file in it.", hint=_NPZ_HINT)
        return found
    if not path.is_file():
        raise InputError(f"samples file {entry} does not exist ({path}).", hint=_NPZ_HINT)
    if path.suffix != ".npz":
        raise InputError(f"samples file {entry}: expected an .npz file of named arrays.", hint=_NPZ_HINT)
    return [path]


_NPZ_HINT = "Save one input set per file: numpy.savez('x.npz', input_name=array, ...)."


def _read_npz(path: Path, shown_as: str) -> Feeds:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(f"samples file {shown_as}: not a readable .npz ({exc}).", hint=_NPZ_HINT) from None


def import_callable(ref: str, *, what: str) -> Any:
    """``package.module:fn`` imported, or a ConfigError naming ``what`` (the field or flag)."""
    module, _, attr = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{what} '{ref}' cannot be imported ({type(exc).__name__}: {str(exc)[:160]}).",
            hint="Give 'package.module:fn' of a module on the Python path (the project root is on it).",
        ) from None
    if not callable(fn):
        raise ConfigError(f"{what} '{ref}' is a {type(fn).__name__}, not a callable.")
    return fn


def _from_callable(ref: str) -> list[tuple[str, Feeds]]:
    fn = import_callable(ref, what="samples callable")
    try:
        produced = fn()
        items = list(_take(produced, MAX_SETS))
    except (InputError, ConfigError):
        raise
    except Exception as exc:  # the user's code: any error is theirs to see, in one line
        raise InputError(
            f"samples callable {ref} raised {type(exc).__name__}: {_first_line(exc)}",
            hint="Run it by hand: python -c 'import ...; print(list(fn()))'.",
        ) from None
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(v, np.ndarray) for v in item.values()):
            got = type(item).__name__ if not isinstance(item, dict) else "a dict with non-array values"
            raise InputError(
                f"samples callable {ref}: item {i} is {got}; it must yield dicts of numpy arrays "
                "({input name: array})."
            )
        out.append((f"{ref} #{i}", dict(item)))
    if not out:
        raise InputError(f"samples callable {ref} yielded nothing.")
    return out


def _first_line(exc: BaseException) -> str:
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")[:200]


def _take(produced: Any, n: int) -> Iterable[Any]:
    if isinstance(produced, dict):
        return [produced]
    if not isinstance(produced, Iterable) or isinstance(produced, str | bytes):
        raise InputError(
            f"a samples callable returned {type(produced).__name__}; it must return or yield dicts of "
            "numpy arrays."
        )
    out = []
    for item in produced:
        out.append(item)
        if len(out) >= n:
            break
    return out


def load(entries: Sequence[str], spec: ModelSpec, *, root: Path) -> list[Sample]:
    """Every sample set of ``entries``, checked against the model's inputs (at most ``MAX_SETS``)."""
    found: list[Sample] = []
    for entry in entries:
        if is_callable_ref(entry):
            pairs = _from_callable(entry)
        else:
            pairs = [(_shown(p, root), _read_npz(p, _shown(p, root))) for p in _files(entry, root)]
        for label, feeds in pairs:
            require_matching(spec, feeds, what=f"sample {label}")
            found.append(Sample(label, feeds))
    return found[:MAX_SETS]


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)


def key(entries: Sequence[str], root: Path) -> str:
    """What the samples contribute to a cache key: the files' digests, a callable's module source."""
    parts = []
    for entry in entries:
        if is_callable_ref(entry):
            module = entry.split(":", 1)[0]
            try:
                spec = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                spec = None
            origin = Path(spec.origin) if spec and spec.origin and spec.origin != "built-in" else None
            parts.append(f"{entry}={sha256_file(origin) if origin and origin.is_file() else 'unknown'}")
            continue
        path = (root / entry).resolve()
        if path.is_dir():
            parts += [f"{p.name}={sha256_file(p)}" for p in sorted(path.glob("*.npz"))]
        else:
            parts.append(f"{entry}={sha256_file(path) if path.is_file() else 'missing'}")
    return digest(*parts)
