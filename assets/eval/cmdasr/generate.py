"""Regenerate the committed held-out evaluation set of the bundled ASR model.

    .venv/bin/python assets/eval/cmdasr/generate.py      # needs espeak-ng (Debian)

The first COUNT utterances of speech/synth.py's "test" split (held-out voices
only, the data seed of speech/weights/cmdasr.json): 16 kHz 16-bit mono WAV
files and manifest.jsonl ({"audio", "text", "voice"} per line), the set that
models/cmdasr.yaml's WER gate, the smoke test (row 0) and bench/asr.py use.
"""

from __future__ import annotations

import json
import sys
import tempfile
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from speech import synth  # noqa: E402

from edgepack.runner import Runner  # noqa: E402

COUNT = 32


def main() -> None:
    rows = []
    runner = Runner(echo=False)
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(COUNT):
            utt, rng = synth.draw("test", index, synth.DATA_SEED)
            samples = synth.synthesise(utt, rng, runner=runner, workdir=Path(tmp))
            name = f"heldout-{index:03d}.wav"
            with wave.open(str(HERE / name), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(synth.SAMPLE_RATE)
                out.writeframes(samples.astype("<i2").tobytes())
            rows.append({"audio": name, "text": utt.text, "voice": utt.voice})
    (HERE / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {COUNT} utterances to {HERE}")


if __name__ == "__main__":
    main()
