"""Host steps shared by every clone on the machine: taken on a miss (not run), their folder and paths
made the clone's own; steps that name another project's files, and non-host steps, are never shared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgepack.pipeline.shared import SharedSteps
from edgepack.pipeline.steps import Step, StepCache


class Clone:
    """A project folder with its own step cache, sharing the machine's steps under tmp/built."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.root = tmp / name
        self.cache = StepCache(self.root / "build/cache", shared=SharedSteps(tmp / "built/steps", self.root))


def step(calls: list[str], running: dict[str, Clone], *, extra: dict[str, Any], phase: str = "host") -> Step:
    """A step whose action writes into its folder, as every host step does, and returns its paths."""

    def action() -> dict[str, Any]:
        folder = running["clone"].cache.folder(made)
        folder.mkdir(parents=True)
        (folder / "out.txt").write_text("made once")
        calls.append(str(folder))
        return {"file": str(folder / "out.txt"), "n": 3, "list": [str(folder)], **extra}

    made = Step("deps", "writes a file", {"lock": "abc"}, action, lambda o: Path(o["file"]).is_file(),
                phase=phase)  # type: ignore[arg-type]  # fmt: skip
    return made


def test_a_second_clone_takes_the_step_from_the_machine_instead_of_running_it(tmp_path: Path) -> None:
    calls: list[str] = []
    running: dict[str, Clone] = {}
    s = step(calls, running, extra={})
    running["clone"] = first = Clone(tmp_path, "first")
    _, cached = first.cache.run(s)
    assert not cached and calls == [str(first.cache.folder(s))]
    running["clone"] = second = Clone(tmp_path, "second")
    again, cached = second.cache.run(s)
    assert cached and len(calls) == 1  # not run again
    folder = second.cache.folder(s)
    assert again == {"file": str(folder / "out.txt"), "n": 3, "list": [str(folder)]}
    assert Path(again["file"]).read_text() == "made once"
    assert json.loads(second.cache.stamp(s).read_text()) == again  # the clone's own stamp and paths


@pytest.mark.parametrize(("extra", "phase"), [({"spec": "PROJECT/models/x.yaml"}, "host"), ({}, "smoke")])
def test_a_step_naming_a_project_file_or_not_on_the_host_is_not_shared(
    tmp_path: Path, extra: dict[str, str], phase: str
) -> None:
    calls: list[str] = []
    running: dict[str, Clone] = {}
    running["clone"] = first = Clone(tmp_path, "first")
    s = step(calls, running, extra={k: v.replace("PROJECT", str(first.root)) for k, v in extra.items()},
             phase=phase)  # fmt: skip
    first.cache.run(s)
    running["clone"] = second = Clone(tmp_path, "second")
    _, cached = second.cache.run(s)
    assert not cached and len(calls) == 2


def test_off_means_no_sharing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPACK_BUILT", "off")
    assert SharedSteps.for_project(tmp_path) is None
    monkeypatch.setenv("EDGEPACK_BUILT", str(tmp_path / "b"))
    assert SharedSteps.for_project(tmp_path) == SharedSteps(tmp_path / "b" / "steps", tmp_path)
