"""Fixtures of the boot tests: simulated instances (testkit/instance) booted from a real
`terraform apply` of the root module. An instance lives as long as its test file: it is
removed (by id: its containers, services, veth, loop device) when the file is done, also
when a test failed, so that no idle instance keeps its timers calling "AWS" meanwhile.

In a file, the tests share one instance and run in file order (first boot, faults,
rotation, a setting changed, reboot, replacement); a file is never split between pytest-xdist
workers (`make pytest` runs `--dist loadfile`, in the order tests/conftest.py sets). A booted
instance mostly waits (for its timers, restarts and boots), so the other workers run the rest
of the suite meanwhile."""

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


@pytest.fixture(scope="module")
def boot(tmp_path_factory: pytest.TempPathFactory, instance_machine: None) -> Iterator[Boot]:
    """boot(case="cpu", **up) -> a booted Instance, removed at the end of the test file."""
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


@pytest.fixture(scope="module")
def cpu_instance(boot: Boot) -> harness.Instance:
    """The CPU deployment with the defaults."""
    return boot("cpu")


@pytest.fixture(scope="module")
def cost_instance(boot: Boot) -> harness.Instance:
    """The CPU deployment with the cost controls on: Spot (its notice timer) and the idle
    stop after 5 minutes, `shutdown` recorded."""
    instance = boot("cpu", tfvars={"use_spot": True, "idle_stop_minutes": 5})
    instance.record_shutdowns()
    return instance
