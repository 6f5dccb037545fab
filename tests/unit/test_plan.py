from __future__ import annotations

from pathlib import Path

import pytest

from edgepack.pipeline.steps import Step, StepCache, cached_state, execute


def make(name: str, calls: list[str], *, inputs: dict[str, str] | None = None, valid: bool = True) -> Step:
    def action() -> dict[str, str]:
        calls.append(name)
        return {"out": name}

    return Step(name, "s", inputs or {"x": "1"}, action, lambda _: valid)


def test_second_execution_reuses_every_step(tmp_path: Path) -> None:
    cache, calls = StepCache(tmp_path), []
    steps = [make("a", calls), make("b", calls)]
    first = execute(steps, cache)
    second = execute(steps, cache)
    assert calls == ["a", "b"]
    assert [r.cached for r in first] == [False, False]
    assert [r.cached for r in second] == [True, True]
    assert second[0].outputs == {"out": "a"}


def test_changed_input_changes_key_and_reruns(tmp_path: Path) -> None:
    cache, calls = StepCache(tmp_path), []
    execute([make("a", calls, inputs={"x": "1"})], cache)
    execute([make("a", calls, inputs={"x": "2"})], cache)
    assert calls == ["a", "a"]


def test_invalid_outputs_are_a_miss(tmp_path: Path) -> None:
    cache, calls = StepCache(tmp_path), []
    execute([make("a", calls)], cache)
    assert cached_state([make("a", calls, valid=False)], cache) == {"a": False}


def test_failed_step_leaves_no_stamp(tmp_path: Path) -> None:
    cache = StepCache(tmp_path)

    def boom() -> dict[str, str]:
        raise RuntimeError("x")

    step = Step("a", "s", {"x": "1"}, boom)
    with pytest.raises(RuntimeError):
        execute([step], cache)
    assert not cache.stamp(step).exists()


def test_key_ignores_input_order() -> None:
    a = Step("s", "", {"a": "1", "b": "2"}, dict)
    b = Step("s", "", {"b": "2", "a": "1"}, dict)
    assert a.key == b.key


def test_code_digest_of_a_package_covers_its_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from edgepack.pipeline.context import code_digest

    pkg = tmp_path / "digestpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    (pkg / "inner.py").write_text("Y = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("digestpkg")
    before = code_digest(module)
    (pkg / "inner.py").write_text("Y = 2\n")
    assert code_digest(module) != before
