"""Shared fixtures. Unit tests must never start a real subprocess."""

from __future__ import annotations

import json
import subprocess
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgepack.runner import Result, Runner

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_subprocess_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any subprocess started by a unit test fails loudly (integration and cli tests are exempt)."""
    if request.node.get_closest_marker("integration") or request.node.get_closest_marker("cli"):
        return

    def _refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unit test started a subprocess: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", _refuse)
    # The package store is the machine's (~/.cache/edgepack/store): a unit test gets its own, empty.
    monkeypatch.setenv("EDGEPACK_STORE", str(request.getfixturevalue("tmp_path") / "package-store"))
    monkeypatch.setenv("EDGEPACK_DEBIAN_SNAPSHOT", "none")


@dataclass
class FakeRunner(Runner):
    """A Runner that records argv and answers from a table of handlers."""

    calls: list[list[str]] = field(default_factory=list)
    handlers: list[tuple[Callable[[list[str]], bool], Callable[[list[str]], Result]]] = field(
        default_factory=list
    )

    def on(self, match: Callable[[list[str]], bool], answer: Callable[[list[str]], Result]) -> None:
        self.handlers.append((match, answer))

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def, override]
        args = [str(a) for a in argv]
        self.calls.append(args)
        if self.dry_run and kwargs.get("mutates", True):
            return Result(args, 0, "", "")
        for match, answer in self.handlers:
            if match(args):
                result = answer(args)
                if kwargs.get("check", True) and result.returncode != 0:
                    from edgepack.errors import CommandError

                    raise CommandError(
                        f"{kwargs.get('what') or args[0]} failed.",
                        argv=args,
                        returncode=result.returncode,
                        output=result.stdout + result.stderr,
                    )
                return result
        raise AssertionError(f"FakeRunner: no handler for {args}")


def ok(stdout: str = "", stderr: str = "", code: int = 0) -> Callable[[list[str]], Result]:
    return lambda argv: Result(argv, code, stdout, stderr)


@pytest.fixture
def fake_runner() -> Iterator[FakeRunner]:
    yield FakeRunner(echo=False)


@pytest.fixture(scope="session")
def asr_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """speech/weights/cmdasr.pt exported as models/cmdasr.yaml does (the zoo's streaming step), fp32."""
    import torch

    from edgepack.modelpipe import metadata
    from edgepack.modelpipe.zoo.cmdasr import cmdasr_chunk
    from edgepack_runtime.modelmeta import asr_props

    weights = Path(__file__).resolve().parents[1] / "speech" / "weights" / "cmdasr.pt"
    meta = json.loads(weights.with_suffix(".json").read_text())
    module = cmdasr_chunk()
    module.load_state_dict(torch.load(weights, weights_only=True))
    path = tmp_path_factory.mktemp("asr") / "cmdasr.onnx"
    axes = {"feats": {0: "batch", 1: "time"}, "h0": {1: "batch"}, "log_probs": {0: "batch", 1: "out_time"},
            "hN": {1: "batch"}}  # fmt: skip
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and GRU batch-size notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(1, 24, 40), torch.zeros(2, 1, 192)), str(path),
                          dynamo=False, opset_version=17, input_names=["feats", "h0"],
                          output_names=["log_probs", "hN"], dynamic_axes=axes)  # fmt: skip
    metadata.stamp(path, asr_props(meta))
    return path
