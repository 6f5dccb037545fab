"""Sources: checkpoints must match the module; the message lists what does not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgepack.errors import ConfigError, InputError
from edgepack.modelpipe import sources
from tests.unit.modelspecs import spec_from, toy

DIMS = "  - {name: batch, export: 2, check: [1]}"


def test_checkpoint_with_missing_and_unexpected_keys(tmp_path: Path) -> None:
    ckpt = tmp_path / "bad.pt"
    torch.save({"state_dict": {"proj.weight": torch.zeros(8, 8), "head.weight": torch.zeros(2)}}, ckpt)
    spec = spec_from(tmp_path, toy("branchy", shape="[batch, 8]", dims=DIMS))
    expected = r"bad.pt does not match Branchy: missing \(1\): proj.bias; unexpected \(1\): head.weight"
    with pytest.raises(InputError, match=expected):
        sources.build_module(spec, ckpt)


def test_checkpoint_with_wrong_shapes(tmp_path: Path) -> None:
    ckpt = tmp_path / "small.pt"
    torch.save({"proj.weight": torch.zeros(4, 8), "proj.bias": torch.zeros(4)}, ckpt)
    spec = spec_from(tmp_path, toy("branchy", shape="[batch, 8]", dims=DIMS))
    with pytest.raises(InputError, match=r"wrong shape \(2\): proj.bias \[4\] vs \[8\]"):
        sources.build_module(spec, ckpt)


def test_rename_and_ignore_rules_load_a_foreign_checkpoint(tmp_path: Path) -> None:
    good = sources.build_module(spec_from(tmp_path, toy("branchy", shape="[batch, 8]", dims=DIMS)), None)
    ckpt = tmp_path / "wrapped.safetensors"
    from safetensors.torch import save_file

    save_file(
        {**{f"module.{k}": v for k, v in good.state_dict().items()}, "aux.x": torch.zeros(1)}, str(ckpt)
    )
    extra = (
        'source: {kind: torch, factory: "edgepack.modelpipe.zoo.toys:branchy", rename: ["module.="],'
        ' ignore_unexpected: ["aux.*"]}\n'
    )
    text = toy("branchy", shape="[batch, 8]", dims=DIMS).split("\n", 1)[1]
    module = sources.build_module(spec_from(tmp_path, extra + text), ckpt)
    assert torch.equal(module.proj.weight, good.proj.weight)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"junk\.pt: not a torch checkpoint"):
        sources.read_state_dict(junk)


def test_unimportable_factory(tmp_path: Path) -> None:
    text = toy("branchy", shape="[batch, 8]", dims=DIMS).replace("toys:branchy", "toys:nope")
    with pytest.raises(ConfigError, match=r"cannot import edgepack\.modelpipe\.zoo\.toys:nope"):
        sources.build_module(spec_from(tmp_path, text), None)


def test_scripted_file_loads_and_junk_does_not(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    with pytest.warns(DeprecationWarning):  # torch 2.13 deprecates TorchScript; its files still load
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    assert isinstance(sources.load_torchscript(path), torch.jit.ScriptModule)
    with pytest.raises(InputError, match=r"not a TorchScript file"):
        sources.load_torchscript(Path(__file__))
