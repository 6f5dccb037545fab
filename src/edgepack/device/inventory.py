"""The fleet inventory: boards, how to reach them, which target each one is.

    defaults:                 # optional: applies to every board below
      user: pi
      key: keys/fleet_ed25519 # relative to this file
      known_hosts: known_hosts
      target: rpi4
    boards:
      kitchen: {address: 192.168.1.20, labels: [canary]}
      garage: {address: garage.local, port: 2222, mode: bundle}

Validated at load like the targets: unknown keys and wrong types are refused
with file:line and a suggestion. Built-in defaults live in
resources/inventory-defaults.yaml. ``--host user@addr[:port]`` makes a
one-off board with the same defaults.
"""

from __future__ import annotations

import difflib
import getpass
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, overload

from edgepack.errors import ConfigError
from edgepack.yamlconf import Located, build, load_yaml, merge

DEFAULTS_YAML = Path(__file__).resolve().parents[1] / "resources" / "inventory-defaults.yaml"
Mode = Literal["docker", "bundle"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:_-]*$")  # a host name, IPv4 or IPv6: never an ssh option
_HOST = re.compile(
    r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<addr>[^:\s]+))(?::(?P<port>\d+))?$"
)


@dataclass(frozen=True)
class BoardSpec:
    address: str = field(metadata={"doc": "host name or IP address"})
    user: str = field(metadata={"doc": "SSH user"})
    target: str = field(metadata={"doc": "edgepack target the board is (targets/NAME.yaml)"})
    port: int = field(metadata={"doc": "SSH port"})
    known_hosts: str = field(metadata={"doc": "known_hosts file the board's host key is checked against"})
    mode: Mode = field(metadata={"doc": "docker: docker load; bundle: rootfs run with chroot"})
    dir: str = field(metadata={"doc": "board folder for bundles and incoming transfers"})
    sudo: bool = field(metadata={"doc": "run docker/chroot on the board with sudo -n"})
    connect_timeout_s: int = field(metadata={"doc": "SSH connect timeout, seconds"})
    labels: tuple[str, ...] = field(metadata={"doc": "free-form tags to select boards by"})
    key: str | None = field(default=None, metadata={"doc": "private key file (default: ssh's own)"})
    name: str = field(default="", metadata={"doc": "the key under boards:", "yaml": False})

    @property
    def destination(self) -> str:
        """How people write it: user@address:port."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.user}@{host}:{self.port}"


@dataclass(frozen=True)
class _Defaults:
    """The inventory's ``defaults:`` mapping: any BoardSpec key but name and address."""

    user: str | None = None
    target: str | None = None
    port: int | None = None
    known_hosts: str | None = None
    mode: Mode | None = None
    dir: str | None = None
    sudo: bool | None = None
    connect_timeout_s: int | None = None
    labels: tuple[str, ...] | None = None
    key: str | None = None


@dataclass(frozen=True)
class Inventory:
    path: Path
    boards: tuple[BoardSpec, ...]

    def names(self) -> list[str]:
        return [b.name for b in self.boards]

    def get(self, name: str) -> BoardSpec:
        for board in self.boards:
            if board.name == name:
                return board
        close = difflib.get_close_matches(name, self.names(), n=1)
        tip = f"Did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"{self.path}: no board named '{name}'.",
            hint=f"{tip}Boards: {', '.join(self.names()) or 'none'}.",
        )

    def select(self, *, names: Sequence[str] = (), labels: Sequence[str] = ()) -> list[BoardSpec]:
        """Boards by name (in the order given), else by label (all of them); else every board."""
        if names:
            return [self.get(n) for n in names]
        chosen = [b for b in self.boards if set(labels) <= set(b.labels)]
        if not chosen:
            raise ConfigError(f"{self.path}: no board has the labels {', '.join(labels)}.")
        return chosen


def builtin_defaults() -> Located:
    return load_yaml(DEFAULTS_YAML)


