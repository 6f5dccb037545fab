"""Load YAML into frozen dataclasses, with file:line errors and did-you-mean.

One generic validator walks a dataclass's type hints (str, int, float, bool,
Literal, tuple[str, ...], nested dataclasses), so adding a field to a config
class is the whole change; the JSON schema is generated from the same hints.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from edgepack.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


@dataclasses.dataclass(frozen=True)
class Located:
    """A parsed YAML document with the line of every key and value."""

    data: Any
    lines: dict[tuple[str, ...], tuple[Path, int]]
    path: Path

    def over(self, base: Located) -> Located:
        """This document deep-merged over ``base`` (defaults), keeping each key's origin."""
        return Located(merge(base.data, self.data), {**base.lines, **self.lines}, self.path)


# A config file names a few hundred values; an alias chain that expands past
# this is a "billion laughs" document (258 bytes took 27 s and 350 MB before).
MAX_VALUES = 100_000


def load_yaml(path: Path) -> Located:
    """Parse a config file safely: bounded alias expansion, duplicate keys refused, file:line errors."""
    text = read_config_text(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise ConfigError(f"{path}:{line}: malformed YAML: {exc.problem}.", hint="Fix the syntax.") from None
    except yaml.reader.ReaderError as exc:  # a control character: YAML allows none
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(
            f"{path}:{line}: character {exc.character!r} is not allowed in YAML.", hint="Remove it."
        ) from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: malformed YAML: {first}.", hint="Fix the syntax.") from None
    lines: dict[tuple[str, ...], tuple[Path, int]] = {}
    budget = [MAX_VALUES]
    data = _to_python(node, (), lines, path, budget) if node is not None else {}
    return Located(data, lines, path)


def read_config_text(path: Path) -> str:
    """The file's text; a missing file, a folder, a symlink loop or bad UTF-8 is a ConfigError naming it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a YAML file.", hint="Point at the .yaml file.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}.") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}:{line}: byte 0x{raw[exc.start]:02x} at column {column} is not UTF-8.",
            hint="Save the file as UTF-8.",
        ) from None


def _to_python(
    node: yaml.Node,
    at: tuple[str, ...],
    lines: dict[tuple[str, ...], tuple[Path, int]],
    path: Path,
    budget: list[int],
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(
            f"{path}: expands to more than {MAX_VALUES} values (nested YAML aliases?).",
            hint="Write the values out, or use fewer levels of &anchors and *aliases.",
        )
    lines[at] = (path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(
                    f"{path}:{key_node.start_mark.line + 1}: merge keys ('<<') are not supported.",
                    hint="Write the keys out; a target file extends targets/defaults.yaml by itself.",
                )
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first:
                raise ConfigError(
                    f"{path}:{line}: duplicate key '{_dotted((*at, key))}' (first at line {first[key]}).",
                    hint="Keep one of them: YAML would silently take the last.",
                )
            first[key] = line
            out[key] = _to_python(value_node, (*at, key), lines, path, budget)
            lines[(*at, key)] = (path, line)  # a key's line, not its value's
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(child, (*at, str(i)), lines, path, budget) for i, child in enumerate(node.value)]
    try:
        return yaml.SafeLoader("").construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, IndexError) as exc:
        # pyyaml's own text spans several lines (the mark, a caret): keep its first
        reason = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        tag = node.tag.rsplit(":", 1)[-1]
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: !!{tag} {node.value!r}: {reason}.") from None


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings: ``over`` wins; lists are replaced, not appended."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def build(cls: type[T], data: Any, *, where: Located, at: tuple[str, ...] = ()) -> T:
    """Validate ``data`` against dataclass ``cls``; raise ConfigError at file:line."""
    if not isinstance(data, Mapping):
        _fail(where, at, f"expected a mapping for '{_dotted(at) or cls.__name__}', got {_kind(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.metadata.get("yaml", True)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            tip = (
                f" Did you mean '{_dotted((*at, close[0]))}'?"
                if close
                else f" Known keys: {', '.join(sorted(fields))}."
            )
            _fail(where, (*at, key), f"unknown key '{_dotted((*at, key))}'.{tip}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                _fail(where, at, f"missing required key '{_dotted((*at, name))}'")
            continue
        values[name] = _coerce(hints[name], data[name], where=where, at=(*at, name))
    return cls(**values)


def _coerce(hint: Any, value: Any, *, where: Located, at: tuple[str, ...]) -> Any:
    origin = get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a hint is a class, never an instance
        return build(hint, value, where=where, at=at)
    if origin is Literal:
        if value not in get_args(hint):
            allowed = ", ".join(repr(a) for a in get_args(hint))
            close = difflib.get_close_matches(str(value), [str(a) for a in get_args(hint)], n=1)
            tip = f" Did you mean '{close[0]}'?" if close else ""
            _fail(where, at, f"'{_dotted(at)}' must be one of {allowed}, got {value!r}.{tip}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            _fail(where, at, f"'{_dotted(at)}' must be a list, got {_kind(value)}")
        (item,) = [a for a in get_args(hint) if a is not Ellipsis]
        return tuple(_coerce(item, v, where=where, at=(*at, str(i))) for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(get_args(hint)):
            return None
        for option in options[:-1]:  # e.g. int | str: the first that fits wins
            try:
                return _coerce(option, value, where=where, at=at)
            except ConfigError:
                continue
        return _coerce(options[-1], value, where=where, at=at)
    return _scalar(hint, value, where=where, at=at)


def _scalar(hint: Any, value: Any, *, where: Located, at: tuple[str, ...]) -> Any:
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, bool):
        _fail(where, at, f"'{_dotted(at)}' must be an integer, got {_kind(value)}")
    if isinstance(value, hint):
        return value
    _fail(where, at, f"'{_dotted(at)}' must be {_type_name(hint)}, got {_kind(value)} ({value!r})")


def _fail(where: Located, at: tuple[str, ...], message: str) -> typing.NoReturn:
    path, line = where.lines.get(at) or where.lines.get(at[:-1]) or (where.path, 1)
    raise ConfigError(f"{path}:{line}: {message}")


def _dotted(at: tuple[str, ...]) -> str:
    return ".".join(at)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _type_name(hint: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(hint, str(hint))


def json_schema(cls: type, *, title: str = "") -> dict[str, Any]:
    """JSON schema (draft 2020-12) for a dataclass, from its type hints."""
    schema = _schema_for(cls)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    if title:
        schema["title"] = title
    return schema


def _schema_for(hint: Any) -> dict[str, Any]:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        hints = get_type_hints(hint)
        fields = [f for f in dataclasses.fields(hint) if f.init and f.metadata.get("yaml", True)]
        props = {}
        for f in fields:
            props[f.name] = _schema_for(hints[f.name])
            if f.metadata.get("doc"):
                props[f.name]["description"] = f.metadata["doc"]
        required = [
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        return {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    if origin is Literal:
        return {"enum": list(get_args(hint))}
    if origin is tuple:
        (item,) = [a for a in get_args(hint) if a is not Ellipsis]
        return {"type": "array", "items": _schema_for(item)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema_for(a) for a in get_args(hint)]}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    return {"type": simple[hint]}
