"""Inventory validation (file:line, did-you-mean), --host parsing, ssh command lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepack.device.inventory import load_inventory, parse_host
from edgepack.device.ssh import known_host_pattern, ssh_argv
from edgepack.errors import ConfigError

GOOD = """\
defaults:
  user: pi
  key: keys/fleet
  target: rpi4
boards:
  kitchen:
    address: 192.168.1.20
    labels: [canary, lab]
  garage:
    address: garage.local
    port: 2222
    mode: bundle
    labels: [lab]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "boards.yaml"
    path.write_text(text)
    return path


def test_an_inventory_loads_with_defaults_and_paths_relative_to_it(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD), targets=["rpi4"])
    kitchen, garage = inv.boards
    assert (kitchen.name, kitchen.user, kitchen.port, kitchen.mode) == ("kitchen", "pi", 22, "docker")
    assert kitchen.key == str(tmp_path / "keys" / "fleet")
    assert kitchen.known_hosts == str(Path("~/.ssh/known_hosts").expanduser())
    assert garage.destination == "pi@garage.local:2222" and garage.mode == "bundle"
    assert [b.name for b in inv.select(labels=["canary"])] == ["kitchen"]
    assert [b.name for b in inv.select(names=["garage", "kitchen"])] == ["garage", "kitchen"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace("    port: 2222", "    prot: 2222"),
            r"boards.yaml:11: unknown key 'boards.garage.prot'. Did you mean 'boards.garage.port'\?",
        ),
        (GOOD.replace("  user: pi", "  usr: pi"), r"boards.yaml:2: unknown key 'defaults.usr'. Did you mean"),
        (
            GOOD.replace("port: 2222", "port: many"),
            r"boards.yaml:11: 'boards.garage.port' must be an integer",
        ),
        (
            GOOD.replace("mode: bundle", "mode: bundel"),
            r"must be one of 'docker', 'bundle'.*Did you mean 'bundle'",
        ),
        (
            GOOD.replace("  target: rpi4", "  target: rpi5"),
            r"boards.yaml:4: board 'kitchen' has unknown target",
        ),
        (GOOD.replace("192.168.1.20", "-oProxyCommand=x"), r"is not a host name or IP"),
        (GOOD.replace("boards:", "bords:"), r"an inventory needs a 'boards:' mapping"),
    ],
)
def test_bad_inventories_name_the_line_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_inventory(write(tmp_path, text), targets=["rpi4"])


def test_an_unknown_board_name_suggests_the_closest(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD), targets=["rpi4"])
    with pytest.raises(ConfigError) as exc:
        inv.get("kitchn")
    assert "Did you mean 'kitchen'?" in exc.value.hint


@pytest.mark.parametrize(
    ("text", "user", "address", "port"),
    [
        ("pi@10.0.0.5", "pi", "10.0.0.5", 22),
        ("root@board.local:2222", "root", "board.local", 2222),
        ("pi@[fe80::1]:2200", "pi", "fe80::1", 2200),
    ],
)
def test_host_one_offs(text: str, user: str, address: str, port: int) -> None:
    spec = parse_host(text, target="rpi4", key="/k")
    assert (spec.user, spec.address, spec.port, spec.target, spec.key) == (user, address, port, "rpi4", "/k")


def test_a_malformed_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="not of the form user@address"):
        parse_host("pi@host:port:x", target="rpi4")


def test_ssh_argv_is_strict_and_non_interactive() -> None:
    spec = parse_host("pi@[fe80::1]:2200", target="rpi4", key="/keys/k", known_hosts="/kh")
    argv = ssh_argv(spec, "uname -m")
    assert argv[:7] == ["ssh", "-T", "-p", "2200", "-l", "pi", "-i"]
    for option in (
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        "UserKnownHostsFile=/kh",
        "UpdateHostKeys=no",
        "IdentitiesOnly=yes",
        "GlobalKnownHostsFile=/dev/null",
    ):
        assert option in argv
    assert argv[-3:] == ["--", "fe80::1", "uname -m"]
    assert known_host_pattern(spec) == "[fe80::1]:2200"
    assert known_host_pattern(parse_host("pi@h", target="rpi4")) == "h"
