"""Fixtures of the boot tests: simulated instances (testkit/instance) booted from a real
`terraform apply` of the root module. Each instance is removed at the end (by id: its
containers, services, veth, loop device), also when a test failed.

One CPU instance is booted once and shared by tests that do not need a fresh one (they run
in file order: first boot, faults, rotation, script change, reboot, replacement); tests that
need their own boot (scripts missing at first boot, the HTTPS case, the cost controls) make
one."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import docker
import docker.errors
import pytest
from instance_checks import Boot

from testkit.instance import harness, images
from testkit.support import need_tool


@pytest.fixture(scope="session")
def instance_machine() -> None:
    """Skips (a failure in CI) unless this machine can boot instances."""
    if os.geteuid() != 0:
        pytest.skip("the boot tests need root (loop devices, network namespaces)")
    for tool in ("docker-registry", "losetup", "nsenter", "iptables", "pebble"):
        need_tool(tool)
    try:
        client = docker.from_env()
        images.check_instance_image(client)
    except (docker.errors.DockerException, images.ImageError) as error:
        pytest.skip(f"{error}; run `bash tools/prepare.sh test`")


@pytest.fixture(scope="session")
def boot(tmp_path_factory: pytest.TempPathFactory, instance_machine: None) -> Iterator[Boot]:
    """boot(case="cpu", **up) -> a booted Instance, removed at the end of the session."""
    started: list[harness.Instance] = []

    def make(case: str = "cpu", **up: object) -> harness.Instance:
        directory = tmp_path_factory.mktemp(f"instance-{case}")
        instance = harness.Instance.create(directory, case)
        started.append(instance)
        instance.up(**up)  # type: ignore[arg-type]
        return instance

    yield make
    for instance in started:
        # The boot times of this run (shown with -s): container start -> /ready through
        # NGINX, and -> main-setup done, per boot.
        print(f"\n{instance.state.case} instance {instance.state.name}: /ready after "
              f"{instance.state.ready_seconds} s, converged after "
              f"{instance.state.converged_seconds} s")
        instance.down()
        shutil.rmtree(instance.dir / "terraform", ignore_errors=True)


@pytest.fixture(scope="session")
def cpu_instance(boot: Boot) -> harness.Instance:
    return boot("cpu")


@pytest.fixture(scope="session")
def cost_instance(boot: Boot) -> harness.Instance:
    """The CPU deployment with the cost controls on: Spot (its notice timer) and the idle
    stop after 5 minutes, `shutdown` recorded. test_cost_instance.py uses it first (the Spot
    notice, the interruption); test_idle_stop_instance.py, which sorts after the other boot
    tests, last, so that its idle minutes pass while they run."""
    instance = boot("cpu", tfvars={"use_spot": True, "idle_stop_minutes": 5})
    instance.record_shutdowns()
    return instance
