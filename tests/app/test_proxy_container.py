"""The proxy image on the real Docker engine, run hardened as the instance runs it
(testkit/proxy_container.py: read-only root, tmpfs /tmp, no capabilities, no new
privileges, pids and memory limits): it serves, reloads a key file that the host
replaces by rename in a mounted directory, takes SIGHUP as PID 1, and under a cgroup
memory limit survives a burst of 10 MiB bodies, answering 413/429, while a concurrent
stream keeps its pace."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit import proxy_container
from testkit.fake_vllm import MODEL
from testkit.ports import free_port
from testkit.support import need_tool

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ALICE, BOB = "sk-alice-container-1", "sk-bob-container-2"
IMAGE_UID = 10001  # app/Dockerfile's user
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def image() -> str:
    need_tool("docker")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker engine answers; run `bash tools/prepare.sh test`")
    return proxy_container.build_image()


@pytest.fixture(scope="module")
def fake_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The fake vLLM in its own process, so its event loop shares nothing with the test."""
    port = free_port()
    log = (tmp_path_factory.mktemp("fake") / "fake.log").open("wb")
    argv = [sys.executable, "-m", "testkit.fake_vllm", "--port", str(port)]
    process = subprocess.Popen(
        [*argv, "--tokens-per-second", "30", "--uvloop"],
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def key_dir(tmp_path: Path, *keys: tuple[str, str]) -> Path:
    """A directory the instance would mount: root-owned, readable by the image's group."""
    directory = tmp_path / "proxy-keys"
    directory.mkdir()
    os.chown(directory, 0, IMAGE_UID)
    directory.chmod(0o750)
    write_keys(directory / "keys.json", *keys)
    return directory


def write_keys(path: Path, *keys: tuple[str, str]) -> None:
    """As the instance's refresh does: a new file, then renamed over the old one."""
    new = path.parent / ".keys.json.new"
    new.write_text(json.dumps({"keys": [{"name": n, "key": k} for n, k in keys]}))
    os.chown(new, 0, IMAGE_UID)
    new.chmod(0o640)
    os.replace(new, path)


def status_with(container: proxy_container.Container, key: str) -> int:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.get(container.url + "/v1/models", headers=headers, timeout=5).status_code


def metric(container: proxy_container.Container, name: str, **labels: str) -> float:
    from testkit.proxy_server import metric_sample

    return metric_sample(httpx.get(container.url + "/metrics", timeout=5).text, name, **labels)


def eventually(predicate: object, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return bool(predicate())  # type: ignore[operator]


def test_hardened_container_reloads_keys_replaced_in_a_mounted_directory(
    image: str, fake_url: str, tmp_path: Path
) -> None:
    keys = key_dir(tmp_path, ("alice", ALICE))
    env = {
        "PROXY_UPSTREAM_URL": fake_url,
        "PROXY_API_KEYS_FILE": "/run/proxy-keys/keys.json",
        "PROXY_KEYS_RELOAD_SECONDS": "0.5",
    }
    with proxy_container.running(image, env, mounts=[f"{keys}:/run/proxy-keys:ro"]) as proxy:
        proxy.wait_healthy()
        assert proxy.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
        assert proxy.inspect("{{.HostConfig.CapDrop}}") == "[ALL]"
        assert status_with(proxy, ALICE) == 200 and status_with(proxy, BOB) == 401
        write_keys(keys / "keys.json", ("bob", BOB))
        assert eventually(lambda: status_with(proxy, BOB) == 200)
        assert status_with(proxy, ALICE) == 401
        # SIGHUP reaches the proxy as the container's PID 1.
        proxy.signal("HUP")
        assert eventually(lambda: metric(proxy, "proxy_api_key_reloads_total", result="ok") == 2)
        assert "key set reloaded (SIGHUP)" in proxy.logs()
        assert ALICE not in proxy.logs() and BOB not in proxy.logs()


def test_a_bind_mount_of_the_file_itself_misses_a_rename(
    image: str, fake_url: str, tmp_path: Path
) -> None:
    """Why the docs say: mount the directory. A bind mount pins the inode it was given."""
    keys = key_dir(tmp_path, ("alice", ALICE))
    env = {
        "PROXY_UPSTREAM_URL": fake_url,
        "PROXY_API_KEYS_FILE": "/run/keys.json",
        "PROXY_KEYS_RELOAD_SECONDS": "0.2",
    }
    mount = f"{keys / 'keys.json'}:/run/keys.json:ro"
    with proxy_container.running(image, env, mounts=[mount]) as proxy:
        proxy.wait_healthy()
        write_keys(keys / "keys.json", ("bob", BOB))
        # The old inode's ctime moves (its last link is gone), so the proxy reads the file
        # again: still the old content.
        assert eventually(lambda: metric(proxy, "proxy_api_key_reloads_total", result="ok") == 1)
        time.sleep(2)  # 10 more checks of the file
        assert status_with(proxy, ALICE) == 200 and status_with(proxy, BOB) == 401


def junk_body(size: int) -> bytes:
    head = b'{"model":"' + MODEL.encode() + b'","messages":[],"junk":['
    count = (size - len(head) - 4) // 4
    body = head + b"{}, " * count + b"{}]}"
    return body + b" " * (size - len(body))


def post_expecting(port: int, body: bytes, key: str) -> int:
    """POST with `Expect: 100-continue`, as a careful client sends a big body: the body
    goes only when the server asks for it; returns the final status."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        answer = sock.recv(65536)
        if answer.startswith(b"HTTP/1.1 100"):
            sock.sendall(body)
            answer = answer.partition(b"\r\n\r\n")[2]
            while b"\r\n" not in answer:
                answer += sock.recv(65536)
        return int(answer.split(b" ", 2)[1])


def stream_gaps(url: str, key: str, tokens: int, out: list[float]) -> None:
    """Read one stream; append the time between consecutive token reads."""
    body = {"model": MODEL, "messages": [], "max_tokens": tokens, "stream": True}
    last = None
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            url + "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
        ) as response,
    ):
        for data in response.iter_raw():
            if b'"content":"t' in data:
                now = time.monotonic()
                if last is not None:
                    out.append(now - last)
                last = now


def test_large_bodies_under_a_memory_limit_get_413_429_and_do_not_stall_a_stream(
    image: str, fake_url: str, tmp_path: Path
) -> None:
    env = {"PROXY_UPSTREAM_URL": fake_url, "PROXY_API_KEYS": ALICE}
    with proxy_container.running(image, env, memory="256m") as proxy:
        proxy.wait_healthy()
        quiet: list[float] = []
        stream_gaps(proxy.url, ALICE, 60, quiet)  # the stream's pace alone

        loaded: list[float] = []
        reader = threading.Thread(target=stream_gaps, args=(proxy.url, ALICE, 120, loaded))
        reader.start()
        time.sleep(1)
        statuses: list[int] = []
        big, too_big = junk_body(10 * MIB), junk_body(11 * MIB)

        def send(body: bytes) -> None:
            statuses.append(post_expecting(proxy.port, body, ALICE))

        senders = [threading.Thread(target=send, args=(big,)) for _ in range(24)]
        senders += [threading.Thread(target=send, args=(too_big,)) for _ in range(2)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(120)
        reader.join(60)

        assert proxy.inspect("{{.State.Running}} {{.State.OOMKilled}}") == "true false"
        assert httpx.get(proxy.url + "/health", timeout=5).status_code == 200
        assert statuses.count(413) == 2
        assert statuses.count(429) >= 1  # more large bodies than slots at once
        # The admitted ones reached the fake (its 400 for a too-long prompt, relayed).
        assert statuses.count(400) >= 4 and set(statuses) <= {400, 413, 429}
        assert len(loaded) == 119  # the stream came through whole
        peak = int(proxy.inspect("{{.HostConfig.Memory}}"))
        usage = subprocess.run(
            [
                "docker",
                "exec",
                proxy.name,
                "python",
                "-c",
                "print(open('/sys/fs/cgroup/memory/memory.max_usage_in_bytes').read())",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(
            f"\nlarge bodies: statuses {sorted(statuses)}; stream gap max {max(quiet) * 1000:.0f}"
            f" ms alone, {max(loaded) * 1000:.0f} ms with the bodies; cgroup peak "
            f"{int(usage) / MIB if usage.isdigit() else usage} MiB of {peak / MIB:.0f} MiB",
            file=sys.stderr,
        )
        # Generous for a shared 2-core machine, where make test runs other files beside this
        # one (a 265 ms hiccup seen there); parsing these bodies in the event loop took the
        # gap from 34 ms to over 500 ms.
        assert max(loaded) < max(quiet) + 0.35
