"""Model specs: typed, defaults from data, file:line errors with suggestions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgepack.errors import ConfigError
from edgepack.modelpipe.spec import load_spec, spec_schema
from tests.unit.modelspecs import spec_from, toy

REPO = Path(__file__).resolve().parents[2]
BATCH = "  - {name: batch, export: 2, check: [1, 5]}"


def test_defaults_come_from_data(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, toy("branchy", shape="[batch, 8]", dims=BATCH))
    assert spec.name == "toy" and spec.task == "generic"
    assert (spec.tolerance.rtol, spec.tolerance.atol) == (1.3e-6, 1e-5)  # torch.testing's float32
    assert spec.export.exporter == "auto" and spec.quantize.mode == "none"
    assert spec.inputs[0].dtype == "float32" and spec.inputs[0].shape == ("batch", 8)


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    text = toy(
        "branchy", shape="[batch, 8]", dims=BATCH, extra="quantize:\n  mode: dynamic\n  per_chanel: true\n"
    )
    with pytest.raises(
        ConfigError, match=r"toy.yaml:9: unknown key 'quantize.per_chanel'.*'quantize.per_channel'"
    ):
        spec_from(tmp_path, text)


def test_bad_literal_suggests(tmp_path: Path) -> None:
    text = toy("branchy", shape="[batch, 8]", dims=BATCH, extra="quantize: {mode: dynamc}\n")
    with pytest.raises(ConfigError, match=r"Did you mean 'dynamic'"):
        spec_from(tmp_path, text)


def test_undeclared_dim_is_caught(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"toy.yaml:3: input 'x' uses dim 'btch'.*Did you mean 'batch'"):
        spec_from(tmp_path, toy("branchy", shape="[btch, 8]", dims=BATCH))


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ("  - {name: batch, export: 1, check: [2, 3]}", "gets specialized"),
        ("  - {name: batch, export: 2, check: [2]}", "never used at export"),
    ],
)
def test_dim_sizes_must_exercise_the_axis(tmp_path: Path, dims: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec_from(tmp_path, toy("branchy", shape="[batch, 8]", dims=dims))


def test_factory_format_is_checked(tmp_path: Path) -> None:
    text = toy("branchy", shape="[batch, 8]", dims=BATCH).replace("toys:branchy", "toys.branchy")
    with pytest.raises(ConfigError, match=r"package\.module:callable"):
        spec_from(tmp_path, text)


def test_quantized_vad_needs_evaluation_audio(tmp_path: Path) -> None:
    text = "task: vad\n" + toy("branchy", shape="[batch, 8]", dims=BATCH, extra="quantize: {mode: dynamic}\n")
    with pytest.raises(ConfigError, match=r"frame agreement: set evaluate\.audio"):
        spec_from(tmp_path, text)


def test_empty_spec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        spec_from(tmp_path, "")


@pytest.mark.parametrize("path", sorted((REPO / "models").glob("*.yaml")), ids=lambda p: p.name)
def test_committed_specs_load_and_match_the_schema(path: Path) -> None:
    import jsonschema

    spec = load_spec(path)
    assert spec.name == path.stem
    schema = json.loads((REPO / "models" / "model.schema.json").read_text())
    from dataclasses import asdict

    data = asdict(spec)
    data["inputs"] = [{**i, "shape": list(i["shape"])} for i in data["inputs"]]
    jsonschema.validate(json.loads(json.dumps(data)), schema)


def test_committed_schema_is_current() -> None:
    assert json.loads((REPO / "models" / "model.schema.json").read_text()) == spec_schema()


@pytest.mark.parametrize("value", ["-0.5", "1.5", ".nan"])
def test_an_evaluation_limit_outside_zero_to_one_is_refused_at_load(tmp_path: Path, value: str) -> None:
    """A negative max_wer_increase made every gate fail with "WER increase 0 (limit -0.5)"."""
    text = toy("branchy", shape="[batch, 8]", dims=BATCH) + f"evaluate: {{max_wer_increase: {value}}}\n"
    with pytest.raises(ConfigError, match=r"evaluate\.max_wer_increase is a fraction from 0 to 1"):
        spec_from(tmp_path, text)
