"""Board errors: each names the board, the cause and what to do (exit code 6; 7 a regression)."""

from __future__ import annotations

from edgepack.errors import EdgepackError


class BoardError(EdgepackError):
    """A board refused, could not be reached, or cannot take the deployment."""

    exit_code = 6


class BoardUnreachableError(BoardError):
    """No SSH connection: refused, timed out, no route, unknown name."""


class BoardAuthError(BoardError):
    """The board rejected the user or the key."""


class HostKeyError(BoardError):
    """The board's host key is unknown or changed: never accepted silently."""


class ConnectionLostError(BoardError):
    """The connection dropped in the middle of a command or a transfer."""


class BoardIncompatibleError(BoardError):
    """The board cannot run the target: another architecture, no Docker."""


class BoardDiskFullError(BoardError):
    """The board lacks the free space the deployment needs."""


class RegressionError(EdgepackError):
    """A metric got worse than its baseline by more than its threshold."""

    exit_code = 7
