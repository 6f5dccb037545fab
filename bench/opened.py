"""Benchmark: what each target's image holds against what its runtime really opens.

    .venv/bin/python bench/opened.py [--target rpi4,x86-box | all] [--no-build] [--serve-seconds 3]

For each target: build its image (edgepack's own pipeline, cached steps are
reused; ``--no-build`` takes ``<image>:latest`` as it is), list the image's
files (``docker export``), then run what the board runs and record every file
it opens:

* emulated targets: ``docker run -e QEMU_STRACE=1`` (qemu-user's own strace
  of the emulated process; ``openat(...) = N`` with N >= 0 opened a file);
* the native x86 box: the exported root filesystem under ``chroot`` and the
  host's ``strace -f`` (the same binaries, no emulation, no container).

The commands: the image's smoke (its default CMD), ``serve`` for a few
seconds (the metrics server: http.server, threads), and for a target with the
``capture`` feature the import of the capture backend (``capture-probe``:
PyAudio's libraries are loaded, no device is opened). Each opened path is
resolved in the image (symlinks followed); the entrypoint's interpreter and
its ELF loader count as opened (the kernel/QEMU maps them, no openat shows).

Figures per target: image bytes (regular files, hard links once), opened
bytes, their ratio, and the largest files never opened, grouped. Results:
bench/results/opened.json.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import io
import json
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "opened.json"
# QEMU_STRACE writes `openat(AT_FDCWD,"/x",O_RDONLY) = 3`; strace `openat(AT_FDCWD, "/x", O_RDONLY) = 3`.
_OPENAT = re.compile(r'\bopenat\((AT_FDCWD|-?\d+), ?"((?:[^"\\]|\\.)*)",([^)]*)\) += (-?\d+)')
_OPEN = re.compile(r'\bopen\("((?:[^"\\]|\\.)*)",([^)]*)\) += (-?\d+)')
CAPTURE_PROBE = (
    "import edgepack_runtime.capture, pyaudio, json; "
    "print(json.dumps({'portaudio': pyaudio.get_portaudio_version_text()}))"
)


@dataclass
class ImageTree:
    """The image's filesystem as docker export gives it: regular files, links, folders."""

    files: dict[str, int] = field(default_factory=dict)  # path -> size (hard links: 0, counted once)
    links: dict[str, str] = field(default_factory=dict)  # symlink -> target
    hardlinks: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    @classmethod
    def from_tar(cls, stream: io.BufferedIOBase) -> ImageTree:
        tree = cls()
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = member.name.strip("/").removeprefix("./")
                if member.isreg():
                    tree.files[name] = member.size
                elif member.issym():
                    tree.links[name] = member.linkname
                elif member.islnk():
                    tree.hardlinks[name] = member.linkname.strip("/")
                elif member.isdir():
                    tree.dirs.add(name)
        return tree

    @property
    def bytes(self) -> int:
        return sum(self.files.values())

    def resolve(self, path: str, *, cwd: str = "/") -> str | None:
        """The regular file ``path`` names in the image, symlinks followed; None: not a file of it."""
        parts = [p for p in (path if path.startswith("/") else f"{cwd}/{path}").split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/".join([*done, part])
            if candidate in self.links:
                hops += 1
                if hops > 40:
                    return None
                target = self.links[candidate]
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p] + parts
                continue
            done.append(part)
        name = "/".join(done)
        name = self.hardlinks.get(name, name)
        return name if name in self.files else None


def opened_paths(trace: str) -> tuple[list[str], int]:
    """Paths of successful open/openat calls in a QEMU_STRACE or strace log; and how many were fd-relative."""
    paths, relative = [], 0
    for line in trace.splitlines():
        if m := _OPENAT.search(line):
            if int(m[4]) < 0:
                continue
            if m[1] != "AT_FDCWD" and not m[2].startswith("/"):
                relative += 1
                continue
            paths.append(m[2])
        elif (m := _OPEN.search(line)) and int(m[3]) >= 0:
            paths.append(m[1])
    return paths, relative


