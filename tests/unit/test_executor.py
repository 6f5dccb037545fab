"""The DAG executor: needs respected, independent steps at once, shared keys run once, failures stay local."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edgepack.errors import CommandError, ConfigError, EdgepackError
from edgepack.pipeline.executor import TargetRun, check_graph, execute_many, execute_one
from edgepack.pipeline.steps import Step, StepCache


class Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[str] = []

    def add(self, event: str) -> None:
        with self.lock:
            self.events.append(event)


def step(
    name: str,
    log: Log,
    *,
    needs: tuple[str, ...] = (),
    key: str = "",
    fail: bool = False,
    gate: threading.Event | None = None,
    waits: threading.Event | None = None,
    phase: str = "host",
) -> Step:
    def action() -> dict[str, str]:
        log.add(f"start {name}")
        if gate is not None:
            gate.set()
        if waits is not None:
            assert waits.wait(30), f"{name} waited for a step that never ran beside it"
        if fail:
            raise CommandError(f"{name} failed.", argv=["x"], returncode=1, output="")
        log.add(f"end {name}")
        return {"name": name}

    return Step(name, f"the {name} step", {"k": key or name}, action, needs=needs, phase=phase)  # type: ignore[arg-type]


def test_a_step_starts_only_after_what_it_needs(tmp_path: Path) -> None:
    log = Log()
    steps = [
        step("base", log),
        step("model", log),
        step("app", log, needs=("model",)),
        step("image", log, needs=("base", "app")),
    ]
    records = execute_one(steps, StepCache(tmp_path), jobs=2)
    assert [r.name for r in records] == ["base", "model", "app", "image"]
    order = log.events
    assert (
        order.index("end model")
        < order.index("start app")
        < order.index("end app")
        < order.index("start image")
    )
    assert order.index("end base") < order.index("start image")


def test_independent_steps_run_at_the_same_time(tmp_path: Path) -> None:
    """Each of the two steps waits until the other has started: only concurrency lets both finish."""
    log = Log()
    a_started, b_started = threading.Event(), threading.Event()
    steps = [
        step("base", log, gate=a_started, waits=b_started),
        step("deps", log, gate=b_started, waits=a_started),
    ]
    execute_one(steps, StepCache(tmp_path), jobs=2)
    assert sorted(log.events) == ["end base", "end deps", "start base", "start deps"]


def test_a_failed_target_stops_alone_and_the_others_finish(tmp_path: Path) -> None:
    log = Log()
    bad = TargetRun(
        "bad",
        [step("base", log, key="b1", fail=True), step("app", log, key="b2", needs=("base",))],
        StepCache(tmp_path),
    )
    good = TargetRun(
        "good",
        [step("base", log, key="g1"), step("app", log, key="g2", needs=("base",))],
        StepCache(tmp_path),
    )
    execute_many([bad, good], jobs=2)
    assert not bad.ok and bad.failed_step == "base" and "app" not in bad.records
    assert good.ok and [r.name for r in good.ordered_records()] == ["base", "app"]


def test_a_step_shared_by_two_targets_runs_once(tmp_path: Path) -> None:
    log = Log()
    cache = StepCache(tmp_path)
    one = TargetRun("rpi4", [step("base", log, key="same")], cache)
    two = TargetRun("rpi5", [step("base", log, key="same")], cache)
    execute_many([one, two], jobs=2)
    assert log.events.count("start base") == 1
    assert {one.records["base"].cached, two.records["base"].cached} == {True, False}


def test_image_steps_are_handed_to_the_batch_together(tmp_path: Path) -> None:
    log = Log()
    seen: list[list[str]] = []

    def batch(items):  # type: ignore[no-untyped-def]
        seen.append(sorted(run.name for run, _ in items))
        return {run.name: {"image": run.name} for run, _ in items}

    runs = [
        TargetRun(
            t,
            [
                step("app", log, key=f"{t}-app"),
                step("image", log, key=f"{t}-img", needs=("app",), phase="image"),
                step("smoke", log, key=f"{t}-smoke", needs=("image",)),
            ],
            StepCache(tmp_path),
        )
        for t in ("rpi4", "rpi5")
    ]
    execute_many(runs, jobs=2, batch=batch)
    assert seen == [["rpi4", "rpi5"]]
    assert all(
        r.ok and r.records["image"].outputs == {"image": r.name} and "smoke" in r.records for r in runs
    )


def test_the_batch_gets_the_targets_in_the_order_asked_not_as_they_became_ready(tmp_path: Path) -> None:
    """rpi5's image is ready first (no needs), rpi4's after its app: the bake file still lists rpi4, rpi5."""
    log = Log()
    seen: list[list[str]] = []

    def batch(items):  # type: ignore[no-untyped-def]
        seen.append([run.name for run, _ in items])
        return {run.name: {"image": run.name} for run, _ in items}

    rpi4 = TargetRun(
        "rpi4",
        [step("app", log, key="app"), step("image", log, key="img4", needs=("app",), phase="image")],
        StepCache(tmp_path),
    )
    rpi5 = TargetRun("rpi5", [step("image", log, key="img5", phase="image")], StepCache(tmp_path))
    execute_many([rpi4, rpi5], jobs=2, batch=batch)
    assert seen == [["rpi4", "rpi5"]]


def test_execute_one_raises_the_failure(tmp_path: Path) -> None:
    with pytest.raises(EdgepackError, match="base failed"):
        execute_one([step("base", Log(), fail=True)], StepCache(tmp_path))


def test_a_need_that_no_earlier_step_provides_is_refused() -> None:
    with pytest.raises(ConfigError, match="step 'app' needs model, which no earlier step provides"):
        check_graph([step("app", Log(), needs=("model",))])
