"""``listen``'s processing (endpointer -> stream -> grammar), driven block by block without threads."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgepack_runtime.__main__ import main
from edgepack_runtime.asr import Recognizer
from edgepack_runtime.audio import read_wav
from edgepack_runtime.live import Utterances
from edgepack_runtime.resample import resample
from tests.unit.test_asr_audio import write_wav

ROWS = (0, 2, 4)  # three held-out commands (assets/eval/cmdasr)


def commands_with_pauses(heldout: list, *, snr_db: float, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """The rows' audio at one level with 1.2 s of silence between, plus white noise at ``snr_db``."""
    rng = np.random.default_rng(seed)
    parts, texts = [np.zeros(8000, np.float32)], []
    for row in ROWS:
        wav, text = heldout[row]
        x = read_wav(wav).samples
        parts += [x * (0.05 / np.sqrt(np.mean(x[np.abs(x) > 1e-3] ** 2))), np.zeros(19200, np.float32)]
        texts.append(text)
    x = np.concatenate(parts)
    return (x + rng.standard_normal(len(x)) * 0.05 / 10 ** (snr_db / 20)).astype(np.float32), texts


def drive(rec: Recognizer, x: np.ndarray, *, rate: int = 16000, free_text: bool = False) -> Utterances:
    events: list[tuple[str, str]] = []
    work = Utterances(
        rec,
        src_rate=rate,
        chunk_ms=160,
        free_text=free_text,
        on_text=lambda kind, text: events.append((kind, text)),
    )
    for start in range(0, len(x), 256):
        work(x[start : start + 256])
    work.end()
    return work


@pytest.mark.parametrize("snr_db", [30, 20, 10])
def test_commands_separated_by_pauses_come_out_one_by_one(
    asr_model: Path, heldout: list, snr_db: float
) -> None:
    rec = Recognizer.load(asr_model)
    x, texts = commands_with_pauses(heldout, snr_db=snr_db)
    work = drive(rec, x)
    assert work.finals == texts
    assert work.commands[0]["slots"] == {"digit": "six", "digit2": "six"}
    assert all(c["accepted"] and 0.5 <= c["confidence"] <= 1 for c in work.commands)


def test_a_44k1_stream_is_resampled_block_by_block(asr_model: Path, heldout: list) -> None:
    rec = Recognizer.load(asr_model)
    x, texts = commands_with_pauses(heldout, snr_db=30)
    work = drive(rec, resample(x, src_rate=16000, dst_rate=44100), rate=44100)
    assert work.finals == texts


def test_free_text_gives_the_greedy_text_per_command(asr_model: Path, heldout: list) -> None:
    rec = Recognizer.load(asr_model)
    x, _ = commands_with_pauses(heldout, snr_db=30)
    work = drive(rec, x, free_text=True)
    assert len(work.finals) == 3 and work.commands == []


def test_noise_alone_is_no_command(asr_model: Path) -> None:
    rec = Recognizer.load(asr_model)
    rng = np.random.default_rng(1)
    work = drive(rec, (rng.standard_normal(16000 * 4) * 0.01).astype(np.float32))
    assert work.finals == []


def test_listen_logs_resampling_like_transcribe(
    asr_model: Path,
    heldout: list,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edgepack_runtime import live

    audio = read_wav(heldout[0][0])
    y = resample(audio.samples, src_rate=16000, dst_rate=44100)
    wav = write_wav(tmp_path / "44k.wav", (np.clip(y, -1, 1) * 32767).astype("<i2"), rate=44100)
    monkeypatch.setattr(live, "listen", lambda rec, **kw: _no_capture())
    with caplog.at_level(logging.INFO, logger="edgepack_runtime"):
        assert main(["listen", "--file", str(wav), "--model", str(asr_model), "--json"]) == 0
    assert f"{wav}: 44100 Hz resampled to the model's 16000 Hz" in caplog.text


def _no_capture() -> dict:
    counters = {
        "callbacks": 0,
        "overruns": 0,
        "dropouts": 0,
        "dropped": 0,
        "chunk_errors": 0,
        "last_error": "",
    }
    return {"texts": [], "scheduling": "none", "counters": counters}
