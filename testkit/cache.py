"""The project's cache directory, $EC2I_CACHE as tools/prepare.sh computes it: the vLLM
environment and models, the stand-in provider's schema, the base image tarball, ..."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    explicit = os.environ.get("EC2I_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "ec2-inference"
