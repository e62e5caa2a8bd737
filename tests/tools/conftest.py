"""Fixtures for the image build tests (test_build*.py): the Docker engine prepared by
tools/prepare/40-docker.sh, docker-registry on loopback ports (open, and with htpasswd
auth), and moto server for the ECR login. Each service is started once per session on
a free 127.0.0.1 port and stopped by its PID."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from testkit.ports import free_port
from testkit.registry import (
    BASE_IMAGE,
    USERS,
    Registry,
    start_registry,
    stop,
    wait_for_http,
)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker daemon answers ({exc}); run `bash tools/prepare.sh test`")
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"{BASE_IMAGE} is not in the engine; run `bash tools/prepare.sh test`")
    yield client
    client.close()


def _remove_local_images(client: docker.DockerClient, address: str) -> None:
    """Drop the engine's tags of images pushed to a test registry that is going away."""
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(f"{address}/"):
                client.images.remove(tag)


@pytest.fixture(scope="session")
def registry(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry-open"), {}) as started:
        yield started
        _remove_local_images(docker_client, started.address)


@pytest.fixture(scope="session")
def auth_registry(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry-auth"), USERS) as started:
        yield started
        _remove_local_images(docker_client, started.address)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m moto.server` on a free port; its URL is what AWS_ENDPOINT_URL gets."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=out,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/moto-api/", process, log)
        yield url
    finally:
        stop(process)
