"""``edgepack doctor`` and ``edgepack test``."""

from __future__ import annotations

import json
import sys

from invoke.context import Context

from edgepack.commands.boundary import command, runner
from edgepack.errors import Reported
from edgepack.host import doctor
from edgepack.ui import console
from edgepack.ui.doctor import render_checks


@command(
    name="doctor",
    help={
        "fix": "install and start what is missing (Debian 12/13, as root)",
        "json": "print the checks as JSON",
    },
)
def doctor_(c: Context, fix: bool = False, json: bool = False) -> None:
    """Check the host toolchain (docker, buildx, QEMU in binfmt_misc); --fix installs what is missing."""
    run_doctor(fix=fix, as_json=json)


@command(help={"unit": "unit tests only (no docker)", "k": "pytest -k expression"})
def test(c: Context, unit: bool = False, k: str = "") -> None:
    """Type-check (mypy), then the tests: unit, then integration with the real docker, buildx and QEMU."""
    run_tests(unit_only=unit, keyword=k)


def run_doctor(*, fix: bool, as_json: bool = False) -> None:
    checks = doctor.run_doctor(runner=runner(echo=fix and not as_json), fix=fix)
    if as_json:
        print(
            json.dumps(
                [
                    {"check": c.name, "ok": c.ok, "fixed": c.fixed, "found": c.found, "action": c.action}
                    for c in checks
                ],
                indent=2,
            )
        )
    else:
        render_checks(checks, console, fix=fix)
    if not all(c.ok for c in checks):
        raise Reported(3)


def run_tests(*, unit_only: bool, keyword: str) -> None:
    """mypy, then pytest, in this process: unit tests first (fast), then the CLI and integration tests."""
    import pytest

    type_check()
    paths = ["tests/unit"] if unit_only else ["tests/unit", "tests/cli", "tests/integration"]
    code = pytest.main([*paths, *(["-k", keyword] if keyword else [])])
    if code != 0:
        raise Reported(int(code))


def type_check() -> None:
    """mypy with pyproject.toml's [tool.mypy] (strict; its ``files``): its errors fail the tests."""
    from mypy import api as mypy

    report, errors, status = mypy.run([])
    sys.stdout.write(report)  # one line on success
    sys.stderr.write(errors)
    if status != 0:
        raise Reported(status)
