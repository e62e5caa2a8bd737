"""Processes started for tests, benchmarks and the demo, and stopped by their PID.

Each service runs in its own session (process group), so that stopping it by its PID also
ends the children it forked (vLLM's engine core, NGINX's workers) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StackError(RuntimeError):
    """A service could not be started or is missing something; the message says what to do."""


@dataclass
class Service:
    """One started process (the leader of its own process group) and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        stop_process_group(self.pid, grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)


def stop_process_group(pid: int, grace: float = 15.0) -> None:
    """SIGTERM the process group led by `pid`, SIGKILL it after `grace` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # The leader may be a zombie we have not reaped; the group is gone when only it is left.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def start_process(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    url: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Service:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Service(name, process, log_path, url)


def wait_until(
    service: Service,
    ready: Callable[[], bool],
    timeout: float,
    on_tick: Callable[[float], None] | None = None,
    interval: float = 0.5,
) -> float:
    """Poll `ready` until it is true; raise StackError with the log tail if the process
    exits or `timeout` passes. Returns the seconds it took."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if service.process.poll() is not None:
            raise StackError(
                f"{service.name} exited with status {service.process.returncode} while starting;"
                f" last lines of {service.log_path}:\n{service.log_tail()}"
            )
        if ready():
            return elapsed
        if elapsed > timeout:
            raise StackError(
                f"{service.name} was not ready after {timeout:.0f} s; last lines of"
                f" {service.log_path}:\n{service.log_tail()}"
            )
        if on_tick is not None:
            on_tick(elapsed)
        time.sleep(interval)


@dataclass
class Stack:
    """Services started together; `stop()` ends them in reverse order."""

    services: list[Service] = field(default_factory=list)

    def add(self, service: Service) -> Service:
        self.services.append(service)
        return service

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    try:
        yield stack
    finally:
        stack.stop()


