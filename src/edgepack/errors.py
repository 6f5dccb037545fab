"""One error hierarchy, handled at one boundary (``edgepack.commands.boundary.guard``).

Each error knows its exit code and renders as "<what> failed because <cause>.
<what to do>". No Python traceback reaches a user for a foreseeable problem.
"""

from __future__ import annotations


class EdgepackError(Exception):
    """Base class: a foreseeable failure with a message for the user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class Reported(EdgepackError):
    """A failure already shown in full (the doctor's table, a fleet's rows, the targets' table, pytest's
    report): the boundary only exits with its code."""

    def __init__(self, code: int) -> None:
        super().__init__("")
        self.exit_code = code


class ConfigError(EdgepackError):
    """A target file, model spec or flag is wrong."""

    exit_code = 2


class InputError(EdgepackError):
    """A file the user gave (model, audio) is missing or malformed."""

    exit_code = 2


class ToolchainError(EdgepackError):
    """A host tool (docker, buildx, qemu, binfmt) is missing or unusable."""

    exit_code = 3


class CommandError(EdgepackError):
    """A subprocess failed; carries the command, exit code and output tail."""

    exit_code = 4

    def __init__(
        self, message: str, *, argv: list[str], returncode: int, output: str, hint: str = ""
    ) -> None:
        super().__init__(message, hint=hint)
        self.argv = argv
        self.returncode = returncode
        self.output = output

    def render(self) -> str:
        import shlex

        tail = "\n".join(self.output.strip().splitlines()[-15:])
        parts = [self.message, f"  command: {shlex.join(self.argv)}", f"  exit code: {self.returncode}"]
        if tail:
            parts.append("  output (last lines):\n" + "\n".join("    " + line for line in tail.splitlines()))
        if self.hint:
            parts.append(self.hint)
        return "\n".join(parts)


class SmokeTestError(EdgepackError):
    """The image ran but its outputs did not match the host reference."""

    exit_code = 5


class ModelCheckError(EdgepackError):
    """The model stage: a converted model (trace, export) does not compute what the original does."""

    exit_code = 9


class QuantizationGateError(ModelCheckError):
    """The quantized model fails its gate: accuracy (task metric, cosine), or it quantized nothing."""

    exit_code = 10
    attempts: tuple[dict[str, object], ...] = ()  # quantize.mode auto: every try, for the report
