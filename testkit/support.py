"""Small helpers shared by the test packages."""

from __future__ import annotations

import shutil

import pytest


def need_tool(name: str) -> str:
    """Return the path of executable `name`, or skip (a failure in CI, see conftest)."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed; run `bash tools/prepare.sh test`")
    return path
