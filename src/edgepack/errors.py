"""One error hierarchy, handled at one boundary (``edgepack.commands.boundary.guard``).

Each error knows its exit code and renders as "<what> failed because <cause>.
<what to do>". No Python traceback reaches a user for a foreseeable problem.
"""

from __future__ import annotations

import re

_SIGNATURE = re.compile(r"/\S+\.(?:h|cc|cpp):\d+ [^()]*\([^)]*\)(?: const)?")  # file.h:46 void ns::f(args)
_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_KEY = re.compile(
    r"opset|not (?:implemented|supported|registered)|unsupported|could not find|no kernel"
    r"|type (?:error|mismatch)|invalid|mismatch|unknown|missing|shape|expected",
    re.IGNORECASE,
)


def tool_reason(text: str, *, limit: int = 400) -> str:
    """The sentences of a tool's error that say why (onnxruntime's, torch's), not its C++ signature.

    onnxruntime puts ``file.h:46 void onnxruntime::f(const std::unordered_map<...>&, ...)`` before
    its reason; cutting the message at a length kept the signature and lost "opset 99 ... till
    opset 28". The signature goes; the sentences that name the problem stay, the last one first
    when only some fit.
    """
    flat = _SIGNATURE.sub(" ", _PREFIX.sub("", " ".join(text.split())))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", flat) if s.strip()]
    keep = [s for s in sentences if _KEY.search(s)] or sentences[-1:]
    reason = " ".join(keep)
    while len(reason) > limit and len(keep) > 1:  # drop from the front: the last sentence is the verdict
        keep = keep[1:]
        reason = " ".join(keep)
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


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
