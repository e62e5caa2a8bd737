"""The repository keeps the shape docs/DEVELOPMENT.md "Layout" describes."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_extras_split_so_the_image_installs_only_the_app() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["tool"]["setuptools"]["dynamic"]["optional-dependencies"]
    assert set(extras) == {"app", "tools", "test"}
    app = (ROOT / "app" / "requirements.txt").read_text()
    assert "pytest" not in app and "boto3" not in app


def test_ci_entry_point_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n## ")[0]
    assert "make demo" in head and "make test" in head