def load_inventory(path: Path, *, targets: Iterable[str] = ()) -> Inventory:
    doc = load_yaml(path)
    if not isinstance(doc.data, dict) or "boards" not in doc.data:
        raise ConfigError(f"{path}:1: an inventory needs a 'boards:' mapping.", hint=f"See {__doc__}")
    unknown = set(doc.data) - {"defaults", "boards"}
    if unknown:
        key = sorted(unknown)[0]
        close = difflib.get_close_matches(key, ["defaults", "boards"], n=1)
        line = doc.lines[(key,)][1]
        raise ConfigError(
            f"{path}:{line}: unknown key '{key}'." + (f" Did you mean '{close[0]}'?" if close else "")
        )
    own = doc.data.get("defaults") or {}
    build(_Defaults, own, where=doc, at=("defaults",))
    defaults = merge(builtin_defaults().data, {k: v for k, v in own.items() if v is not None})
    boards = doc.data["boards"]
    if not isinstance(boards, dict) or not boards:
        raise ConfigError(f"{path}:{doc.lines[('boards',)][1]}: 'boards' must be a non-empty mapping.")
    known = list(targets)
    specs = tuple(_board(doc, str(name), value, defaults, known) for name, value in boards.items())
    return Inventory(path=path, boards=specs)


def _board(
    doc: Located, name: str, value: object, defaults: dict[str, object], targets: list[str]
) -> BoardSpec:
    at = ("boards", name)
    line = doc.lines[at][1]
    if not _NAME.match(name):
        raise ConfigError(f"{doc.path}:{line}: board name '{name}' must be letters, digits, '.', '_' or '-'.")
    data = merge(defaults, value) if isinstance(value, dict) else value
    spec = build(BoardSpec, data, where=doc, at=at)
    spec = replace(
        spec, name=name, key=_path(spec.key, doc.path), known_hosts=_path(spec.known_hosts, doc.path)
    )
    target_at = doc.lines.get((*at, "target")) or doc.lines.get(("defaults", "target")) or (doc.path, line)
    where = f"{doc.path}:{target_at[1]}"
    if targets and spec.target not in targets:
        close = difflib.get_close_matches(spec.target, targets, n=1)
        tip = f" Did you mean '{close[0]}'?" if close else f" Known targets: {', '.join(targets)}."
        raise ConfigError(f"{where}: board '{name}' has unknown target '{spec.target}'.{tip}")
    check_board(spec, where=f"{doc.path}:{line}")
    return spec


def check_board(spec: BoardSpec, *, where: str) -> None:
    if not _ADDRESS.match(spec.address):
        raise ConfigError(
            f"{where}: address {spec.address!r} of board '{spec.name}' is not a host name or IP."
        )
    if not _USER.match(spec.user):
        raise ConfigError(f"{where}: user {spec.user!r} of board '{spec.name}' is not a valid user name.")
    if not 0 < spec.port < 65536:
        raise ConfigError(f"{where}: port {spec.port} of board '{spec.name}' is not between 1 and 65535.")
    if not spec.dir.startswith("/") or any(c in spec.dir for c in "'\"\\$` \n"):
        raise ConfigError(f"{where}: dir {spec.dir!r} of board '{spec.name}' must be a plain absolute path.")


@overload
def _path(value: str, inventory: Path) -> str: ...
@overload
def _path(value: str | None, inventory: Path) -> str | None: ...
def _path(value: str | None, inventory: Path) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (inventory.parent / path).resolve())


def parse_host(
    text: str,
    *,
    target: str,
    key: str | None = None,
    known_hosts: str | None = None,
    mode: Mode | None = None,
) -> BoardSpec:
    """A one-off board from ``user@address[:port]`` (``[v6]:port`` for IPv6), with the built-in defaults."""
    match = _HOST.match(text.strip())
    if not match:
        raise ConfigError(f"--host {text!r} is not of the form user@address[:port].")
    data = dict(builtin_defaults().data)
    data.update(address=match["ip6"] or match["addr"], user=match["user"] or getpass.getuser(), target=target)
    if match["port"]:
        data["port"] = int(match["port"])
    if mode:
        data["mode"] = mode
    spec = build(BoardSpec, data, where=builtin_defaults())
    cwd = Path.cwd() / "--host"
    spec = replace(
        spec, name=text.strip(), key=_path(key, cwd), known_hosts=_path(known_hosts or spec.known_hosts, cwd)
    )
    check_board(spec, where=f"--host {text}")
    return spec