def elf_interpreter(data: bytes) -> str | None:
    """PT_INTERP of an ELF file (the dynamic loader the kernel or QEMU maps), 32- or 64-bit."""
    if data[:4] != b"\x7fELF":
        return None
    is64, little = data[4] == 2, data[5] == 1
    end = "<" if little else ">"
    if is64:
        (phoff,) = struct.unpack_from(end + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 0x36)
    else:
        (phoff,) = struct.unpack_from(end + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 0x2A)
    for i in range(phnum):
        at = phoff + i * phentsize
        (ptype,) = struct.unpack_from(end + "I", data, at)
        if ptype != 3:  # PT_INTERP
            continue
        word, (off_at, size_at) = ("Q", (8, 32)) if is64 else ("I", (4, 16))
        (offset,) = struct.unpack_from(end + word, data, at + off_at)
        (size,) = struct.unpack_from(end + word, data, at + size_at)
        return data[offset : offset + size].rstrip(b"\0").decode()
    return None


def group_of(path: str) -> str:
    """A readable group for the unopened table: a site-packages distribution, a stdlib module, a library."""
    parts = path.split("/")
    if "dist-packages" in parts or "site-packages" in parts:
        i = max(i for i, p in enumerate(parts) if p in ("dist-packages", "site-packages"))
        return "/".join(parts[: i + 2])
    if len(parts) > 3 and re.fullmatch(r"python3\.\d+", parts[2]):
        return "/".join(parts[:4])
    return path


@dataclass(frozen=True)
class Run:
    name: str
    argv: tuple[str, ...]  # after the entrypoint; () = the image's CMD


