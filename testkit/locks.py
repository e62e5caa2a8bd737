"""Host-wide locks for the few steps that processes of one machine must not run together:
`make test` runs pytest in several worker processes (pytest-xdist), and anyone may run
tools/instance_sim.py beside it. An exclusive flock on a file in the cache directory; the
kernel releases it when its holder exits, so a killed run leaves nothing to clean."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator

from testkit.cache import cache_dir


@contextlib.contextmanager
def host_lock(name: str) -> Iterator[None]:
    """Hold the machine's lock `name` for the duration of the block (waits for it)."""
    directory = cache_dir() / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
