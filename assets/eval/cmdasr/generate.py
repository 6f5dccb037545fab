"""Regenerate the committed held-out evaluation set of the bundled ASR model.

    .venv/bin/python assets/eval/cmdasr/generate.py      # needs festival + festvox voices (Debian)

festival is the synthesizer family the model never saw in training
(speech/voices.py). Row 0 is the smoke utterance: a fixed sentence, "set the
temperature to six six", read by festival's kal_diphone voice (the smoke test
and tests/integration check its transcript). Rows 1.. are the first COUNT - 1
utterances of speech/synth.py's "test-festival" split (the data seed of
speech/synth.py): 16 kHz 16-bit mono WAV files and manifest.jsonl ({"audio",
"text", "voice"} per line), the set that models/cmdasr.yaml's WER gate, the
smoke test (row 0) and the unit tests use. bench/asr.py scores the whole split.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from speech import augment, synth  # noqa: E402
from speech.voices import Voice  # noqa: E402

from edgepack.runner import Runner  # noqa: E402

COUNT = 32
SMOKE = synth.Utterance("set the temperature to six six", Voice("festival", "kal_diphone"), 1.0, 0.5,
                        augment.Recipe(rms_db=-24.0, lead_s=0.3, tail_s=0.3))  # fmt: skip


def main() -> None:
    rows = []
    runner = Runner(echo=False)
    for old in HERE.glob("heldout-*.wav"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(COUNT):
            if index == 0:
                utt, rng = SMOKE, synth.rng_for("test-festival", 10**6, synth.DATA_SEED)
            else:
                utt, rng = synth.draw("test-festival", index - 1, synth.DATA_SEED)
            samples = synth.synthesise(utt, rng, runner=runner, workdir=Path(tmp), babble=None)
            name = f"heldout-{index:03d}.wav"
            synth.write_wav(HERE / name, samples)
            rows.append({"audio": name, "text": utt.text, "voice": str(utt.voice)})
    (HERE / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {COUNT} utterances to {HERE}")


if __name__ == "__main__":
    main()
