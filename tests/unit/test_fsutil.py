from __future__ import annotations

from pathlib import Path

import pytest

from edgepack.fsutil import atomic_path, sha256_tree, write_json


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "out" / "image.tar"
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert not final.exists()
    assert list(final.parent.iterdir()) == []


def test_interrupted_dir_keeps_previous(tmp_path: Path) -> None:
    final = tmp_path / "d"
    final.mkdir()
    (final / "old").write_text("old")
    with pytest.raises(OSError), atomic_path(final, is_dir=True) as tmp:
        (tmp / "new").write_text("x")
        raise OSError(28, "No space left on device")
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
    assert (final / "old").read_text() == "old"


def test_write_json_is_sorted(tmp_path: Path) -> None:
    write_json(tmp_path / "r.json", {"b": 1, "a": 2})
    assert (tmp_path / "r.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'


def test_tree_hash_sees_content_and_names(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("1")
    h1 = sha256_tree(tmp_path)
    (tmp_path / "a").write_text("2")
    h2 = sha256_tree(tmp_path)
    (tmp_path / "a").rename(tmp_path / "b")
    assert len({h1, h2, sha256_tree(tmp_path)}) == 3


def test_tree_hash_ignores_bytecode_caches(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x = 1")
    before = sha256_tree(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\x00")
    assert sha256_tree(tmp_path) == before
