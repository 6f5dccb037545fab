"""Config YAML loads safely: bounded aliases, no duplicate keys, encoding and folder errors at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepack.errors import ConfigError
from edgepack.yamlconf import MAX_VALUES, load_yaml

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def load_error(tmp_path: Path, content: bytes | str, name: str = "t.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    return info.value.render()


def test_a_billion_laughs_document_is_refused_quickly_not_expanded(tmp_path: Path) -> None:
    message = load_error(tmp_path, LAUGHS)
    assert message.startswith(f"{tmp_path / 't.yaml'}: expands to more than {MAX_VALUES} values")
    assert "aliases" in message


def test_a_few_aliases_are_still_fine(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("base: &src [deb http://x bookworm main]\nother: *src\n")
    assert load_yaml(path).data == {
        "base": ["deb http://x bookworm main"],
        "other": ["deb http://x bookworm main"],
    }


def test_duplicate_keys_are_refused_with_both_lines(tmp_path: Path) -> None:
    message = load_error(tmp_path, "threads: 4\nqemu_cpu: cortex-a72\nthreads: 2\n")
    assert message.startswith(f"{tmp_path / 't.yaml'}:3: duplicate key 'threads' (first at line 1).")


def test_nested_duplicate_keys_name_the_dotted_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, "smoke:\n  atol: 1.0\n  rtol: 2.0\n  atol: 3.0\n")
    assert ":4: duplicate key 'smoke.atol' (first at line 2)." in message


def test_a_non_utf8_byte_is_named_with_its_line_and_column(tmp_path: Path) -> None:
    message = load_error(tmp_path, b"description: ok\nimage: edge\xffpack\n")
    assert message.splitlines() == [f"{tmp_path / 't.yaml'}:2: byte 0xff at column 12 is not UTF-8.",
                                    "Save the file as UTF-8."]  # fmt: skip


def test_a_folder_where_a_file_is_expected_is_named(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"t\.yaml: is a folder, not a YAML file"):
        load_yaml(tmp_path / "t.yaml")


def test_a_symlink_loop_is_named(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    with pytest.raises(ConfigError, match=r"loop\.yaml: cannot be read: Too many levels of symbolic links"):
        load_yaml(tmp_path / "loop.yaml")


def test_merge_keys_are_refused_at_their_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "a: &a {x: 1}\nb:\n  <<: *a\n")
    assert ":3: merge keys ('<<') are not supported." in message


def test_a_bad_scalar_tag_is_a_config_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, "a: !!int nope\n")
    assert message.startswith(f"{tmp_path / 't.yaml'}:1:")
