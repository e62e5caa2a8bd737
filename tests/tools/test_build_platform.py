"""tools/build.py builds for the instance's platform, not the machine's: the platform is in
the tag and in the pushed image's configuration, an image the engine made for another
architecture is refused before it is pushed, and a Python without docker/boto3 is told the
exact command that installs them. Real Docker engine and docker-registry; the arm64 image
is built without emulation from an arm64 base image served by the registry (COPY steps
only, which need no arm64 CPU)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import docker
import httpx
import pytest

from testkit.registry import BASE_IMAGE, Registry, local_tags, run_build, tiny_context
from tools import build

BUILD_PY = Path(build.__file__)
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKERFILE = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY payload.txt /payload.txt\n"


def push_blob(registry: Registry, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = httpx.post(f"http://{registry.address}/v2/{repository}/blobs/uploads/")
    started.raise_for_status()
    location = started.headers["location"]
    if location.startswith("/"):
        location = f"http://{registry.address}{location}"
    separator = "&" if "?" in location else "?"
    httpx.put(f"{location}{separator}digest={digest}", content=data).raise_for_status()
    return digest


def push_base_image(registry: Registry, repository: str, architecture: str) -> str:
    """A one-file image whose configuration says linux/<architecture>, pushed by hand
    (docker import on this engine only makes images of its own platform)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        content = f"{architecture} base\n".encode()
        info = tarfile.TarInfo("etc/base-release")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    raw = layer.getvalue()
    compressed = gzip.compress(raw)
    config = json.dumps({
        "architecture": architecture, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
    }).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": MANIFEST_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": push_blob(registry, repository, config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(compressed),
                    "digest": push_blob(registry, repository, compressed)}],
    }
    httpx.put(f"http://{registry.address}/v2/{repository}/manifests/{architecture}",
              content=json.dumps(manifest), headers={"Content-Type": MANIFEST_V2}
              ).raise_for_status()
    return f"{registry.address}/{repository}:{architecture}"


def pushed_architecture(registry: Registry, repository: str, tag: str) -> str:
    """The architecture in the configuration of the image the registry holds."""
    base = f"http://{registry.address}/v2/{repository}"
    manifest = httpx.get(f"{base}/manifests/{tag}", headers={"Accept": MANIFEST_V2})
    manifest.raise_for_status()
    config = httpx.get(f"{base}/blobs/{manifest.json()['config']['digest']}")
    config.raise_for_status()
    return str(config.json()["architecture"])


@pytest.mark.docker
def test_an_arm64_build_is_tagged_and_pushed_as_arm64(
        registry: Registry, docker_client: docker.DockerClient, tmp_path: Path) -> None:
    base = push_base_image(registry, "awsplatform-base", "arm64")
    context = tiny_context(tmp_path / "ctx", DOCKERFILE, "for graviton")
    run = run_build("--registry", f"{registry.address}/awsplatform-arm", "--context",
                    str(context), "--platform", "linux/arm64", "--build-arg", f"BASE_IMAGE={base}")
    assert run.returncode == 0, run.stderr
    tag = build.image_tag(context, "linux/arm64")
    assert tag.endswith("-arm64") and tag.startswith(build.content_tag(context))
    assert run.result is not None
    assert run.result["tag"] == tag and run.result["platform"] == "linux/arm64"
    assert registry.tags("awsplatform-arm") == [tag]
    assert pushed_architecture(registry, "awsplatform-arm", tag) == "arm64"
    docker_client.images.remove(base)


@pytest.mark.docker
def test_the_default_build_is_for_x86_64_instances(registry: Registry, tmp_path: Path) -> None:
    context = tiny_context(tmp_path / "ctx", DOCKERFILE, "for x86_64")
    run = run_build("--registry", f"{registry.address}/awsplatform-amd", "--context",
                    str(context), "--build-arg", f"BASE_IMAGE={BASE_IMAGE}")
    assert run.returncode == 0, run.stderr
    assert run.result is not None and run.result["platform"] == "linux/amd64"
    assert run.result["tag"] == build.image_tag(context) == f"{build.content_tag(context)}-amd64"
    assert pushed_architecture(registry, "awsplatform-amd", run.result["tag"]) == "amd64"


@pytest.mark.docker
def test_an_image_made_for_another_architecture_is_refused_before_the_push(
        registry: Registry, docker_client: docker.DockerClient, tmp_path: Path) -> None:
    # The local base exists only for amd64; this engine has no emulation, so it builds an
    # amd64 image although arm64 was asked for. Pushed, that tag would lie to the instance.
    context = tiny_context(tmp_path / "ctx", DOCKERFILE, "wrong platform")
    run = run_build("--registry", f"{registry.address}/awsplatform-wrong", "--context",
                    str(context), "--platform", "linux/arm64", "--build-arg",
                    f"BASE_IMAGE={BASE_IMAGE}")
    assert run.returncode == 1
    assert "for linux/arm64 produced a linux/amd64 image" in run.stderr
    assert run.result is None
    assert registry.tags("awsplatform-wrong") == []
    assert local_tags(docker_client, f"{registry.address}/awsplatform-wrong") == []


def test_an_unknown_platform_is_refused_by_the_command_line() -> None:
    done = subprocess.run([sys.executable, str(BUILD_PY), "--registry", "127.0.0.1:1/x",
                           "--platform", "linux/s390x"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "invalid choice: 'linux/s390x'" in done.stderr


def test_a_virtualenv_without_docker_is_told_the_pip_command(tmp_path: Path) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), str(BUILD_PY), "--registry",
         "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev"],
        capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert f"{python}, the Python running this build, lacks docker, boto3." in done.stderr
    assert f"{python} -m pip install 'docker>=7.1' 'boto3>=1.34'" in done.stderr
    # Another registry than ECR needs no boto3.
    other = subprocess.run([str(python), str(BUILD_PY), "--registry", "127.0.0.1:5000/x"],
                           capture_output=True, text=True)
    assert other.returncode == 2
    assert f"{python} -m pip install 'docker>=7.1'\n" in other.stderr


def test_a_system_python_is_told_to_make_the_virtualenv_terraform_uses() -> None:
    # The interpreter this venv was made from, with -S: no site-packages, so neither docker
    # nor boto3, on any machine.
    system_python = Path(sys.base_prefix, "bin", "python3")
    done = subprocess.run([str(system_python), "-S", str(BUILD_PY), "--registry",
                           "127.0.0.1:5000/x"], capture_output=True, text=True)
    assert done.returncode == 2
    venv = build.ROOT / ".venv"
    assert f"python3 -m venv {venv} && {venv}/bin/python -m pip install 'docker>=7.1'" in (
        done.stderr)
