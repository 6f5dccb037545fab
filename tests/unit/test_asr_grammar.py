"""Grammar-constrained CTC decoding: commands and slots from constructed log-probs, and rejection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepack_runtime.grammar import Calibration, GrammarDecoder, GrammarSpec
from edgepack_runtime.modelmeta import GRAMMAR, asr_props

CHARSET = "_ abcdefghijklmnopqrstuvwxyz"
SPEC = {
    "templates": [
        "turn on the {room} {device}",
        "set volume to {digit}",
        "dial {digits}",
        "set the temperature to {digit} {digit}",
        "{single}",
    ],
    "slots": {
        "room": ["kitchen", "living room"],
        "device": ["light", "fan"],
        "digit": ["zero", "one", "two", "four", "nine"],
        "single": ["stop", "call home", "no"],
    },
    "repeats": {"digits": {"of": "digit", "min": 2, "max": 4}},
    "calibration": {"bias": 6.0, "w_log": -3.0, "w_char": 0.0, "threshold": 0.5},
}


def log_probs(path: str, *, frames_per_char: int = 2, sure: float = 0.0, other: float = -9.0) -> np.ndarray:
    """CTC scores that spell ``path`` ("_" is a blank frame): each symbol's frames peak at it."""
    rows = []
    for ch in path:
        for _ in range(frames_per_char):
            row = np.full(len(CHARSET), other)
            row[CHARSET.index(ch)] = sure
            rows.append(row)
    x = np.array(rows)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def spelled(text: str) -> str:
    """A blank after every character, as a CTC model emits them."""
    return "_" + "".join(c + "_" for c in text)


@pytest.fixture(scope="module")
def decoder() -> GrammarDecoder:
    return GrammarDecoder(GrammarSpec.from_dict(SPEC), CHARSET, blank=0)


def test_a_command_comes_back_with_its_template_and_slots(decoder: GrammarDecoder) -> None:
    c = decoder.decode(log_probs(spelled("turn on the living room fan")))
    assert c.accepted and c.text == "turn on the living room fan"
    assert c.intent == "turn on the {room} {device}" and c.slots == {"room": "living room", "device": "fan"}
    assert c.confidence > 0.9 and c.gap < 1e-3


def test_repeated_and_twice_used_slots_are_named_apart(decoder: GrammarDecoder) -> None:
    c = decoder.decode(log_probs(spelled("dial four two nine")))
    assert (c.text, c.slots) == ("dial four two nine", {"digits": "four two nine"})
    c = decoder.decode(log_probs(spelled("set the temperature to two one")))
    assert c.slots == {"digit": "two", "digit2": "one"}


def test_a_slightly_misspelled_command_snaps_to_the_grammar(decoder: GrammarDecoder) -> None:
    c = decoder.decode(log_probs(spelled("turn on the kichen lihgt")))
    assert c.text == "turn on the kitchen light"


def test_a_double_letter_needs_a_blank_between_as_in_ctc(decoder: GrammarDecoder) -> None:
    # "cal_l home": the blank separates the two l's; "stop" is no closer.
    c = decoder.decode(log_probs("_c_a_l_l_ _h_o_m_e_"))
    assert c.text == "call home" and c.slots == {"single": "call home"}


def test_out_of_grammar_speech_is_rejected(decoder: GrammarDecoder) -> None:
    c = decoder.decode(log_probs(spelled("the quick brown fox jumps over it")))
    assert not c.accepted and c.confidence < 0.5 and c.gap > 20
    assert c.as_dict()["command"] is None and c.as_dict()["best_guess"] == c.text


def test_noise_that_the_model_hears_as_blanks_is_rejected(decoder: GrammarDecoder) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(-8.0, 1.0, size=(80, len(CHARSET)))
    x[:, 0] = 0.0
    c = decoder.decode(x - np.log(np.exp(x).sum(axis=1, keepdims=True)))
    assert not c.accepted and c.confidence == 0.0  # a short command ("no") would fit cheaply: still no


def test_no_frames_is_no_command(decoder: GrammarDecoder) -> None:
    c = decoder.decode(np.zeros((0, len(CHARSET))))
    assert not c.accepted and c.text == ""


def test_the_calibration_maps_the_gap_to_a_falling_confidence() -> None:
    cal = Calibration(bias=4.0, w_log=-2.0, w_char=-0.5, threshold=0.5)
    values = [cal.confidence(gap, 10) for gap in (0.0, 1.0, 5.0, 50.0, 1e9)]
    assert values == sorted(values, reverse=True) and values[0] > 0.9 and values[-1] < 1e-6


def test_an_unknown_slot_or_character_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown slot"):
        GrammarSpec.from_dict({"templates": ["open the {thing}"], "slots": {}})
    spec = GrammarSpec.from_dict({"templates": ["café"], "slots": {}})
    with pytest.raises(ValueError, match="outside the model's charset"):
        GrammarDecoder(spec, CHARSET, blank=0)


def test_the_grammar_travels_in_the_model_metadata() -> None:
    meta = json.loads(
        (__import__("pathlib").Path(__file__).resolve().parents[2] / "speech/weights/cmdasr.json").read_text()
    )
    props = asr_props(meta | {"grammar": SPEC})
    spec = GrammarSpec.from_props(props)
    assert (
        spec is not None and spec.templates[0] == SPEC["templates"][0] and spec.calibration.threshold == 0.5
    )
    assert GrammarSpec.from_props({k: v for k, v in props.items() if k != GRAMMAR}) is None
