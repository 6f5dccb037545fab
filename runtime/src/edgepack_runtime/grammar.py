"""Grammar-constrained CTC decoding: the best command of a grammar, its slots, a confidence.

The grammar (templates with ``{slot}`` words, slot value lists, repeated
slots such as two to four digits; it travels in the model's metadata as
``edgepack.grammar``) is compiled into a character automaton without empty
moves. Every character arc becomes a CTC label node with its own blank node
after it, the usual CTC topology (a blank is needed between two equal
letters), and an exact Viterbi pass over all nodes (vectorised: each node has
at most ``K`` predecessors) gives the best sentence of the grammar and its
log-probability ``G``.

The best unconstrained path (greedy, per-frame maxima) scores ``F >= G``;
``F - G`` is how much the audio had to be bent to fit the grammar. It is
near zero for a command the model heard well and large for other speech or
noise. A logistic model of ``log1p(F - G)`` and ``(F - G)`` per character,
fitted offline (speech/calibrate.py) on training-family audio, turns it into
a probability that the command is right; below the threshold the answer is
"no command".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgepack_runtime.modelmeta import GRAMMAR as GRAMMAR_PROP

NEG = np.float32(-1e30)


@dataclass(frozen=True)
class Calibration:
    """``confidence = sigmoid(bias + w_log * log1p(gap) + w_char * gap / (chars + 1))``."""

    bias: float = 6.0
    w_log: float = -3.0
    w_char: float = 0.0
    threshold: float = 0.5

    def confidence(self, gap: float, chars: int) -> float:
        z = self.bias + self.w_log * math.log1p(max(gap, 0.0)) + self.w_char * max(gap, 0.0) / (chars + 1)
        return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))


@dataclass(frozen=True)
class GrammarSpec:
    templates: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    repeats: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    calibration: Calibration = Calibration()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GrammarSpec:
        repeats = {
            k: (str(v["of"]), int(v["min"]), int(v["max"])) for k, v in data.get("repeats", {}).items()
        }
        spec = cls(
            templates=tuple(str(t) for t in data["templates"]),
            slots={k: tuple(str(x) for x in v) for k, v in data["slots"].items()},
            repeats=repeats,
            calibration=Calibration(**data.get("calibration", {})),
        )
        for template in spec.templates:
            for token in template.split():
                name = token[1:-1] if token.startswith("{") else None
                if name is not None and name not in spec.slots and name not in spec.repeats:
                    raise ValueError(f"grammar template {template!r}: unknown slot {{{name}}}")
        return spec

    @classmethod
    def from_props(cls, props: dict[str, str]) -> GrammarSpec | None:
        """The grammar of a model's metadata_props, or None if it has none."""
        return cls.from_dict(json.loads(props[GRAMMAR_PROP])) if GRAMMAR_PROP in props else None

    def values(self, name: str) -> tuple[str, ...]:
        return self.slots[name]


@dataclass(frozen=True)
class Command:
    """The decoded command; ``accepted`` False means "no command" (``text`` is the best guess)."""

    text: str
    intent: str  # the template, e.g. "turn on the {room} {device}"
    slots: dict[str, str]
    confidence: float
    accepted: bool
    gap: float  # F - G, nats

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.text if self.accepted else None, "best_guess": self.text,
                "intent": self.intent, "slots": self.slots, "confidence": round(self.confidence, 4),
                "accepted": self.accepted}  # fmt: skip


@dataclass(frozen=True)
class _Arc:
    src: int
    dst: int
    char: str
    template: int
    token: int  # index of the template's token it spells; -1 for a space between tokens


class _Automaton:
    """Character arcs of every sentence of the grammar; no empty moves."""

    def __init__(self, spec: GrammarSpec) -> None:
        self.spec = spec
        self.arcs: list[_Arc] = []
        self.n_states = 1  # state 0: the start
        self.finals: set[int] = set()
        for t, template in enumerate(spec.templates):
            ends = [0]
            for i, token in enumerate(template.split()):
                if i:
                    ends = self._chain(ends, " ", t, -1)
                ends = self._token(ends, token, t, i)
            self.finals.update(ends)

    def _new(self) -> int:
        self.n_states += 1
        return self.n_states - 1

    def _chain(self, srcs: list[int], text: str, template: int, token: int) -> list[int]:
        """Spell ``text`` from each of ``srcs`` into one shared end state."""
        state = self._new()
        for src in srcs:
            self.arcs.append(_Arc(src, state, text[0], template, token))
        for ch in text[1:]:
            nxt = self._new()
            self.arcs.append(_Arc(state, nxt, ch, template, token))
            state = nxt
        return [state]

    def _alternatives(self, srcs: list[int], values: tuple[str, ...], template: int, token: int) -> list[int]:
        end = self._new()
        for value in values:
            last = self._chain(srcs, value, template, token)[0] if len(value) > 1 else None
            if last is None:
                for src in srcs:
                    self.arcs.append(_Arc(src, end, value, template, token))
            else:
                # Redirect the value's last arc into the shared end state.
                arc = self.arcs.pop()
                self.arcs.append(_Arc(arc.src, end, arc.char, template, token))
        return [end]

    def _token(self, srcs: list[int], token: str, template: int, index: int) -> list[int]:
        if not token.startswith("{"):
            return self._chain(srcs, token, template, index)
        name = token[1:-1]
        if name not in self.spec.repeats:
            return self._alternatives(srcs, self.spec.slots[name], template, index)
        of, lo, hi = self.spec.repeats[name]
        ends: list[int] = []
        current = srcs
        for k in range(1, hi + 1):
            if k > 1:
                current = self._chain(current, " ", template, index)
            current = self._alternatives(current, self.spec.slots[of], template, index)
            if k >= lo:
                ends += current
        return ends


