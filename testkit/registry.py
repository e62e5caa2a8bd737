"""Loopback services for the image build tests: docker-registry (open, or with htpasswd
auth) and helpers to start, probe and stop processes by PID. The session fixtures in
conftest.py use these; tests import the names they assert on from here."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import docker
import httpx

from testkit.ports import free_port
from testkit.support import need_tool

ROOT = Path(__file__).resolve().parents[1]

BASE_IMAGE = "python:3.12-slim"  # what app/Dockerfile's BASE_IMAGE defaults to
MOTO_ACCOUNT = "123456789012"  # moto's default account; its ECR password is "<account>-auth-token"
USERS = {"builder": "s3cret-pass", "AWS": f"{MOTO_ACCOUNT}-auth-token"}


def wait_for_http(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited ({process.returncode}): {log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(
        f"{process.args!r} did not answer on {url} within {timeout} s: {log.read_text()}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Registry:
    """A docker-registry on 127.0.0.1; `users` empty means no auth."""

    address: str
    users: Mapping[str, str]
    process: subprocess.Popen[bytes] = field(compare=False, repr=False)

    def tags(self, repository: str) -> list[str]:
        """Tags the registry itself lists for `repository` (asked over HTTP, not via Docker)."""
        auth = next(iter(self.users.items()), None)
        response = httpx.get(f"http://{self.address}/v2/{repository}/tags/list", auth=auth)
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return list(response.json().get("tags") or [])


@contextlib.contextmanager
def start_registry(tmp: Path, users: Mapping[str, str]) -> Iterator[Registry]:
    binary = need_tool("docker-registry")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {
            "filesystem": {"rootdirectory": str(tmp / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if users:
        htpasswd = tmp / "htpasswd"
        htpasswd.write_text(
            "".join(
                f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                for user, password in users.items()
            )
        )
        config["auth"] = {"htpasswd": {"realm": "ec2-inference-tests", "path": str(htpasswd)}}
    # JSON is YAML, so the registry reads this file as it is.
    (tmp / "config.yml").write_text(json.dumps(config))
    log = tmp / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "serve", str(tmp / "config.yml")], stdout=out, stderr=out
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v2/", process, log)
        yield Registry(f"127.0.0.1:{port}", users, process)
    finally:
        stop(process)


# --- running tools/build.py as CI and Terraform do --------------------------------------

BUILD_PY = ROOT / "tools" / "build.py"


@dataclass(frozen=True)
class Run:
    returncode: int
    result: dict[str, str] | None  # the JSON line, when there is one
    stderr: str
    seconds: float


def run_build(*args: str, stdin: str | None = None, env: Mapping[str, str] | None = None) -> Run:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(BUILD_PY), "--network", "host", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
    )
    seconds = time.monotonic() - started
    lines = done.stdout.splitlines()
    assert len(lines) <= 1, f"stdout must be one JSON line at most: {done.stdout!r}"
    result = json.loads(lines[0]) if lines else None
    return Run(done.returncode, result, done.stderr, seconds)


def local_tags(client: docker.DockerClient, prefix: str) -> list[str]:
    return [tag for image in client.images.list() for tag in image.tags if tag.startswith(prefix)]


def tiny_context(root: Path, dockerfile: str, payload: str = "payload") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    (root / "payload.txt").write_text(payload)
    return root
