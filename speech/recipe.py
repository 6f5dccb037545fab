"""The whole recipe, one command: data, training, calibration, export; each step resumes.

    nohup nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python -m speech.recipe > speech/.cache/recipe.log 2>&1 &

1. ``speech.synth``: the splits not yet in speech/.cache (about 12 min on one core);
2. ``speech.train --resume``: continues from speech/.cache/checkpoint.pt (about 5 min an epoch);
3. ``speech.calibrate``: the reject threshold, on training-family audio;
4. ``speech.export``: ONNX and its checks.

Then ``assets/eval/cmdasr/generate.py`` (the committed held-out set) and
``bench/asr.py`` (every figure of speech/README.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speech import calibrate, export, synth, train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=train.CACHE)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    synth.main(["--out", str(args.cache)])  # builds only the splits not yet in the cache
    train.main(["--cache", str(args.cache), "--epochs", str(args.epochs), "--resume"])
    calibrate.main(["--cache", str(args.cache)])
    export.main(["--cache", str(args.cache)])


if __name__ == "__main__":
    main()
