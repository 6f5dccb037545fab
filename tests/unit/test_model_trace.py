"""Trace vs script: a trace that froze a branch or a size is detected, and scripting takes over."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepack.errors import InputError, ModelCheckError
from edgepack.modelpipe import sources, trace
from tests.unit.modelspecs import spec_from, toy


def test_data_dependent_branch_is_caught_and_scripted(tmp_path: Path) -> None:
    spec = spec_from(
        tmp_path, toy("branchy", shape="[batch, 8]", dims="  - {name: batch, export: 2, check: [1, 5]}")
    )
    cap = trace.capture(sources.build_module(spec, None), spec)
    assert cap.method == "script"
    # Same sizes, other values: only the sign flip takes the other branch.
    assert "trace disagrees with eager on 'same sizes, negated values'" in cap.rejected_trace
    assert "scripted module agrees on all" in cap.why
    assert any("Python boolean" in w for w in cap.tracer_warnings)


def test_size_read_with_int_is_caught_at_an_unseen_size(tmp_path: Path) -> None:
    dims = "  - {name: frames, export: 10, check: [3, 17]}"
    spec = spec_from(tmp_path, toy("length_as_constant", shape="[2, frames, 4]", dims=dims))
    cap = trace.capture(sources.build_module(spec, None), spec)
    assert cap.method == "script" and "'frames=3'" in cap.rejected_trace
    assert "must match the size" in cap.rejected_trace


def test_forcing_a_wrong_trace_fails_with_the_input_that_exposed_it(tmp_path: Path) -> None:
    text = toy(
        "branchy",
        shape="[batch, 8]",
        dims="  - {name: batch, export: 2, check: [3]}",
        extra="export: {method: trace}\n",
    )
    spec = spec_from(tmp_path, text)
    with pytest.raises(
        ModelCheckError, match=r"trace disagrees with eager on 'same sizes, negated values'.*max abs"
    ):
        trace.capture(sources.build_module(spec, None), spec, method=spec.export.method)


def test_a_faithful_trace_is_kept(tmp_path: Path) -> None:
    spec = spec_from(
        tmp_path,
        toy(
            "conv_gru",
            shape="[batch, frames, 8]",
            dims="  - {name: batch, export: 2, check: [1]}\n  - {name: frames, export: 12, check: [5, 20]}",
        ),
    )
    cap = trace.capture(sources.build_module(spec, None), spec)
    assert cap.method == "trace" and "agrees with eager on 6 other input sets" in cap.why


def test_inputs_of_the_wrong_shape_are_named(tmp_path: Path) -> None:
    spec = spec_from(
        tmp_path, toy("branchy", shape="[batch, 7]", dims="  - {name: batch, export: 2, check: [1]}")
    )
    with pytest.raises(
        InputError, match=r"the module rejects the spec's inputs \(export inputs: x \[2, 7\] float32\)"
    ):
        trace.capture(sources.build_module(spec, None), spec)


def test_inputs_of_the_wrong_dtype_are_named(tmp_path: Path) -> None:
    text = toy("branchy", shape="[batch, 8]", dims="  - {name: batch, export: 2, check: [1]}")
    spec = spec_from(tmp_path, text.replace("shape: [batch, 8]}", "shape: [batch, 8], dtype: int64}"))
    with pytest.raises(InputError, match=r"x \[2, 8\] int64"):
        trace.capture(sources.build_module(spec, None), spec)
