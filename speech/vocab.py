"""The command-and-control vocabulary, its sentence grammar and the charset.

A sentence is drawn by picking a template (weighted) and filling each slot
from its word list. Everything is lower-case ASCII letters and spaces, which
is also the model's output alphabet (plus the CTC blank).
"""

from __future__ import annotations

import numpy as np

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ROOMS = ("kitchen", "bedroom", "living room", "bathroom", "garage", "office", "hallway")
DEVICES = ("light", "lights", "fan", "heater", "radio")
OPENABLE = ("door", "window", "front door", "back door", "garage door")
SINGLE = (
    "stop",
    "play music",
    "pause music",
    "next song",
    "previous song",
    "volume up",
    "volume down",
    "what time is it",
    "what is the weather today",
    "yes",
    "no",
    "cancel",
    "start",
    "call home",
)

# (weight, template): "{digit}", "{room}", "{device}", "{openable}" are slots;
# "{digits}" is two to four digits.
TEMPLATES: tuple[tuple[float, str], ...] = (
    (3.0, "turn on the {room} {device}"),
    (3.0, "turn off the {room} {device}"),
    (1.0, "turn on the {device}"),
    (1.0, "turn off the {device}"),
    (2.0, "set volume to {digit}"),
    (1.0, "set the temperature to {digit} {digit}"),
    (1.5, "set a timer for {digit} minutes"),
    (1.0, "set a timer for {digit} seconds"),
    (1.5, "dial {digits}"),
    (1.0, "open the {openable}"),
    (1.0, "close the {openable}"),
    (1.0, "lock the {openable}"),
    (0.5, "unlock the {openable}"),
    (3.0, "{single}"),
    (1.0, "{digit}"),
)

SLOTS: dict[str, tuple[str, ...]] = {
    "digit": DIGITS,
    "room": ROOMS,
    "device": DEVICES,
    "openable": OPENABLE,
    "single": SINGLE,
}

BLANK = 0
# Index 0 is the CTC blank (written "_" but never emitted), then space, then a-z.
CHARSET = "_ abcdefghijklmnopqrstuvwxyz"


# A slot that repeats another: "{digits}" is two to four "{digit}" words.
REPEATS: dict[str, tuple[str, int, int]] = {"digits": ("digit", 2, 4)}


def grammar_spec() -> dict[str, object]:
    """The grammar as the runtime's decoder reads it (``edgepack_runtime.grammar.GrammarSpec``)."""
    return {
        "templates": [template for _, template in TEMPLATES],
        "slots": {name: list(values) for name, values in SLOTS.items()},
        "repeats": {name: {"of": of, "min": lo, "max": hi} for name, (of, lo, hi) in REPEATS.items()},
    }


def words() -> list[str]:
    """Every word the grammar can produce, sorted."""
    found: set[str] = set()
    for _, template in TEMPLATES:
        found.update(w for w in template.split() if not w.startswith("{"))
    for values in SLOTS.values():
        for value in values:
            found.update(value.split())
    return sorted(found)


def _fill(slot: str, rng: np.random.Generator) -> str:
    if slot == "digits":  # REPEATS["digits"], drawn in one call
        return " ".join(DIGITS[i] for i in rng.integers(0, 10, size=int(rng.integers(2, 5))))
    values = SLOTS[slot]
    return values[int(rng.integers(len(values)))]


def sentence(rng: np.random.Generator) -> str:
    """One random command."""
    weights = np.array([w for w, _ in TEMPLATES])
    template = TEMPLATES[int(rng.choice(len(TEMPLATES), p=weights / weights.sum()))][1]
    out = []
    for token in template.split():
        out.append(_fill(token[1:-1], rng) if token.startswith("{") else token)
    return " ".join(out)


def encode(text: str) -> list[int]:
    """Character ids of ``text`` (no blanks)."""
    try:
        return [CHARSET.index(c) for c in text if c != "_"]
    except ValueError as exc:
        raise ValueError(f"{text!r} has a character outside the charset {CHARSET!r}") from exc
