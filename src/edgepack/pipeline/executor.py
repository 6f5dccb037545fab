"""One executor for one target and many: a DAG scheduler over the steps of every requested target.

A step runs when the steps it ``needs`` (of its target) have finished; up to
``jobs`` run at once, whatever their target. A step shared by several targets
(same cache key: rpi4, rpi5 and the Jetson share the base, the wheels and the
model source) runs once: the others wait on its key's lock and find its stamp
(``StepCache.run``). A failed step stops its own target only: its remaining
steps are skipped and every other target goes on.

Image steps (phase ``image``) can be handed to a ``batch`` (buildx bake builds
several targets' images in one call): they are held until no host step is
left to run, then given to it together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from edgepack.errors import ConfigError, EdgepackError
from edgepack.pipeline.steps import Outputs, Step, StepCache, StepRecord


@dataclass(frozen=True)
class Events:
    """What the executor reports while it runs (called from worker threads, one call at a time)."""

    started: Callable[[str, Step, bool], None] = lambda target, step, cached: None  # cached: from the stamp
    failed: Callable[[str, Step, EdgepackError], None] = lambda target, step, error: None


NO_EVENTS = Events()


@dataclass
class TargetRun:
    """One target's progress: its steps, what ran, and the first failure."""

    name: str
    steps: list[Step]
    cache: StepCache
    records: dict[str, StepRecord] = field(default_factory=dict)
    failed_step: str = ""
    error: EdgepackError | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, step: str, error: EdgepackError) -> None:
        if self.error is None:
            self.failed_step, self.error = step, error

    def ordered_records(self) -> list[StepRecord]:
        return [self.records[s.name] for s in self.steps if s.name in self.records]


# A batch builds several targets' image steps at once: {target: outputs or the error}.
Batch = Callable[[Sequence[tuple[TargetRun, Step]]], Mapping[str, Outputs | EdgepackError]]


def check_graph(steps: Sequence[Step]) -> None:
    """Every need names an earlier step of the same plan (so the graph has no cycle)."""
    seen: set[str] = set()
    for step in steps:
        if step.name in seen:
            raise ConfigError(f"the plan has two steps called {step.name!r}.")
        unknown = [n for n in step.needs if n not in seen]
        if unknown:
            raise ConfigError(
                f"step {step.name!r} needs {', '.join(unknown)}, which no earlier step provides."
            )
        seen.add(step.name)


def execute_many(
    runs: Sequence[TargetRun],
    *,
    jobs: int,
    events: Events = NO_EVENTS,
    batch: Batch | None = None,
) -> None:
    """Run every target's steps as their needs allow, ``jobs`` at a time; failures stay with their target."""
    for run in runs:
        check_graph(run.steps)
    lock = threading.Lock()
    done: dict[tuple[str, str], bool] = {}  # (target, step) -> finished (ok or skipped)
    launched: set[tuple[str, str]] = set()
    held_images: list[tuple[TargetRun, Step]] = []
    position = {run.name: i for i, run in enumerate(runs)}

    def started(run: TargetRun, step: Step, cached: bool) -> None:
        with lock:
            events.started(run.name, step, cached)

    def failed(run: TargetRun, step: Step, error: EdgepackError) -> None:
        run.fail(step.name, error)
        with lock:
            events.failed(run.name, step, error)

    def ready() -> list[tuple[TargetRun, Step]]:
        out = []
        for run in runs:
            if not run.ok:
                continue
            for step in run.steps:
                key = (run.name, step.name)
                if key in launched:
                    continue
                if all(done.get((run.name, need)) for need in step.needs):
                    out.append((run, step))
        return out

    def work(run: TargetRun, step: Step) -> None:
        t0 = time.perf_counter()
        started(run, step, run.cache.lookup(step) is not None)
        try:
            outputs, hit = run.cache.run(step)
        except EdgepackError as exc:
            failed(run, step, exc)
            return
        finally:
            run.seconds += time.perf_counter() - t0
        run.records[step.name] = StepRecord(
            step.name, step.key, hit, round(time.perf_counter() - t0, 3), outputs
        )

    def finish_batch() -> None:
        # In the order asked, not the order they became ready: the bake file must not depend on timing.
        todo = sorted(((r, s) for r, s in held_images if r.ok), key=lambda item: position[item[0].name])
        held_images.clear()
        if not todo:
            return
        for run, step in todo:
            started(run, step, False)
        t0 = time.perf_counter()
        results = batch(todo) if batch else {}
        seconds = round(time.perf_counter() - t0, 3)
        for run, step in todo:
            outcome = results.get(run.name)
            if isinstance(outcome, EdgepackError):
                failed(run, step, outcome)
            elif outcome is not None:
                run.records[step.name] = StepRecord(step.name, step.key, False, seconds, outcome)
                done[(run.name, step.name)] = True

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="edgepack") as pool:
        running: dict[Future[None], tuple[TargetRun, Step]] = {}
        while True:
            for run, step in ready():
                launched.add((run.name, step.name))
                if batch is not None and step.phase == "image" and run.cache.lookup(step) is None:
                    held_images.append((run, step))
                    continue
                running[pool.submit(work, run, step)] = (run, step)
            if not running:
                if held_images:
                    finish_batch()
                    continue
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                run, step = running.pop(future)
                future.result()  # an unexpected exception is a bug: let it surface
                if step.name in run.records:
                    done[(run.name, step.name)] = True


def execute_one(
    steps: Sequence[Step], cache: StepCache, *, jobs: int = 2, events: Events = NO_EVENTS
) -> list[StepRecord]:
    """One target: the same executor; its first failure is raised after independent steps have finished."""
    run = TargetRun("target", list(steps), cache)
    execute_many([run], jobs=jobs, events=events)
    if run.error is not None:
        raise run.error
    return run.ordered_records()
