"""argparse types for the runtime's flags: a bad value is a usage error naming the range."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole(low: int, high: int) -> Callable[[str], int]:
    """A whole number within [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range {low}..{high}")
        return value

    return parse


def seconds(low: float, high: float) -> Callable[[str], float]:
    """A number of seconds within [low, high] (NaN is out of every range)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range {low:g}..{high:g} s")
        return value

    return parse


def milliseconds(text: str) -> float:
    """A streaming chunk: at least two analysis hops (20 ms), at most 10 s."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not 20.0 <= value <= 10_000.0:
        raise argparse.ArgumentTypeError(f"{value:g} ms is out of range 20..10000")
    return value
