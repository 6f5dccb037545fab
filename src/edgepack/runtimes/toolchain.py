"""The LiteRT converter's own venv: litert-torch and its 70-odd dependencies, each by its sha256.

litert-torch pins numpy, jax and transformers versions the main venv does not
have, so it lives apart (``build/cache/toolchains/litert-<lock hash>``), made
once under a lock like the wheel builders' venvs, and is driven by
``runtimes/litert_tool.py`` as a subprocess. Its torch is the same local
2.13.0 wheel as the main venv's: a ``torch.export`` program saved here loads there.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from edgepack.errors import ToolchainError
from edgepack.fsutil import atomic_path, held, sha256_file
from edgepack.runner import Runner

LOCK = "litert-converter.lock"
TOOL = Path(__file__).with_name("litert_tool.py")


def lock_file() -> Path:
    with resources.as_file(resources.files("edgepack").joinpath(f"resources/{LOCK}")) as p:
        return Path(p)


def converter_venv(folder: Path, runner: Runner) -> Path:
    """The converter venv for the committed lock under ``folder``, made if missing (minutes, once)."""
    lock = lock_file()
    venv = folder / f"litert-{sha256_file(lock)[:16]}"
    if (venv / ".complete").is_file():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with held(venv.with_name(f"{venv.name}.lock")):
        if (venv / ".complete").is_file():
            return venv
        with atomic_path(venv, is_dir=True) as tmp:
            runner.run([sys.executable, "-m", "venv", str(tmp)], what="creating the LiteRT converter venv")
            runner.run(
                [
                    str(tmp / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--only-binary=:all:",
                    "--require-hashes",
                    "--no-deps",
                    "-r",
                    str(lock),
                ],
                what="installing the LiteRT converter (litert-torch, hash-locked) into its venv",
                timeout=3600,
            )
            (tmp / ".complete").write_text(sha256_file(lock) + "\n")
    return venv


def tool(venv: Path, runner: Runner, *args: str | Path, what: str, timeout: int = 1800) -> dict[str, Any]:
    """One litert_tool command in the converter venv; its JSON answer."""
    result = runner.run(
        [str(venv / "bin" / "python"), str(TOOL), *map(str, args)], what=what, timeout=timeout, check=False
    )
    answer = next((ln for ln in reversed(result.stdout.splitlines()) if ln.startswith("{")), None)
    if result.returncode != 0 or answer is None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ToolchainError(f"{what} failed (exit {result.returncode}): {tail[0][:300]}")
    parsed: dict[str, Any] = json.loads(answer)
    return parsed
