"""Inputs as data: declared synthetic values, recorded samples, and every bad sample as one line."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgepack.errors import ConfigError, InputError
from edgepack.modelpipe import inputs, onnxspec, samples
from tests.unit.modelspecs import spec_from

TOKENS = """source: {kind: onnx, file: m.onnx}
inputs:
  - {name: input_ids, shape: [batch, seq], dtype: int64, range: [0, 30521]}
  - {name: attention_mask, shape: [batch, seq], dtype: int64, fill: ones}
  - {name: sr, shape: [], dtype: int64, values: [8000, 16000]}
outputs: [y]
dims:
  - {name: batch, export: 2, check: [1]}
  - {name: seq, export: 16, check: [7]}
"""


def test_synthetic_inputs_honour_declared_ranges_fills_and_value_lists(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, TOKENS)
    feeds = inputs.example(spec).feeds
    ids = feeds["input_ids"]
    assert ids.dtype == np.int64 and ids.shape == (2, 16) and ids.min() >= 0 and ids.max() <= 30521
    assert len(np.unique(ids)) > 1
    assert np.all(feeds["attention_mask"] == 1)
    rates = {int(inputs.make_feeds(spec, inputs.export_sizes(spec), seed=s)["sr"]) for s in range(12)}
    assert rates == {8000, 16000}


def test_an_input_that_would_be_constant_by_accident_is_refused(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, TOKENS.replace("range: [0, 30521]", "range: [3, 3]"))
    with pytest.raises(ConfigError, match=r"input 'input_ids' would be constant") as err:
        inputs.example(spec)
    assert "give samples" in err.value.hint


def test_a_bad_range_is_named_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"toy.yaml:3: input 'input_ids': range is \[lowest, highest\]"):
        spec_from(tmp_path, TOKENS.replace("range: [0, 30521]", "range: [5, 1]"))


def _save(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return path.name


def good(**over: np.ndarray) -> dict[str, np.ndarray]:
    feeds = {
        "input_ids": np.arange(10, dtype=np.int64).reshape(1, 10),
        "attention_mask": np.ones((1, 10), np.int64),
        "sr": np.array(16000, np.int64),
    }
    return {**feeds, **over}


def test_npz_files_and_folders_load_in_order_and_are_checked(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, TOKENS)
    (tmp_path / "set").mkdir()
    _save(tmp_path / "set" / "b.npz", **good())
    _save(tmp_path / "set" / "a.npz", **good())
    one = _save(tmp_path / "one.npz", **good())
    found = samples.load([one, "set"], spec, root=tmp_path)
    assert [s.label for s in found] == ["one.npz", "set/a.npz", "set/b.npz"]
    assert found[0].feeds["input_ids"].shape == (1, 10)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"input_ids": good()["input_ids"], "sr": good()["sr"]},
            r"sample x.npz: input 'attention_mask' is missing",
        ),
        (
            good(attention_mask=np.ones((1, 10), np.float32)),
            r"'attention_mask' is float32, the model takes int64",
        ),
        (
            good(input_ids=np.zeros((1, 2, 3), np.int64)),
            r"has shape \[1, 2, 3\], the model takes \[batch, seq\]",
        ),
        (good(token_type_ids=np.zeros((1, 10), np.int64)), r"the model has no input 'token_type_ids'"),
    ],
)
def test_a_wrong_sample_file_is_one_line_naming_the_file_and_input(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    spec = spec_from(tmp_path, TOKENS)
    _save(tmp_path / "x.npz", **arrays)
    with pytest.raises(InputError, match=message) as err:
        samples.load(["x.npz"], spec, root=tmp_path)
    assert "\n" not in err.value.message


def test_a_missing_or_unreadable_sample_file(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, TOKENS)
    with pytest.raises(InputError, match=r"samples file nope.npz does not exist"):
        samples.load(["nope.npz"], spec, root=tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"samples file junk.npz: not a readable .npz"):
        samples.load(["junk.npz"], spec, root=tmp_path)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "usersamples.py").write_text(
        "import numpy as np\n"
        "def ok():\n"
        "    for n in (5, 9):\n"
        "        yield {'input_ids': np.arange(n, dtype=np.int64)[None], "
        "'attention_mask': np.ones((1, n), np.int64), 'sr': np.array(8000)}\n"
        "def boom():\n    raise RuntimeError('tokenizer file missing')\n"
        "def wrong():\n    return [[1, 2, 3]]\n"
        "def score(reference, output):\n    return 0.5\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "usersamples"
    sys.modules.pop("usersamples", None)


def test_a_callable_yields_sample_sets(tmp_path: Path, user_module: str) -> None:
    spec = spec_from(tmp_path, TOKENS)
    found = samples.load([f"{user_module}:ok"], spec, root=tmp_path)
    assert [s.label for s in found] == ["usersamples:ok #0", "usersamples:ok #1"]
    assert found[1].feeds["input_ids"].shape == (1, 9)


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        (
            "usersamples:boom",
            InputError,
            r"callable usersamples:boom raised RuntimeError: tokenizer file missing",
        ),
        ("usersamples:wrong", InputError, r"item 0 is list; it must yield dicts of numpy arrays"),
        ("usersamples:nothere", ConfigError, r"samples callable 'usersamples:nothere' cannot be imported"),
        ("nosuchpkg.mod:fn", ConfigError, r"samples callable 'nosuchpkg.mod:fn' cannot be imported"),
    ],
)
def test_a_bad_callable_is_one_line(
    tmp_path: Path, user_module: str, ref: str, error: type[Exception], message: str
) -> None:
    spec = spec_from(tmp_path, TOKENS)
    with pytest.raises(error, match=message):
        samples.load([ref], spec, root=tmp_path)


def test_the_samples_key_follows_the_files(tmp_path: Path) -> None:
    _save(tmp_path / "a.npz", x=np.zeros(3))
    before = samples.key(["a.npz"], tmp_path)
    _save(tmp_path / "a.npz", x=np.ones(3))
    assert samples.key(["a.npz"], tmp_path) != before


def _embedding_model(path: Path) -> None:
    """Token ids -> a table lookup; a mask input; a dynamic batch and sequence."""
    table = helper.make_tensor("table", TensorProto.FLOAT, [100, 4], np.random.default_rng(0).random(400))
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
            helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["m", "axes"], ["m3"]),
            helper.make_node("Mul", ["emb", "m3"], ["y"]),
        ],
        "emb",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence", 4])],
        [table, helper.make_tensor("axes", TensorProto.INT64, [1], [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_a_bare_onnx_gets_a_spec_with_its_vocabulary_range_and_a_mask_of_ones(tmp_path: Path) -> None:
    _embedding_model(tmp_path / "m.onnx")
    spec = onnxspec.spec_for_onnx(tmp_path / "m.onnx", shown_as="m.onnx", quantize="dynamic", samples=())
    by_name = {t.name: t for t in spec.inputs}
    assert by_name["input_ids"].range == (0.0, 99.0) and by_name["attention_mask"].fill == "ones"
    assert [d.name for d in spec.dims] == ["batch", "sequence"] and spec.quantize.mode == "dynamic"
    feeds = inputs.example(spec).feeds
    assert feeds["input_ids"].shape == (2, 32) and feeds["input_ids"].max() <= 99
    assert inputs.describe(feeds)["attention_mask"] == {
        "shape": [2, 32],
        "dtype": "int64",
        "min": 1,
        "max": 1,
    }


def test_dry_run_says_what_the_smoke_test_will_feed(tmp_path: Path) -> None:
    from edgepack.config import Project, load_target
    from edgepack.pipeline.context import Build, ModelOptions
    from edgepack.pipeline.smoke import planned_input

    _embedding_model(tmp_path / "m.onnx")
    proj = Project(tmp_path)
    target = load_target(proj, "rpi4")
    synthetic = planned_input(Build(target=target, project=proj, runner=None, model="m.onnx"))  # type: ignore[arg-type]
    assert synthetic["source"].startswith("synthetic") and synthetic["inputs"]["input_ids"]["max"] <= 99
    np.savez(tmp_path / "s.npz", input_ids=np.array([[5, 7, 9]]), attention_mask=np.ones((1, 3), np.int64))
    opts = ModelOptions(samples=("s.npz",))
    fed = planned_input(Build(target=target, project=proj, runner=None, model="m.onnx", model_options=opts))  # type: ignore[arg-type]
    assert fed == {
        "source": "samples: s.npz (first of 1)",
        "inputs": {
            "input_ids": {"shape": [1, 3], "dtype": "int64", "min": 5, "max": 9},
            "attention_mask": {"shape": [1, 3], "dtype": "int64", "min": 1, "max": 1},
        },
    }
