"""speech.finetune: bad fine-tuning data is one clear error (file:line), exit 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from speech import finetune

from tests.unit.test_asr_audio import write_wav

TEXTS = ["turn on the kitchen light", "set volume to seven", "dial four two nine", "stop"]


def folder(tmp_path: Path, rows: list[dict], *, rate: int = 8000) -> Path:
    data = tmp_path / "mine"
    data.mkdir()
    rng = np.random.default_rng(0)
    for row in rows:
        if not (data / row["audio"]).exists():
            write_wav(data / row["audio"], (rng.standard_normal(rate) * 3000).astype("<i2"), rate=rate)
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def fails(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert finetune.main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    return captured.err


def test_a_missing_or_empty_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "is not a folder" in fails(["--data", str(tmp_path / "nope")], capsys)
    (tmp_path / "empty").mkdir()
    err = fails(["--data", str(tmp_path / "empty")], capsys)
    assert "has no manifest.jsonl (0 WAV files)" in err


def test_missing_files_and_unknown_words_are_listed_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = folder(tmp_path, [{"audio": f"{i}.wav", "text": TEXTS[i % 4]} for i in range(8)])
    lines = (data / "manifest.jsonl").read_text().splitlines()
    lines[2] = json.dumps({"audio": "gone.wav", "text": "stop"})
    lines[4] = json.dumps({"audio": "4.wav", "text": "turn on the kitchen lamp"})
    lines.append("not json")
    (data / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (data / "5.wav").write_bytes(b"RIFF junk")
    err = fails(["--data", str(data)], capsys)
    manifest = data / "manifest.jsonl"
    assert "4 bad line(s)" in err
    assert f"{manifest}:3: gone.wav not found" in err
    assert f"{manifest}:5: 'lamp' not in the command vocabulary" in err
    assert f"{manifest}:6: " in err and f"{manifest}:9: not a JSON object" in err


def test_too_few_recordings_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = folder(tmp_path, [{"audio": f"{i}.wav", "text": TEXTS[i % 4]} for i in range(3)])
    assert "lists 3 recording(s); at least 8" in fails(["--data", str(data)], capsys)


def test_a_fine_tune_that_makes_heldout_wer_worse_is_refused_with_both_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = folder(tmp_path, [{"audio": f"{i}.wav", "text": TEXTS[i % 4]} for i in range(8)], rate=44100)
    wers = iter([0.10, 0.30])
    monkeypatch.setattr(finetune, "command_wer", lambda *a, **k: next(wers))
    monkeypatch.setattr(finetune, "train_epoch", lambda *a, **k: 0.0)
    monkeypatch.setattr(finetune, "CACHE", tmp_path / "no-cache")
    err = fails(["--data", str(data), "--epochs", "1", "--root", str(tmp_path)], capsys)
    assert "WER got worse: 10.0% before, 30.0% after (2 recordings kept aside)" in err
    assert not (tmp_path / "models").exists()


def test_a_fine_tune_that_helps_writes_weights_check_set_and_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    repo = Path(__file__).resolve().parents[2]
    (root / "models" / "cmdasr.yaml").write_text((repo / "models" / "cmdasr.yaml").read_text())
    data = folder(tmp_path, [{"audio": f"{i}.wav", "text": TEXTS[i % 4]} for i in range(8)])
    wers = iter([0.30, 0.10])
    monkeypatch.setattr(finetune, "command_wer", lambda *a, **k: next(wers))
    monkeypatch.setattr(finetune, "train_epoch", lambda *a, **k: 0.0)
    monkeypatch.setattr(finetune, "CACHE", tmp_path / "no-cache")
    assert finetune.main(["--data", str(data), "--epochs", "1", "--root", str(root), "--name", "mine"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["check_wer_before"], out["check_wer_after"], out["spec"]) == (0.3, 0.1, "models/mine.yaml")
    spec = (root / "models" / "mine.yaml").read_text()
    assert "models/finetuned/mine/cmdasr.pt" in spec and "models/finetuned/mine/eval/manifest.jsonl" in spec
    rows = (root / "models/finetuned/mine/eval/manifest.jsonl").read_text().splitlines()
    assert len(rows) == 2 and (root / "models/finetuned/mine/eval/check-000.wav").exists()
