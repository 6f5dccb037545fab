"""A whole TorchScript file whose forward() takes values as well as tensors (Silero's ``sr: int``):
the values bound from ``source.args``, state reset between input sets, the export checked against it;
what the exporter cannot take named in two lines, without the IR dump."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgepack.errors import ConfigError, InputError, ModelCheckError
from edgepack.modelpipe import binding, inputs, pipeline, sources, trace
from edgepack.modelpipe.zoo import toys
from tests.unit.modelspecs import spec_from
from tests.unit.test_model_gates import ctx

SPEC = """source: {{kind: torchscript, file: m.jit{args}}}
inputs:
  - {{name: x, shape: [batch, 16]}}
outputs: [y]
dims:
  - {{name: batch, export: 2, check: [1, 3]}}
quantize: {{mode: none}}
"""
SR16K = ", args: [{name: sr, value: 16000}]"


def _jit(tmp: Path, module: torch.nn.Module) -> None:
    with pytest.warns(DeprecationWarning):  # torch 2.13 deprecates TorchScript; its files still load
        torch.jit.script(module).save(str(tmp / "m.jit"))


def _export(tmp: Path, args: str) -> dict:
    spec = spec_from(tmp, SPEC.format(args=args))
    c = ctx(tmp)
    pipeline.source_stage(spec, c, tmp / "src")
    pipeline.export_stage(spec, c, tmp / "src", tmp / "exp")
    return json.loads((tmp / "exp" / "export.json").read_text())


def test_a_scriptmodule_taking_an_int_is_exported_with_the_value_bound_and_state_reset(
    tmp_path: Path,
) -> None:
    _jit(tmp_path, toys.RateAware())
    record = _export(tmp_path, SR16K)
    assert record["method"] == "torchscript-file" and "sr=16000 bound" in record["why"]
    assert all(c["ok"] for c in record["checks"]) and len(record["checks"]) >= 3
    # The graph computes the 16 kHz branch from a fresh state, at a batch size never exported.
    module = sources.load_torchscript(tmp_path / "m.jit")
    x = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    module.reset_states()
    want = module(torch.from_numpy(x), 16000).detach().numpy()
    got = ort.InferenceSession(str(tmp_path / "exp" / "model.onnx")).run(None, {"x": x})[0]
    assert np.abs(got - want).max() < 1e-5
    module.reset_states()
    other_rate = module(torch.from_numpy(x), 8000).detach().numpy()
    assert np.abs(got - other_rate).max() > 1e-2  # the bound value chose the branch


def test_state_is_reset_before_every_input_set(tmp_path: Path) -> None:
    _jit(tmp_path, toys.RateAware())
    spec = spec_from(tmp_path, SPEC.format(args=SR16K))
    module = binding.bind(sources.load_torchscript(tmp_path / "m.jit"), spec)
    assert isinstance(module, binding.Bound)
    s = inputs.example(spec)
    first, again = trace.eager_outputs(module, spec, [s, s])
    assert np.array_equal(first[0], again[0])  # without the reset the second call adds the first's state


def test_a_missing_value_names_the_argument_its_type_and_source_args(tmp_path: Path) -> None:
    _jit(tmp_path, toys.RateAware())
    with pytest.raises(InputError) as info:
        _export(tmp_path, "")
    assert "forward() takes 'sr: int', which is not in the spec" in info.value.message
    assert "source.args" in info.value.hint and "name: sr" in info.value.hint


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ", args: [{name: srr, value: 16000}]",
            "names 'srr', which forward() does not take (it takes x: Tensor, sr: int). Did you mean 'sr'?",
        ),
        (
            ", args: [{name: sr, value: 16 kHz}]",
            "source.args 'sr' is '16 kHz', but forward() takes 'sr: int'",
        ),
        (", args: [{name: x, value: 1}]", "'x' is given twice (also in inputs)"),
    ],
)
def test_wrong_args_are_named(tmp_path: Path, args: str, expected: str) -> None:
    _jit(tmp_path, toys.RateAware())
    with pytest.raises((InputError, ConfigError)) as info:
        _export(tmp_path, args)
    assert expected in str(info.value)


def test_a_construct_onnx_cannot_take_is_named_in_two_lines_with_the_route_that_works(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _jit(tmp_path, toys.LazyContext())
    with pytest.raises(ModelCheckError) as info:
        _export(tmp_path, SR16K)
    printed = capfd.readouterr()
    assert "IR graph" not in printed.out + printed.err  # torch's C++ logger writes it to fd 1 otherwise
    err = info.value
    assert "bitwise Not for non-boolean input values" in err.message
    assert "toys.py:" in err.message  # the source line of the construct
    assert "graph(" not in err.message and "%" not in err.message and len(err.message) < 400
    assert "source.kind: torch, factory:" in err.hint
    assert err.exit_code == 9


class _Forgetful(torch.nn.Module):
    """Keeps state between calls; its reset_states() is not exported, so the saved .jit lacks it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(16, 8)
        self.h = torch.zeros(1, 8)

    def forward(self, x: torch.Tensor, sr: int) -> torch.Tensor:
        y = torch.tanh(self.proj(x)) + self.h
        self.h = y.detach().mean(0, keepdim=True)
        return y


def test_state_without_an_exported_reset_is_named_not_blamed_on_the_tolerance(tmp_path: Path) -> None:
    _jit(tmp_path, _Forgetful())
    with pytest.raises(ModelCheckError) as info:
        _export(tmp_path, SR16K)
    assert "keeps state between calls and has no reset_states()" in info.value.message
    assert "@torch.jit.export" in info.value.hint and "tolerance" not in info.value.hint


def test_a_file_that_is_not_torchscript_is_named_as_the_spec_names_it(tmp_path: Path) -> None:
    """The error names the user's file, not the build cache's copy of it."""
    (tmp_path / "m.jit").write_bytes(b"not a zip archive")
    with pytest.raises(InputError, match=r"^m\.jit: not a TorchScript file") as err:
        _export(tmp_path, "")
    assert "src" not in str(err.value).split(":")[0]
