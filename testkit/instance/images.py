"""The images a booted instance runs, pushed to the registry storage its registries serve.

* the instance itself: `ec2i-instance:debian12`, made by tools/prepare/42-instance-image.sh;
* the proxy: built from app/ by tools/build.py (as Terraform's modules/build runs it), under
  its content-hash tag;
* vLLM: testkit/instance/vllm_image/ (testkit/fake_vllm.py behind vLLM's entry point), under
  a hash of its build context.

Both are pushed through a plain docker-registry on a free loopback port over the shared
storage (testkit/instance/services.py `registry_storage`); the instance then pulls them from
the TLS registries that answer for the ECR and public.ecr.aws host names. A tag already in
the storage is not built again. The engine's own tags of the loopback address are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import httpx

from testkit import registry as loopback
from testkit.instance import services
from testkit.locks import host_lock
from testkit.ports import free_port
from testkit.processes import StackError, start_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
INSTANCE_IMAGE = "ec2i-instance:debian12"
INSTANCE_IMAGE_LABEL = "org.ec2-inference.instance-image"
VLLM_CONTEXT = Path(__file__).resolve().parent / "vllm_image"
FAKE_VLLM = ROOT / "testkit" / "fake_vllm.py"
PROXY_REPOSITORY = "llm-sim"
VLLM_REPOSITORY = "ec2i/fake-vllm"


class ImageError(RuntimeError):
    """An image is missing or could not be built; the message says what to run."""


@dataclass(frozen=True)
class Images:
    proxy_tag: str
    vllm_tag: str


def check_instance_image(client: docker.DockerClient) -> None:
    try:
        image = client.images.get(INSTANCE_IMAGE)
    except docker.errors.ImageNotFound as error:
        raise ImageError(f"{INSTANCE_IMAGE} is not in the engine; run "
                         "`bash tools/prepare.sh test` (tools/prepare/42-instance-image.sh)"
                         ) from error
    if not (image.labels or {}).get(INSTANCE_IMAGE_LABEL):
        raise ImageError(f"{INSTANCE_IMAGE} was not made by tools/prepare/42-instance-image.sh")


def vllm_context_tag() -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in VLLM_CONTEXT.rglob("*") if p.is_file()
                       and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(VLLM_CONTEXT)).encode() + b"\0" + path.read_bytes())
    digest.update(b"fake_vllm.py\0" + FAKE_VLLM.read_bytes())
    return digest.hexdigest()[:16]


def _has_tag(address: str, repository: str, tag: str) -> bool:
    response = httpx.get(f"http://{address}/v2/{repository}/manifests/{tag}", timeout=10,
                         headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    return response.status_code == 200


def _push_vllm(client: docker.DockerClient, address: str, tag: str) -> None:
    reference = f"{address}/{VLLM_REPOSITORY}:{tag}"
    with tempfile.TemporaryDirectory(prefix="ec2i-vllm-image-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(VLLM_CONTEXT, context,
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(FAKE_VLLM, context / "fake_vllm.py")
        try:
            client.images.build(path=str(context), tag=reference, network_mode="host", rm=True)
            for line in client.images.push(reference, stream=True, decode=True):
                if "error" in line:
                    raise ImageError(f"push of {reference} failed: {line['error']}")
        except docker.errors.BuildError as error:
            raise ImageError(f"build of the vLLM image failed: {error}") from error
        finally:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(reference)


def _push_proxy(address: str) -> str:
    run = loopback.run_build("--registry", f"{address}/{PROXY_REPOSITORY}")
    if run.returncode != 0 or run.result is None:
        raise ImageError(f"tools/build.py failed ({run.returncode}):\n{run.stderr[-3000:]}")
    tag = run.result["tag"]
    subprocess.run(["docker", "image", "rm", run.result["image"]], capture_output=True,
                   check=False)
    return tag


def ensure_images(client: docker.DockerClient, workdir: Path) -> Images:
    """Both images in the registry storage; their tags."""
    check_instance_image(client)
    storage = services.registry_storage()
    storage.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"127.0.0.1:{port}"
    config = services.registry_config(workdir / "push-registry", address)
    service = start_process("push-registry", ["docker-registry", "serve", str(config)],
                            workdir / "push-registry" / "registry.log", f"http://{address}/v2/")

    def answers() -> bool:
        try:
            httpx.get(f"http://{address}/v2/", timeout=1)
            return True
        except httpx.TransportError:
            return False

    try:
        wait_until(service, answers, 30, interval=0.1)
        vllm_tag = vllm_context_tag()
        # One pusher at a time into the shared storage; who waits finds the tags there.
        with host_lock("instance-registry-storage"):
            if not _has_tag(address, VLLM_REPOSITORY, vllm_tag):
                _push_vllm(client, address, vllm_tag)
            proxy_tag = _push_proxy(address)
    except StackError as error:
        raise ImageError(str(error)) from error
    finally:
        service.stop(grace=5)
    (workdir / "images.json").write_text(json.dumps({"proxy": proxy_tag, "vllm": vllm_tag}))
    return Images(proxy_tag=proxy_tag, vllm_tag=vllm_tag)