def sh(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    print("+ " + shlex.join(argv), file=sys.stderr, flush=True)
    return subprocess.run(list(argv), text=True, capture_output=True, check=False, **kw)


def image_config(tag: str) -> dict[str, Any]:
    out = sh(["docker", "image", "inspect", tag])
    if out.returncode:
        raise SystemExit(f"no image {tag}: build it first (edgepack build) or drop --no-build\n{out.stderr}")
    return json.loads(out.stdout)[0]


def export_tree(tag: str, platform: str, *, keep: Path | None = None) -> ImageTree:
    cid = sh(["docker", "create", "--platform", platform, "--pull=never", tag]).stdout.strip()
    try:
        proc = subprocess.Popen(["docker", "export", cid], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        if keep is None:
            tree = ImageTree.from_tar(proc.stdout)  # type: ignore[arg-type]
        else:
            with keep.open("wb") as fh:
                shutil.copyfileobj(proc.stdout, fh)
            with keep.open("rb") as fh:
                tree = ImageTree.from_tar(fh)  # type: ignore[arg-type]
        proc.wait()
    finally:
        sh(["docker", "rm", cid])
    return tree


def trace_emulated(tag: str, target: Any, run: Run, config: dict[str, Any]) -> tuple[str, float, int]:
    argv = ["docker", "run", "--rm", "--network", "none", "--platform", target.platform, "--pull=never",
            "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--env", f"QEMU_CPU={target.qemu_cpu}", "--env", "QEMU_STRACE=1"]  # fmt: skip
    if target.memory_mb:
        argv += ["--memory", f"{target.memory_mb}m", "--memory-swap", f"{target.memory_mb}m"]
    argv += [*entry_override(run, config), tag, *command_of(run, config)]
    t0 = time.perf_counter()
    out = sh(argv, timeout=600)
    return out.stderr, time.perf_counter() - t0, out.returncode


def entry_override(run: Run, config: dict[str, Any]) -> list[str]:
    return ["--entrypoint", "/usr/bin/python3"] if run.name == "capture-probe" else []


def command_of(run: Run, config: dict[str, Any]) -> list[str]:
    if run.name == "capture-probe":
        return ["-I", "-c", CAPTURE_PROBE]
    return list(run.argv) or list(config["Config"].get("Cmd") or [])


def trace_native(tar_path: Path, run: Run, config: dict[str, Any], work: Path) -> tuple[str, float, int]:
    """The exported root under chroot with the host's strace: what a native box runs, traced."""
    root = work / "root"
    if not root.is_dir():
        root.mkdir()
        sh(["tar", "-C", str(root), "-xf", str(tar_path)])
    entry = config["Config"]["Entrypoint"] if run.name != "capture-probe" else ["/usr/bin/python3"]
    env = dict(e.split("=", 1) for e in config["Config"].get("Env") or [])
    log = work / f"strace-{run.name}.txt"
    # The image has no shell: chroot(8) execs the entrypoint directly (its cwd is then /, and the
    # runtime's paths are absolute). The container's /proc is the host's, bind-mounted read-only.
    (root / "proc").mkdir(exist_ok=True)
    sh(["mount", "--bind", "-o", "ro", "/proc", str(root / "proc")])
    try:
        # -ff: one log per process, so no call is split into "unfinished" and "resumed" halves.
        argv = ["strace", "-ff", "-qq", "-e", "trace=open,openat,execve,chroot", "-o", str(log),
                "chroot", "--userspec=1000:1000", str(root), *entry, *command_of(run, config)]  # fmt: skip
        t0 = time.perf_counter()
        out = sh(argv, timeout=600, env=env)
        seconds = time.perf_counter() - t0
    finally:
        sh(["umount", "-l", str(root / "proc")])
    # chroot(8) is the host's: its own opens come before its chroot(2); only what follows counts.
    logs = [p.read_text(errors="replace") for p in sorted(work.glob(f"{log.name}.*"))]
    text = "\n".join(t.split("chroot(", 1)[-1] for t in logs)
    return text, seconds, out.returncode


def measure(target: Any, tag: str, *, runs: Sequence[Run], work: Path) -> dict[str, Any]:
    config = image_config(tag)
    native = not target.emulated
    tar_path = work / "rootfs.tar" if native else None
    tree = export_tree(tag, target.platform, keep=tar_path)
    cwd = config["Config"].get("WorkingDir") or "/"
    opened: set[str] = set()
    per_run: dict[str, Any] = {}
    entry = config["Config"]["Entrypoint"][0]
    interpreter = tree.resolve(entry)
    if interpreter:
        opened.add(interpreter)
        loader = elf_interpreter(read_member(tag, target.platform, interpreter, work, tar_path))
        if loader and (resolved := tree.resolve(loader)):
            opened.add(resolved)
    for run in runs:
        if native:
            assert tar_path is not None
            trace, seconds, code = trace_native(tar_path, run, config, work)
        else:
            trace, seconds, code = trace_emulated(tag, target, run, config)
        paths, relative = opened_paths(trace)
        files = {r for p in paths if (r := tree.resolve(p, cwd=cwd))}
        outside = sorted(
            {
                p
                for p in paths
                if tree.resolve(p, cwd=cwd) is None
                and p.strip("/") not in tree.dirs
                and not p.startswith(("/proc", "/sys", "/dev"))
            }
        )
        per_run[run.name] = {"exit": code, "seconds": round(seconds, 2), "opened_files": len(files),
                             "opened_bytes": sum(tree.files[f] for f in files), "fd_relative_opens": relative,
                             "opened_not_image_files": outside[:20]}  # fmt: skip
        opened |= files
    unopened = {p: s for p, s in tree.files.items() if p not in opened}
    groups: collections.Counter[str] = collections.Counter()
    for path, size in unopened.items():
        groups[group_of(path)] += size
    opened_bytes = sum(tree.files[f] for f in opened)
    biggest = sorted(unopened.items(), key=lambda kv: -kv[1])[:25]
    return {
        "image": tag,
        "image_id": config["Id"],
        "image_bytes": tree.bytes,
        "image_files": len(tree.files),
        "opened_bytes": opened_bytes,
        "opened_files": len(opened),
        "ratio": round(tree.bytes / opened_bytes, 3),
        "runs": per_run,
        "largest_unopened": [{"path": p, "bytes": s} for p, s in biggest],
        "unopened_by_group": [{"group": g, "bytes": s} for g, s in groups.most_common(25)],
        "opened": sorted(opened),
    }


def read_member(tag: str, platform: str, path: str, work: Path, tar_path: Path | None) -> bytes:
    """The first 64 KiB of one image file (enough for the ELF program headers)."""
    if tar_path is not None:
        with tarfile.open(tar_path) as tar:
            member = tar.extractfile(path)
            return member.read(65536) if member else b""
    cid = sh(["docker", "create", "--platform", platform, "--pull=never", tag]).stdout.strip()
    try:
        out = subprocess.run(["docker", "cp", f"{cid}:/{path}", "-"], capture_output=True, check=True).stdout
    finally:
        sh(["docker", "rm", cid])
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        return member.read(65536) if member else b""


def build_image(project: Any, target: Any) -> tuple[str, str]:
    """The target's image through edgepack's own plan and executor (cached steps reused); its tag and
    the smoke check's verdict. A smoke whose outputs differ from the host's still leaves the image built
    (tagged <image>:latest): it is measured, and the verdict recorded beside it."""
    from edgepack.errors import SmokeTestError
    from edgepack.pipeline.context import Build
    from edgepack.pipeline.image import publish
    from edgepack.pipeline.plan import plan
    from edgepack.pipeline.steps import execute
    from edgepack.runner import Runner

    b = Build(target=target, project=project, runner=Runner(echo=False), model=target.model)
    try:
        records = {r.name: r for r in execute(plan(b), b.cache)}
    except SmokeTestError as exc:
        return f"{target.image}:latest", f"failed: {str(exc).splitlines()[-1].strip()}"
    publish(b, records["image"].outputs)
    return str(records["image"].outputs["tag"]), "passed"


def runs_for(target: Any, serve_seconds: float) -> list[Run]:
    runs = [Run("smoke", ()), Run("serve", ("serve", "--port", "9464", "--interval", "1",
                                            "--duration", f"{serve_seconds:g}"))]  # fmt: skip
    if "capture" in getattr(target, "features", ()):
        runs.append(Run("capture-probe", ()))
    return runs


def main(argv: Iterable[str] | None = None) -> int:
    sys.path.insert(0, str(REPO / "src"))
    from edgepack.config import Project, load_target, select_targets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="all", help="all (default) or a comma-separated list")
    parser.add_argument("--no-build", action="store_true", help="take <image>:latest as it is")
    parser.add_argument("--serve-seconds", type=float, default=3.0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    project = Project(REPO)
    results: dict[str, Any] = {}
    for name in select_targets(project, args.target):
        target = load_target(project, name)
        tag, verdict = (f"{target.image}:latest", "not run (--no-build)") if args.no_build \
            else build_image(project, target)  # fmt: skip
        with tempfile.TemporaryDirectory(prefix=f"edgepack-opened-{name}-") as work:
            results[name] = measure(target, tag, runs=runs_for(target, args.serve_seconds), work=Path(work))
        results[name]["build_smoke_check"] = verdict
        r = results[name]
        print(f"{name:<18} image {r['image_bytes'] / 1e6:7.1f} MB  opened {r['opened_bytes'] / 1e6:6.1f} MB "
              f"in {r['opened_files']} files  ratio {r['ratio']:.2f}", flush=True)  # fmt: skip
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    targets = {**previous.get("targets", {}), **results}
    RESULTS.write_text(json.dumps({
        "benchmark": "opened",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/opened.py", *(argv or sys.argv[1:])]),
        "definitions": {
            "image_bytes": "sum of the sizes of the image's regular files (docker export; hard links once)",
            "opened_bytes": "sum of the sizes of the distinct image files opened by any run (successful "
                            "open/openat, symlinks resolved), plus the entrypoint's interpreter and its ELF "
                            "loader",
            "ratio": "image_bytes / opened_bytes (goal: <= 1.3)",
        },
        "targets": targets,
    }, indent=1) + "\n")  # fmt: skip
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
