"""tools/build.py against the real Docker engine, docker-registry on loopback and moto
server: registry credentials, the ECR login, and every way a build or push fails (clear
message, exit 1, nothing on stdout, no tag left in the registry or the engine). Small
contexts keep these fast; test_build_app.py builds the real app/."""

from __future__ import annotations

from pathlib import Path

import boto3
import docker
import pytest

from testkit.ports import free_port
from testkit.registry import (
    MOTO_ACCOUNT,
    USERS,
    Registry,
    Run,
    local_tags,
    run_build,
    start_registry,
    stop,
    tiny_context,
)
from tools import build

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_credentials_from_stdin_push_to_an_auth_registry(
    auth_registry: Registry, tmp_path: Path
) -> None:
    context = tiny_context(tmp_path, "FROM scratch\nCOPY payload.txt /\n")
    run = run_build(
        *("--registry", f"{auth_registry.address}/tiny", "--context", str(context)),
        *("--username", "builder", "--password-stdin"),
        stdin=USERS["builder"] + "\n",
    )
    assert run.returncode == 0, run.stderr
    assert run.result is not None and run.result["status"] == "pushed"
    assert auth_registry.tags("tiny") == [build.image_tag(context)]


def assert_failed_cleanly(
    run: Run, message: str, client: docker.DockerClient, registry: Registry, repository: str
) -> None:
    assert run.returncode == 1
    assert run.result is None  # nothing on stdout claims an image
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert registry.tags(repository) == []
    assert local_tags(client, f"{registry.address}/{repository}:") == []


def test_refused_credentials_fail_before_building(
    auth_registry: Registry, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    context = tiny_context(tmp_path, "FROM scratch\nCOPY payload.txt /\n", "refused")
    for credentials, stdin in (
        (("--username", "builder", "--password-stdin"), "wrong"),
        ((), None),
    ):
        run = run_build(
            *("--registry", f"{auth_registry.address}/refused", "--context", str(context)),
            *credentials,
            stdin=stdin,
        )
        assert_failed_cleanly(
            run, "refused the credentials", docker_client, auth_registry, "refused"
        )
        assert "Step 1/" not in run.stderr


def test_unreachable_registry_fails_clearly(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    context = tiny_context(tmp_path, "FROM scratch\nCOPY payload.txt /\n", "down")
    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    run = run_build("--registry", f"{down}/down", "--context", str(context))
    assert run.returncode == 1 and run.result is None
    assert f"registry {down} is unreachable" in run.stderr
    assert local_tags(docker_client, f"{down}/") == []


def test_registry_that_goes_down_mid_run_leaves_no_local_tag(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    # The tag check passes (a live registry says 404), then the registry stops while the
    # image builds: the push fails and the freshly built local tag must not outlive it.
    context = tiny_context(tmp_path / "ctx", "FROM scratch\nCOPY payload.txt /\n", "mid-run")
    with start_registry(tmp_path / "registry", {}) as doomed:
        target = build.Target(doomed.address, "doomed")
        reference = target.reference(build.image_tag(context))

        def log(line: str) -> None:
            if line.startswith("building "):
                stop(doomed.process)

        with pytest.raises(build.PushFailed, match=doomed.address):
            build.build_and_push(docker_client, context, target, network="host", log=log)
    assert doomed.process.returncode is not None  # it really was stopped mid-run
    assert local_tags(docker_client, reference) == []


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM python:3.12-slim\nRUN echo doomed && exit 3\n", "returned a non-zero code: 3"),
        ("FROM scratch\nCOPY not-there.txt /\n", "not-there.txt"),
        ("", "cannot be empty"),  # refused by the API before any stream
    ],
    ids=["failing-run", "missing-file", "empty"],
)
def test_broken_dockerfile_fails_with_the_build_error(
    registry: Registry,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    dockerfile: str,
    message: str,
) -> None:
    context = tiny_context(tmp_path, dockerfile)
    run = run_build("--registry", f"{registry.address}/broken", "--context", str(context))
    assert f"build.py: error: docker build of {context} failed" in run.stderr
    assert_failed_cleanly(run, message, docker_client, registry, "broken")


def test_missing_dockerfile_and_missing_daemon_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run = run_build("--registry", "127.0.0.1:9/x", "--context", str(tmp_path / "empty"))
    assert run.returncode == 1 and f"no Dockerfile in {tmp_path / 'empty'}" in run.stderr

    context = tiny_context(tmp_path / "ctx", "FROM scratch\n")
    no_daemon = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    run = run_build("--registry", "127.0.0.1:9/x", "--context", str(context), env=no_daemon)
    assert run.returncode == 1 and "cannot reach the Docker daemon" in run.stderr
    assert "Traceback" not in run.stderr


def test_ecr_login_decodes_the_token_and_takes_the_registry_from_proxy_endpoint(
    moto_endpoint: str,
) -> None:
    ecr = boto3.client(
        "ecr",
        region_name="eu-west-3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    address, auth = build.ecr_login(ecr, f"{MOTO_ACCOUNT}.dkr.ecr.eu-west-3.amazonaws.com")
    assert address == f"{MOTO_ACCOUNT}.dkr.ecr.eu-west-3.amazonaws.com"
    assert auth == {"username": "AWS", "password": f"{MOTO_ACCOUNT}-auth-token"}


def test_ecr_registry_pushes_with_the_token_through_an_override(
    moto_endpoint: str, auth_registry: Registry, tmp_path: Path
) -> None:
    # The local registry accepts exactly the credentials moto's token decodes to, so a
    # push only succeeds when the ECR login went through AWS_ENDPOINT_URL and was decoded.
    context = tiny_context(tmp_path, "FROM scratch\nCOPY payload.txt /\n", "ecr")
    aws = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    ecr_url = f"{MOTO_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/inference-proxy"
    run = run_build(
        *("--registry", ecr_url, "--context", str(context)),
        *("--registry-override", auth_registry.address),
        env=aws,
    )
    assert run.returncode == 0, run.stderr
    tag = build.image_tag(context)
    assert run.result is not None
    assert run.result["image"] == f"{auth_registry.address}/inference-proxy:{tag}"
    assert auth_registry.tags("inference-proxy") == [tag]

    # Without moto the login itself fails, clearly and before anything is built.
    unreachable = {
        **aws,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_MAX_ATTEMPTS": "1",
    }
    run = run_build("--registry", ecr_url, "--context", str(context), env=unreachable)
    assert run.returncode == 1 and "ECR get_authorization_token failed" in run.stderr