class GrammarDecoder:
    """Exact Viterbi decoding of CTC log-probabilities into the grammar."""

    def __init__(self, spec: GrammarSpec, charset: str, *, blank: int) -> None:
        self.spec, self.charset, self.blank = spec, charset, blank
        auto = _Automaton(spec)
        self.arcs = auto.arcs
        n_arcs = len(auto.arcs)
        # Nodes: 0 = leading blank, 1 + 2a = label of arc a, 2 + 2a = blank after arc a.
        self.n_nodes = 1 + 2 * n_arcs
        self.labels = np.full(self.n_nodes, blank, dtype=np.int64)
        unknown = {a.char for a in auto.arcs if a.char not in charset}
        if unknown:
            raise ValueError(f"grammar uses characters outside the model's charset: {sorted(unknown)}")
        into: dict[int, list[int]] = {}
        for a, arc in enumerate(auto.arcs):
            self.labels[1 + 2 * a] = charset.index(arc.char)
            into.setdefault(arc.dst, []).append(a)
        preds: list[list[int]] = [[0]]
        for a, arc in enumerate(auto.arcs):
            before = into.get(arc.src, [])
            label_preds = [1 + 2 * a] + [2 + 2 * p for p in before]
            label_preds += [1 + 2 * p for p in before if auto.arcs[p].char != arc.char]
            if arc.src == 0:
                label_preds.append(0)
            preds += [label_preds, [2 + 2 * a, 1 + 2 * a]]
        # Two padded predecessor tables: almost every node has at most 3 (itself, the
        # letter and blank before it); the few after a choice of words have up to ~20.
        # Padding points at index n_nodes, whose score stays -inf.
        self.groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for chosen in (
            [n for n, p in enumerate(preds) if len(p) <= 3],
            [n for n, p in enumerate(preds) if len(p) > 3],
        ):
            width = max((len(preds[n]) for n in chosen), default=1)
            table = np.full((len(chosen), width), self.n_nodes, dtype=np.int64)
            for row, n in enumerate(chosen):
                table[row, : len(preds[n])] = preds[n]
            self.groups.append((np.array(chosen, dtype=np.int64), table, np.arange(len(chosen))))
        self.group_of = np.zeros((self.n_nodes, 2), dtype=np.int64)  # node -> (group, row)
        for g, (members, _, rows) in enumerate(self.groups):
            self.group_of[members, 0], self.group_of[members, 1] = g, rows
        self.starts = np.array([0] + [1 + 2 * a for a, arc in enumerate(auto.arcs) if arc.src == 0])
        final_arcs = [a for a, arc in enumerate(auto.arcs) if arc.dst in auto.finals]
        self.finals = np.array([n for a in final_arcs for n in (1 + 2 * a, 2 + 2 * a)])

    def viterbi(self, log_probs: np.ndarray) -> tuple[float, list[int]]:
        """Best grammar path: its log-probability and the arcs it spells (in order)."""
        frames = log_probs.shape[0]
        if frames == 0:
            return float(NEG), []
        emit = log_probs[:, self.labels].astype(np.float32)  # [T, nodes]
        score = np.full(self.n_nodes + 1, NEG, dtype=np.float32)
        score[self.starts] = emit[0, self.starts]
        back = [np.zeros((frames, len(members)), dtype=np.int8) for members, _, _ in self.groups]
        new = np.empty(self.n_nodes, dtype=np.float32)
        for t in range(1, frames):
            for (members, table, rows), moves in zip(self.groups, back, strict=True):
                cand = score[table]
                best = cand.argmax(axis=1)
                moves[t] = best
                new[members] = cand[rows, best]
            score[: self.n_nodes] = new + emit[t]
        end = int(self.finals[np.argmax(score[self.finals])])
        total = float(score[end])
        path = [end]
        for t in range(frames - 1, 0, -1):
            g, row = self.group_of[path[-1]]
            path.append(int(self.groups[g][1][row, back[g][t, row]]))
        arcs: list[int] = []
        for node in reversed(path):
            if node % 2 == 1 and (not arcs or arcs[-1] != (node - 1) // 2):
                arcs.append((node - 1) // 2)
        return total, arcs

    def decode(self, log_probs: np.ndarray) -> Command:
        """The best command for one utterance's ``[T, V]`` log-probabilities."""
        free = float(log_probs.max(axis=1).sum()) if len(log_probs) else 0.0
        total, arcs = self.viterbi(log_probs)
        if not arcs or total <= NEG / 2:
            return Command("", "", {}, 0.0, False, math.inf)
        heard = bool(len(log_probs)) and bool(np.any(np.argmax(log_probs, axis=1) != self.blank))
        template = self.arcs[arcs[0]].template
        text = "".join(self.arcs[a].char for a in arcs)
        gap = max(free - total, 0.0)
        # Nothing but blanks on the best free path: the model heard no letter at all, so
        # whatever the grammar's best sentence costs, it is not a command.
        conf = self.spec.calibration.confidence(gap, len(text)) if heard else 0.0
        return Command(text, self.spec.templates[template], self._slots(arcs, template), conf,
                       conf >= self.spec.calibration.threshold, gap)  # fmt: skip

    def _slots(self, arcs: list[int], template: int) -> dict[str, str]:
        tokens = self.spec.templates[template].split()
        spelled: dict[int, str] = {}
        for a in arcs:
            arc = self.arcs[a]
            if arc.token >= 0:
                spelled[arc.token] = spelled.get(arc.token, "") + arc.char
        slots: dict[str, str] = {}
        for index, value in sorted(spelled.items()):
            token = tokens[index]
            if token.startswith("{"):
                name, n = token[1:-1], 2
                key = name
                while key in slots:
                    key, n = f"{name}{n}", n + 1
                slots[key] = value
        return slots
