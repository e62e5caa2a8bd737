"""The content-hash tag of a build context (tools/build.py): what changes it, what does
not, and how .dockerignore is read. Pure logic, in process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools import build


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


BASIC = {
    "Dockerfile": "FROM scratch\nCOPY . /\n",
    "requirements.txt": "httpx\n",
    "pkg/__init__.py": "",
    "pkg/main.py": "print('hi')\n",
}


def test_tag_is_a_stable_prefix_of_the_content_hash(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, BASIC)
    assert build.content_tag(tree) == build.content_hash(tree)[:16]
    assert build.content_tag(tree) == build.content_tag(tree)
    assert len(build.content_tag(tree)) == 16


def test_same_files_in_another_place_with_other_mtimes_give_the_same_tag(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "a", BASIC)
    second = make_tree(tmp_path / "b", dict(reversed(BASIC.items())))
    os.utime(second / "pkg/main.py", (0, 0))
    assert build.content_tag(first) == build.content_tag(second)


def test_one_byte_changes_the_tag(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, BASIC)
    before = build.content_tag(tree)
    (tree / "pkg/main.py").write_text("print('hi!')\n")
    assert build.content_tag(tree) != before


def test_a_renamed_file_changes_the_tag(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, BASIC)
    before = build.content_tag(tree)
    (tree / "pkg/main.py").rename(tree / "pkg/app.py")
    assert build.content_tag(tree) != before


def test_files_dockerignore_excludes_do_not_count(tmp_path: Path) -> None:
    tree = make_tree(
        tmp_path, {**BASIC, ".dockerignore": "**/__pycache__\n*.egg-info\n# comment\n\n"}
    )
    before = build.content_tag(tree)
    make_tree(tree, {"pkg/__pycache__/main.cpython-311.pyc": "x", "x.egg-info/PKG-INFO": "y"})
    assert build.content_tag(tree) == before
    assert build.context_files(tree) == sorted([*BASIC, ".dockerignore"])


def test_dockerfile_and_dockerignore_count_even_when_ignored(tmp_path: Path) -> None:
    # app/.dockerignore lists both, yet Docker sends them and they decide the image.
    tree = make_tree(tmp_path, {**BASIC, ".dockerignore": "Dockerfile\n.dockerignore\n"})
    before = build.content_tag(tree)
    (tree / "Dockerfile").write_text("FROM scratch\n")
    assert build.content_tag(tree) != before
    assert {"Dockerfile", ".dockerignore"} <= set(build.context_files(tree))


def test_last_matching_rule_wins_and_exceptions_reinclude(tmp_path: Path) -> None:
    tree = make_tree(
        tmp_path,
        {
            **BASIC,
            ".dockerignore": "docs\n!docs/keep.md\n*.md\n",
            "docs/keep.md": "k",
            "docs/drop.txt": "d",
            "README.md": "r",
            "pkg/NOTES.md": "n",
        },
    )
    files = build.context_files(tree)
    # `*.md` comes last but only names top-level files: `*` never crosses `/`.
    assert "docs/keep.md" in files
    assert "docs/drop.txt" not in files
    assert "README.md" not in files
    assert "pkg/NOTES.md" in files


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.pyc", "x.pyc", True),
        ("*.pyc", "a/x.pyc", False),
        ("**/*.pyc", "x.pyc", True),
        ("**/*.pyc", "a/b/x.pyc", True),
        ("a/**", "a/b/c", True),
        ("a/**", "ab/c", False),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("[ab].txt", "b.txt", True),
        ("[!ab].txt", "b.txt", False),
        ("a/*/c", "a/b/c", True),
        ("a/*/c", "a/b/b/c", False),
    ],
)
def test_glob_semantics_follow_terraform_fileset(pattern: str, path: str, matches: bool) -> None:
    assert bool(build.glob_regex(pattern).fullmatch(path)) is matches


def test_a_pattern_naming_a_directory_covers_everything_below(tmp_path: Path) -> None:
    rule = build.ignore_rules("/cache/\n")[0]
    assert rule.exclude and rule.pattern == "cache"
    assert rule.matches("cache/a/b.bin")
    assert not rule.matches("cachefile")


def test_symlinked_files_count_by_their_content(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "ctx", BASIC)
    target = make_tree(tmp_path / "outside", {"shared.txt": "one"})
    (tree / "shared.txt").symlink_to(target / "shared.txt")
    before = build.content_tag(tree)
    (target / "shared.txt").write_text("two")
    assert build.content_tag(tree) != before
