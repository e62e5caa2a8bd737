"""The docs stand alone: every file of this repository they name exists, and nothing in the
repository (docs, code, comments) cites a design document that is not in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")} | {".github", ".ci"}
# A path into this repository: starts with one of its top-level entries.
PATH = re.compile(r"(?<![\w/.~$-])((?:\.github|\.ci|[\w-]+)/[\w./*-]*[\w*])")
OUTSIDE = re.compile(r"DESIGN(\.md| section)|\.\./shared/|/work/shared")


def tracked(*patterns: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    return [ROOT / name for name in listed]


DOCS = tracked("*.md")


def named_paths(text: str) -> set[str]:
    found = set()
    for match in PATH.finditer(text):
        path = match[1].rstrip(".")
        if path.split("/")[0] in TOP_LEVEL:
            found.add(path)
    return found


def exists(path: str) -> bool:
    if "*" in path:
        return any(ROOT.glob(path))
    return (ROOT / path).exists()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_a_doc_names_exists(doc: Path) -> None:
    text = doc.read_text()
    missing = sorted(p for p in named_paths(text)
                     if not exists(p) and not (doc.parent / p).exists())
    assert not missing, f"{doc.relative_to(ROOT)} names files that are not in the repository: " \
                        f"{missing}"


def test_nothing_cites_a_document_outside_the_repository() -> None:
    citing = []
    for path in tracked("*.md", "*.py", "*.sh", "*.tf", "*.tftpl", "*.yaml", "*.yml", "*.toml",
                        "Makefile", ".ci/run"):
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                citing.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not citing, "\n".join(citing)


def test_the_path_finder_finds_paths() -> None:
    # Guards the checks above: a finder that finds nothing proves nothing.
    text = "see `docs/DEVELOPMENT.md`, modules/ec2/templates/*.tftpl and /etc/nginx/x.conf."
    assert named_paths(text) == {"docs/DEVELOPMENT.md", "modules/ec2/templates/*.tftpl"}
    assert exists("modules/ec2/templates/*.tftpl") and not exists("docs/NOPE.md")
