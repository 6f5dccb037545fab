"""The bad-input corpus: every case through the real command line, each a clear error.

"Clear": a non-zero exit code (the documented one), at most three lines on stderr that name the
file, field or flag, no traceback, and no hang (each run has a time limit). The totals are printed
at the end of the module (pytest -s) for the closing note.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EDGEPACK = Path(sys.executable).parent / "edgepack"
RUNTIME = [sys.executable, "-m", "edgepack_runtime"]
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]  # "{p}" is replaced by the project folder
    code: int
    needles: tuple[str, ...]
    setup: Callable[[Path], None] = lambda p: None
    runtime: bool = False  # python -m edgepack_runtime instead of edgepack


def write(rel: str, data: str | bytes) -> Callable[[Path], None]:
    def setup(p: Path) -> None:
        path = p / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())

    return setup


def folder(rel: str) -> Callable[[Path], None]:
    return lambda p: (p / rel).mkdir(parents=True, exist_ok=True)


def replace_by_folder(rel: str) -> Callable[[Path], None]:
    def setup(p: Path) -> None:
        (p / rel).unlink(missing_ok=True)
        (p / rel).mkdir(parents=True)

    return setup


def loop(rel: str) -> Callable[[Path], None]:
    return lambda p: (p / rel).symlink_to(p / rel)


def wav(rel: str, *, cut: int = 0, frames: int = 16000) -> Callable[[Path], None]:
    def setup(p: Path) -> None:
        with wave.open(str(p / rel), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes((np.sin(np.arange(frames) / 5) * 9000).astype(np.int16).tobytes())
        if cut:
            data = (p / rel).read_bytes()
            (p / rel).write_bytes(data[:-cut])

    return setup


RPI4 = (REPO / "targets/rpi4.yaml").read_text()
CASES = [
    Case(
        "target file not UTF-8",
        ["build", "--target", "latin", "--dry-run"],
        2,
        ("targets/latin.yaml:1: byte 0xe9", "not UTF-8"),
        write("targets/latin.yaml", b"description: caf\xe9\n"),
    ),
    Case(
        "target file is a folder",
        ["build", "--target", "dir", "--dry-run"],
        2,
        ("targets/dir.yaml: is a folder",),
        folder("targets/dir.yaml"),
    ),
    Case(
        "target file is a symlink loop",
        ["build", "--target", "loop", "--dry-run"],
        2,
        ("loop.yaml: cannot be read: Too many levels of symbolic links",),
        loop("targets/loop.yaml"),
    ),
    Case(
        "billion laughs",
        ["build", "--target", "laughs", "--dry-run"],
        2,
        ("expands to more than",),
        write("targets/laughs.yaml", LAUGHS),
    ),
    Case(
        "duplicate keys",
        ["build", "--target", "dup", "--dry-run"],
        2,
        ("duplicate key 'threads' (first at line",),
        write("targets/dup.yaml", RPI4 + "threads: 2\n"),
    ),
    Case(
        "all mixed with names",
        ["build", "--target", "all,rpi4", "--dry-run"],
        2,
        ("'all' means every target",),
    ),
    Case("unknown target", ["build", "--target", "rpi3", "--dry-run"], 2, ("unknown target 'rpi3'", "rpi4")),
    Case("missing --target", ["build"], 2, ("--target is required", "rpi4")),
    # brackets in a message are text, not rich markup (a quoted command once raised MarkupError)
    Case("brackets in a name", ["build", "--target", "[/x]", "--dry-run"], 2, ("unknown target '[/x]'",)),
    Case(
        "--jobs not a number",
        ["build", "--target", "rpi4", "--jobs", "abc"],
        2,
        ("--jobs abc: not a whole number",),
    ),
    Case("--jobs zero", ["build", "--target", "rpi4", "--jobs", "0"], 2, ("--jobs 0: out of range",)),
    Case(
        "bench --runs not a number",
        ["device.bench", "--host", "pi@10.0.0.9", "--target", "rpi4", "--runs", "abc"],
        2,
        ("--runs abc: not a whole number",),
    ),
    Case(
        "inventory not UTF-8",
        ["device.deploy", "--all", "--inventory", "{p}/boards.yaml"],
        2,
        ("boards.yaml:2: byte 0xff", "not UTF-8"),
        write("boards.yaml", b"boards:\n  a: {address: \xff}\n"),
    ),
    Case(
        "inventory is a folder",
        ["device.deploy", "--all", "--inventory", "{p}/inv"],
        2,
        ("inv: is a folder",),
        folder("inv"),
    ),
    Case("unknown task", ["biuld"], 2, ("Did you mean 'build'?",)),
    Case("unknown flag", ["build", "--target", "rpi4", "--jbos", "2"], 2, ("--jbos",)),
    Case(
        "schema path is a folder",
        ["targets", "--schema"],
        8,
        ("target.schema.json: is a folder where a file was expected",),
        replace_by_folder("targets/target.schema.json"),
    ),
    Case(
        "build folder is a file", ["build", "--target", "rpi4", "--model", "{p}/nope.onnx"], 2, ("nope.onnx",)
    ),
    Case("lock without a target", ["lock"], 2, ("lock: which target?",)),
    Case("flash.write without a device", ["flash.write", "--image", "x.img"], 2, ("--device is required",)),
    Case(
        "bad edgepack.toml",
        ["targets"],
        2,
        ("edgepack.toml: unknown key 'targts'",),
        write("edgepack.toml", 'targts = "t"\n'),
    ),
    Case(
        "init over a project",
        ["init", "--folder", "{p}", "--model", "{p}/m.onnx"],
        2,
        ("does not overwrite",),
        lambda p: (write("edgepack.toml", "")(p), write("m.onnx", b"x")(p)),
    ),
    Case(
        "init with a file that is not ONNX",
        ["init", "--folder", "{p}/new", "--model", "{p}/m.onnx"],
        2,
        ("m.onnx: not a readable ONNX model",),
        write("m.onnx", b"not onnx"),
    ),
    Case(
        "runtime: port out of range",
        ["serve", "--port", "99999"],
        2,
        ("--port: 99999 is out of range 0..65535",),
        runtime=True,
    ),
    Case(
        "runtime: negative threads",
        ["smoke", "--threads", "-3"],
        2,
        ("--threads: -3 is out of range",),
        runtime=True,
    ),
    Case(
        "runtime: spec is a folder",
        ["smoke", "--spec", "{p}"],
        2,
        ("is a folder; give the spec.json",),
        runtime=True,
    ),
    Case(
        "runtime: spec not JSON",
        ["serve", "--spec", "{p}/spec.json", "--duration", "1"],
        2,
        ("spec.json:1: not valid JSON",),
        write("spec.json", "{nope"),
        runtime=True,
    ),
    Case(
        "runtime: truncated WAV",
        ["debug-audio", "{p}/cut.wav", "--model", "{model}"],
        2,
        ("cut.wav: truncated",),
        wav("cut.wav", cut=2000),
        runtime=True,
    ),
    Case(
        "runtime: WAV ends mid-sample",
        ["debug-audio", "{p}/odd.wav", "--model", "{model}"],
        2,
        ("middle of a sample",),
        wav("odd.wav", cut=1),
        runtime=True,
    ),
    Case(
        "runtime: audio is a folder",
        ["debug-audio", "{p}/dir.wav", "--model", "{model}"],
        2,
        ("dir.wav: is a folder",),
        folder("dir.wav"),
        runtime=True,
    ),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project of its own (edgepack.toml), with the repository's boards."""
    shutil.copytree(REPO / "targets", tmp_path / "targets")
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_a_clear_error(case: Case, project: Path, asr_model: Path) -> None:
    if "edgepack.toml" not in case.name and "init" not in case.name:
        (project / "edgepack.toml").write_text("")
    case.setup(project)
    argv = [a.replace("{p}", str(project)).replace("{model}", str(asr_model)) for a in case.argv]
    command = [*RUNTIME, *argv] if case.runtime else [str(EDGEPACK), *argv]
    env = {**os.environ, "EDGEPACK_STORE": str(project / "store"), "COLUMNS": "200"}
    try:
        done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.name}: hung (no answer in 120 s)")
    out = done.stderr + done.stdout
    assert "Traceback" not in out, out
    assert done.returncode == case.code, out
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    limit = 4 if case.runtime else 3  # argparse adds its usage lines above its one error line
    assert 1 <= len(lines) <= limit, done.stderr
    for needle in case.needles:
        assert needle in done.stderr, done.stderr
    assert not (project / "build" / "rpi4" / "image.tar").exists()
