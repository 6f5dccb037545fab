"""Regenerate the committed calibration set of the bundled ASR model's int8 activation ranges.

    .venv/bin/python assets/calibration/cmdasr/generate.py    # needs espeak-ng and flite (Debian)

models/cmdasr.yaml quantizes statically: each int8 convolution and the output
projection get one activation scale, fixed from this set, so a streamed chunk
and the whole utterance are quantized alike (dynamic quantization computes the
scale of each run from its own input: the streamed text differed from the
whole-file text on 2 % of the held-out utterances, 9 % at 10 dB SNR).

The utterances come from the training families only (espeak-ng and flite,
speech/synth.py's "val" recipe: training voices, augmentation), at indices
10000.. that no training or validation split uses; festival, the held-out
family the WER gate and bench/asr.py score on, is never in it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from speech import synth  # noqa: E402

from edgepack.runner import Runner  # noqa: E402

COUNT = 24
FIRST = 10_000


def main() -> None:
    runner = Runner(echo=False)
    for old in HERE.glob("calib-*.wav"):
        old.unlink()
    babble = synth.babble_bank(synth.DATA_SEED)
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(COUNT):
            utt, rng = synth.draw("val", FIRST + index, synth.DATA_SEED)
            samples = synth.synthesise(utt, rng, runner=runner, workdir=Path(tmp), babble=babble)
            synth.write_wav(HERE / f"calib-{index:03d}.wav", samples)
            print(f"calib-{index:03d}.wav  {utt.voice}  {utt.text!r}")
    print(f"wrote {COUNT} utterances to {HERE}")


if __name__ == "__main__":
    main()
