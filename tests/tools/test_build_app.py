"""tools/build.py on the real app/: build and push to a loopback registry, pull the image
back and run the proxy from it, then the no-op run and a one-byte change. Run as CI and
`terraform apply` run it: a subprocess, one JSON line on stdout, the exit code."""

from __future__ import annotations

import http.server
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from testkit.ports import free_port
from testkit.registry import ROOT, Registry, Run, run_build
from tools import build

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE_SIZE_LIMIT = 200 * 1024 * 1024


class TinyUpstream(http.server.BaseHTTPRequestHandler):
    """Stands in for vLLM's two probe routes, so the proxy's /health can answer 200."""

    def do_GET(self) -> None:
        body = {"/health": b"", "/v1/models": b'{"object":"list","data":[{"id":"tiny"}]}'}
        if self.path not in body:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body[self.path])))
        self.end_headers()
        self.wfile.write(body[self.path])

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tiny_upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TinyUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def app_push(registry: Registry) -> Run:
    """app/ built and pushed once to the open registry (cold as far as the registry goes)."""
    run = run_build(
        "--registry", registry.address, "--repository", "proxy", "--context", str(ROOT / "app")
    )
    assert run.returncode == 0, run.stderr
    print(f"\nbuild+push of app/: {run.seconds:.1f} s", file=sys.stderr)
    return run


def test_app_image_is_pushed_under_its_content_tag(app_push: Run, registry: Registry) -> None:
    assert app_push.result is not None
    tag = build.image_tag(ROOT / "app")
    assert app_push.result == {
        "image": f"{registry.address}/proxy:{tag}",
        "tag": tag,
        "digest": app_push.result["digest"],
        "platform": "linux/amd64",
        "status": "pushed",
    }
    assert app_push.result["digest"].startswith("sha256:")
    assert registry.tags("proxy") == [tag]
    assert "Step 1/" in app_push.stderr  # build progress goes to stderr, not stdout


def test_pulled_back_image_runs_the_proxy_and_answers_health(
    app_push: Run,
    registry: Registry,
    docker_client: docker.DockerClient,
    tiny_upstream: str,
) -> None:
    assert app_push.result is not None
    image = app_push.result["image"]
    docker_client.images.remove(image)  # so what runs is what the registry gives back
    pulled = docker_client.images.pull(image)
    assert f"{image.rsplit(':', 1)[0]}@{app_push.result['digest']}" in pulled.attrs["RepoDigests"]
    size = int(pulled.attrs["Size"])
    print(f"\nimage size: {size / 1e6:.0f} MB", file=sys.stderr)
    assert size < IMAGE_SIZE_LIMIT

    port = free_port()
    container = docker_client.containers.run(
        image,
        detach=True,
        network_mode="host",
        # A key: without one the proxy refuses to start (it fails closed).
        environment={
            "PROXY_PORT": str(port),
            "PROXY_UPSTREAM_URL": tiny_upstream,
            "PROXY_API_KEYS": "sk-build-test",
        },
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.TransportError:
                container.reload()
                assert container.status == "running", container.logs().decode()
                assert time.monotonic() < deadline, container.logs().decode()
                time.sleep(0.2)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
        assert ready.json() == {"status": "ready", "models": ["tiny"]}
    finally:
        container.remove(force=True)


def test_unchanged_context_is_a_no_op(app_push: Run, registry: Registry) -> None:
    again = run_build("--registry", f"{registry.address}/proxy", "--context", str(ROOT / "app"))
    assert again.returncode == 0, again.stderr
    assert again.result == {**(app_push.result or {}), "status": "already-present"}
    assert "Step 1/" not in again.stderr  # no build step ran: one registry lookup
    print(f"\nno-op run: {again.seconds:.2f} s", file=sys.stderr)
    # Seconds (about one on an idle machine); the bound is generous for a loaded 2-core
    # machine and still far below any build (tools/bench measures, this only guards).
    assert again.seconds < 30


def test_one_byte_change_gives_a_new_tag(app_push: Run, registry: Registry, tmp_path: Path) -> None:
    context = tmp_path / "app"
    shutil.copytree(ROOT / "app", context, ignore=shutil.ignore_patterns("*.egg-info"))
    with (context / "inference_proxy" / "__init__.py").open("a") as source:
        source.write("#")
    run = run_build(
        "--registry", registry.address, "--repository", "proxy", "--context", str(context)
    )
    assert run.returncode == 0, run.stderr
    assert run.result is not None and app_push.result is not None
    assert run.result["status"] == "pushed"
    assert run.result["tag"] != app_push.result["tag"]
    assert run.result["digest"] != app_push.result["digest"]
    assert sorted(registry.tags("proxy")) == sorted([app_push.result["tag"], run.result["tag"]])
