"""The Debian speech synthesizers as voice families: espeak-ng, flite, festival.

A :class:`Voice` is one engine plus its own voice name; :func:`synthesise_argv`
turns a voice, a text and the engine's variation knobs (rate, pitch) into an
argument list. Each engine writes a 16-bit mono WAV at its own rate (espeak-ng
22050 Hz, flite 8 or 16 kHz, festival 16 or 32 kHz); the caller resamples.

Families and their role in the data (speech/README.md):

* ``espeak`` (formant synthesis): 7 accents x 61 timbre variants for training;
  5 voices with variants and one accent never used in training for testing.
* ``flite`` (diphone ``kal``, clustergen ``awb``, ``rms``, ``slt``, ``kal16``):
  all five in training, pitch and duration varied per utterance.
* ``festival`` (``kal_diphone``, ``ked_diphone``, HTS ``cmu_us_slt_arctic_hts``):
  **never in training**; the held-out family of the WER gate and the bench.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Family = Literal["espeak", "flite", "festival"]
FAMILIES: tuple[Family, ...] = ("espeak", "flite", "festival")
TOOLS: dict[Family, str] = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave"}

# espeak-ng's own English voices (`espeak-ng --voices=en`, the gmw/ ones; the
# mbrola ones need the mbrola binary and voice files, which are not installed).
ESPEAK_BASES = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-029", "en-us-nyc")
# Variants (espeak-ng-data/voices/!v) paired with any training base; "" is the base timbre.
ESPEAK_VARIANTS = (
    "",
    "m1",
    "m2",
    "m3",
    "m5",
    "m6",
    "m7",
    "m8",
    "f1",
    "f2",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt4",
    "klatt5",
    "klatt6",
    "Alex",
    "Alicia",
    "Andrea",
    "Andy",
    "Annie",
    "Denis",
    "Gene",
    "Hugo",
    "Jacky",
    "Lee",
    "Michael",
    "Mike",
    "Mr serious",
    "Storm",
    "Tweaky",
    "adam",
    "anika",
    "announcer",
    "aunty",
    "belinda",
    "boris",
    "caleb",
    "david",
    "ed",
    "edward",
    "grandma",
    "grandpa",
    "iven",
    "iven2",
    "john",
    "linda",
    "max",
    "norbert",
    "paul",
    "quincy",
    "rob",
    "robert",
    "sandro",
    "shelby",
    "travis",
    "victor",
    "whisper",
    "whisperf",
    "croak",
)
# Held out within the family: none of these variants, nor the West Midlands accent, is in training.
ESPEAK_TEST = (
    "en-us+m4",
    "en-gb-scotland+f3",
    "en-gb-x-gbcwmd+klatt3",
    "en-029+steph",
    "en-gb-x-rp+benjamin",
)
# flite's voices (`flite -lv`, less the limited-domain awb_time) and their mean
# F0 in Hz, around which int_f0_target_mean is drawn.
FLITE = {"kal": 105.0, "kal16": 105.0, "awb": 125.0, "rms": 110.0, "slt": 175.0}
FESTIVAL = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")


@dataclass(frozen=True)
class Voice:
    family: Family
    name: str

    def __str__(self) -> str:
        return f"{self.family}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> Voice:
        family, _, name = text.partition(":")
        if family not in FAMILIES or not name:
            raise ValueError(f"{text!r} is not FAMILY:NAME with FAMILY one of {', '.join(FAMILIES)}")
        return cls(family, name)  # type: ignore[arg-type]


def train_voices(family: Family) -> list[Voice]:
    if family == "espeak":
        return [
            Voice("espeak", base + (f"+{v}" if v else "")) for base in ESPEAK_BASES for v in ESPEAK_VARIANTS
        ]
    if family == "flite":
        return [Voice("flite", name) for name in FLITE]
    return [Voice("festival", name) for name in FESTIVAL]


def test_voices(family: Family) -> list[Voice]:
    """Voices that score a family: espeak's own held-out voices, all of the others."""
    if family == "espeak":
        return [Voice("espeak", name) for name in ESPEAK_TEST]
    return train_voices(family)


def synthesise_argv(voice: Voice, text: str, wav: Path, *, rate: float, pitch: float) -> list[str]:
    """``rate`` 0.75..1.3 (1 = the voice's own speed), ``pitch`` 0..1 (0.5 = its own)."""
    if voice.family == "espeak":
        return [
            "espeak-ng",
            "-v",
            voice.name,
            "-s",
            str(round(165 * rate)),
            "-p",
            str(round(20 + 60 * pitch)),
            "-w",
            str(wav),
            text,
        ]
    if voice.family == "flite":
        f0 = FLITE[voice.name] * 2 ** ((pitch - 0.5) * 0.8)
        return [
            "flite",
            "-voice",
            voice.name,
            "--setf",
            f"duration_stretch={1 / rate:.3f}",
            "--setf",
            f"int_f0_target_mean={f0:.1f}",
            "-t",
            text,
            "-o",
            str(wav),
        ]
    # festival: pitch is varied by the speed perturbation of speech.augment alone.
    return [
        "text2wave",
        "-eval",
        f"(voice_{voice.name})",
        "-eval",
        f"(Parameter.set 'Duration_Stretch {1 / rate:.3f})",
        "-o",
        str(wav),
    ]


def needs_stdin(voice: Voice) -> bool:
    """text2wave reads its text from stdin (a file argument would be the text's path)."""
    return voice.family == "festival"
