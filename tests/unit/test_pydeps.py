from __future__ import annotations

from pathlib import Path

from edgepack.config import Project, load_target
from edgepack.pipeline.pip import platform_args, prune

REPO = Path(__file__).resolve().parents[2]


def test_platform_args_cover_every_manylinux_tag_of_the_glibc() -> None:
    args = platform_args(load_target(Project(REPO), "rpi4"))
    tags = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in tags
    assert tags[-1] == "manylinux2014_aarch64"
    assert args[-6:] == ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]


def test_prune_removes_only_matches(tmp_path: Path) -> None:
    for rel in ("numpy/_core/tests/t.py", "numpy/_core/x.py", "numpy/tests/a.py", "a/b.pyi", "a/b.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    removed = prune(tmp_path, ("numpy/tests", "numpy/*/tests", "**/*.pyi", "nothing/*"))
    assert removed == ["numpy/tests", "numpy/_core/tests", "a/b.pyi"]
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["a/b.py", "numpy/_core/x.py"]
