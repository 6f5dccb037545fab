"""Plan, then execute: steps keyed by a content hash of their inputs, cached.

A step's key is known before anything runs (it hashes the step's name, its
code version and its inputs' digests), so ``--dry`` can print the whole plan
and say which steps a build would reuse. A finished step writes a stamp
(JSON) last; a stamp whose outputs are gone, or that fails its check, is a
miss. Failed or interrupted steps leave no stamp.

Builds of several targets run at once (``edgepack build --target all``) and
share the cache: a step with the same key (rpi4, rpi5 and jetson share the
base, the wheels and the model source) runs once, under a lock on its key;
the others wait for it and find its stamp.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgepack.fsutil import held, write_json

if TYPE_CHECKING:  # pipeline.shared imports this module
    from edgepack.pipeline.shared import SharedSteps

Outputs = dict[str, Any]


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() + b"\0")
    return h.hexdigest()


Phase = Literal["host", "image", "smoke"]


@dataclass(frozen=True)
class Step:
    """One cached unit of work; it names the steps it needs (of its target): no plan has a shape by position.

    ``phase``: ``host`` steps run on the host (concurrently where ``needs``
    allows), ``image`` steps build an image (several targets' are baked
    together), ``smoke`` steps run the image.
    """

    name: str
    summary: str
    inputs: Mapping[str, str]  # label -> digest or value, in the key and in --dry
    action: Callable[[], Outputs] = field(compare=False, repr=False)
    still_valid: Callable[[Outputs], bool] = field(default=lambda _: True, compare=False, repr=False)
    cacheable: bool = True
    needs: tuple[str, ...] = ()
    phase: Phase = "host"

    @property
    def key(self) -> str:
        return key_of(self.name, self.inputs)


def key_of(name: str, inputs: Mapping[str, str]) -> str:
    """A step's cache key, before the step exists: a stage names its output folder by it."""
    return digest(name, *(f"{k}={v}" for k, v in sorted(inputs.items())))


@dataclass(frozen=True)
class StepRecord:
    name: str
    key: str
    cached: bool
    seconds: float
    outputs: Outputs


@dataclass(frozen=True)
class StepCache:
    root: Path
    # The machine's shared steps (pipeline.shared.SharedSteps): taken on a miss, fed after a run.
    shared: SharedSteps | None = None

    def folder(self, step: Step) -> Path:
        """Where a step keeps its files (``Project.cache_dir(step.name, step.key)``)."""
        return self.root / step.name / step.key[:20]

    def stamp(self, step: Step) -> Path:
        return self.stamp_at(step.name, step.key)

    def stamp_at(self, name: str, key: str) -> Path:
        return self.root / "steps" / f"{name}-{key[:20]}.json"

    def lookup(self, step: Step) -> Outputs | None:
        path = self.stamp(step)
        if not step.cacheable or not path.is_file():
            return None
        try:
            outputs = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        return outputs if step.still_valid(outputs) else None

    def store(self, step: Step, outputs: Outputs) -> None:
        if step.cacheable:
            write_json(self.stamp(step), outputs)

    def claim(self, step: Step) -> contextlib.AbstractContextManager[None]:
        """Hold the step's key exclusively, across threads and processes."""
        return held(self.root / "locks" / f"{step.name}-{step.key[:20]}.lock")

    def run(self, step: Step) -> tuple[Outputs, bool]:
        """The step's outputs and whether they came from the cache; runs it at most once per key."""
        outputs = self.lookup(step)
        if outputs is not None:
            return outputs, True
        if not step.cacheable:
            return step.action(), False
        with self.claim(step):
            outputs = self.lookup(step)  # another build may have made it while this one waited
            if outputs is not None:
                return outputs, True
            if (
                self.shared is not None
                and (outputs := self.shared.adopt(step, self.folder(step))) is not None
            ):
                self.store(step, outputs)  # made by another clone on this machine
                return outputs, True
            outputs = step.action()
            self.store(step, outputs)
            if self.shared is not None:
                self.shared.publish(step, outputs, self.folder(step))
            return outputs, False


def cached_state(steps: list[Step], cache: StepCache) -> dict[str, bool]:
    """Which steps a build would reuse right now (for --dry)."""
    return {s.name: cache.lookup(s) is not None for s in steps}


def execute(
    steps: list[Step],
    cache: StepCache,
    *,
    on_start: Callable[[Step, bool], None] = lambda s, c: None,
    jobs: int = 2,
) -> list[StepRecord]:
    """One target's steps through the one executor (``pipeline.executor``); the first failure is raised.

    Steps that name no needs at all (a hand-made list) run one after another, in order.
    """
    from edgepack.pipeline.executor import Events, execute_one

    if not any(step.needs for step in steps):
        steps = [replace(step, needs=(steps[i - 1].name,) if i else ()) for i, step in enumerate(steps)]
    events = Events(started=lambda _target, step, hit: on_start(step, hit))
    return execute_one(steps, cache, jobs=jobs, events=events)
