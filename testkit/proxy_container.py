"""The proxy image (app/Dockerfile) built on the local engine and run the way the
instance runs it, hardened: read-only root, a tmpfs for /tmp, no capabilities, no new
privileges, a pids limit and a memory limit. `HARDENED` is the exact flag list; the
instance's unit uses the same flags (docs/API_REFERENCE.md, "Image")."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from testkit.ports import free_port
from testkit.registry import BASE_IMAGE

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "proxy-test"  # every image and container made here is named with it

DOCKER_BUILD = ("docker", "build", "--network", "host")
HARDENED = (
    "--read-only",
    "--tmpfs",
    "/tmp:rw,noexec,nosuid,size=16m",  # noqa: S108 - the container's own /tmp
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--pids-limit",
    "64",
)


def image_tag() -> str:
    """A tag from the content of app/ (so a changed proxy is rebuilt, an unchanged not)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "app").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return f"{PREFIX}:{digest.hexdigest()[:12]}"


def build_image() -> str:
    """The image of app/ as it is now, built if missing; older ones of ours are removed
    (those a running container still uses stay: no force)."""
    tag = image_tag()
    present = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    if present.returncode != 0:
        listed = subprocess.run(
            ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", PREFIX],
            capture_output=True,
            text=True,
        ).stdout.split()
        for old in listed:
            subprocess.run(["docker", "image", "rm", old], capture_output=True)
        subprocess.run(
            [
                *DOCKER_BUILD,
                "--build-arg",
                f"BASE_IMAGE={BASE_IMAGE}",
                "-t",
                tag,
                str(ROOT / "app"),
            ],
            check=True,
            capture_output=True,
        )
    return tag


@dataclass
class Container:
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inspect(self, template: str) -> str:
        return subprocess.run(
            ["docker", "inspect", "-f", template, self.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def logs(self) -> str:
        result = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        return result.stdout + result.stderr

    def signal(self, name: str) -> None:
        subprocess.run(
            ["docker", "kill", "--signal", name, self.name], check=True, capture_output=True
        )

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(self.url + "/metrics", timeout=5).raise_for_status()
                return
            except httpx.HTTPError:
                if self.inspect("{{.State.Running}}") != "true" or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the proxy container did not come up:\n{self.logs()}"
                    ) from None
                time.sleep(0.2)


@contextlib.contextmanager
def running(
    image: str,
    env: Mapping[str, str],
    *,
    mounts: Sequence[str] = (),
    memory: str = "256m",
    extra: Sequence[str] = (),
) -> Iterator[Container]:
    """The proxy in a hardened container on the host network (it reaches a fake vLLM on
    loopback); removed at the end."""
    port = free_port()
    name = f"{PREFIX}-{port}"
    argv = ["docker", "run", "-d", "--name", name, "--network", "host", *HARDENED]
    argv += ["--memory", memory, "--memory-swap", memory, *extra]
    for mount in mounts:
        argv += ["-v", mount]
    for key, value in {"PROXY_HOST": "127.0.0.1", "PROXY_PORT": str(port), **env}.items():
        argv += ["-e", f"{key}={value}"]
    subprocess.run([*argv, image], check=True, capture_output=True)
    container = Container(name, port)
    try:
        yield container
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
