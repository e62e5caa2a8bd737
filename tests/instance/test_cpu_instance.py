"""The CPU deployment, booted from what `terraform apply` rendered: first boot, faults,
secret rotation, a script change, a reboot and a replacement, on one shared instance (in
this order; each test proves its own behaviour and leaves the instance serving)."""

from __future__ import annotations

import re
import time

import pytest
from instance_checks import assert_refused, assert_serves, ready, wait_until

from testkit.instance import harness

pytestmark = [pytest.mark.instance, pytest.mark.slow]

CYCLE = re.compile(r"ordering cycle|deleted to break", re.IGNORECASE)


def test_first_boot_converges_with_a_key_created_in_ssm(cpu_instance: harness.Instance) -> None:
    status = cpu_instance.exec("cloud-init", "status", "--long", check=False)
    assert "status: done" in status.stdout, status.stdout
    failed = cpu_instance.exec("systemctl", "--failed", "--plain", "--no-legend").stdout
    assert failed.strip() == "", failed
    # The key the instance created at first boot, read from (moto's) SSM.
    keys = cpu_instance.api_keys()
    assert len(keys) == 1 and re.fullmatch(r"sk-[0-9a-f]{48}", keys[0])
    assert_serves(cpu_instance, keys[0])
    assert_refused(cpu_instance, "sk-wrong")
    check = cpu_instance.exec("/usr/local/bin/check-services.sh", check=False)
    assert check.returncode == 0, check.stdout
    assert "FAIL" not in check.stdout
    # The data volume was found by its EBS volume id and formatted once.
    log = cpu_instance.exec("cat", "/var/log/user-data.log").stdout
    assert f"formatting {cpu_instance.state.loop_device}" in log
    print(f"\nfirst boot: /ready {cpu_instance.state.ready_seconds[0]:.0f} s after start")


def test_a_killed_vllm_container_comes_back(cpu_instance: harness.Instance) -> None:
    before = cpu_instance.exec("docker", "inspect", "--format", "{{.Id}}", "vllm").stdout
    cpu_instance.exec("docker", "kill", "vllm")
    wait_until("a new vLLM container", lambda: cpu_instance.exec(
        "docker", "inspect", "--format", "{{.Id}}", "vllm", check=False).stdout not in ("", before))
    wait_until("vLLM serving again", lambda: cpu_instance.exec(
        "curl", "-fsS", "http://127.0.0.1:8000/health", check=False).returncode == 0)
    wait_until("/ready through NGINX", lambda: ready(cpu_instance))
    assert_serves(cpu_instance, cpu_instance.api_keys()[0])


def test_the_watchdog_restarts_a_hung_proxy(cpu_instance: harness.Instance) -> None:
    timer = cpu_instance.exec("systemctl", "is-enabled", "inference-watchdog.timer").stdout
    assert timer.strip() == "enabled"
    wait_until("the proxy running and ready", lambda: ready(cpu_instance) and cpu_instance.exec(
        "systemctl", "is-active", "inference-proxy.service",
        check=False).stdout.strip() == "active")
    before = cpu_instance.exec("docker", "inspect", "--format", "{{.Id}}",
                               "inference-proxy").stdout
    cpu_instance.exec("docker", "pause", "inference-proxy")
    # Three runs of what the timer runs: three failed health checks in a row.
    for _ in range(3):
        cpu_instance.exec("systemctl", "start", "inference-watchdog.service")
    journal = cpu_instance.exec("journalctl", "-u", "inference-watchdog", "--no-pager").stdout
    assert "restarting inference-proxy.service" in journal, journal
    wait_until("a new proxy container", lambda: cpu_instance.exec(
        "docker", "inspect", "--format", "{{.Id}}", "inference-proxy",
        check=False).stdout not in ("", before))
    wait_until("/ready through NGINX", lambda: ready(cpu_instance))


def test_a_stopped_proxy_container_comes_back(cpu_instance: harness.Instance) -> None:
    """A proxy container that stops (not hung: the watchdog's case above) is restarted by
    its unit's restart policy; the watchdog leaves a proxy an operator stopped alone."""
    before = cpu_instance.exec("docker", "inspect", "--format", "{{.Id}}",
                               "inference-proxy").stdout
    cpu_instance.exec("docker", "stop", "inference-proxy")
    wait_until("a new proxy container", lambda: cpu_instance.exec(
        "docker", "inspect", "--format", "{{.Id}}", "inference-proxy",
        check=False).stdout not in ("", before))
    wait_until("/ready through NGINX", lambda: ready(cpu_instance))
    assert_serves(cpu_instance, cpu_instance.api_keys()[0])


def test_a_rotated_key_is_accepted_after_a_reboot_and_the_old_one_refused(
        cpu_instance: harness.Instance) -> None:
    old = cpu_instance.api_keys()[0]
    new = "sk-rotated-" + "4" * 32
    cpu_instance.aws("ssm").put_parameter(Name=cpu_instance.api_keys_parameter(), Value=new,
                                          Type="SecureString", Overwrite=True)
    cpu_instance.reboot()
    assert_serves(cpu_instance, new)
    assert_refused(cpu_instance, old)


def test_a_script_change_applied_by_terraform_is_in_effect_after_the_reboot(
        cpu_instance: harness.Instance) -> None:
    before = cpu_instance.files().files
    applied = cpu_instance.apply(default_proxy_timeout=77)
    assert applied.files[harness.render.BOOTSTRAP] != before[harness.render.BOOTSTRAP]
    assert "PROXY_DEFAULT_TIMEOUT=77" in applied.files["inference-proxy.service"]
    cpu_instance.reboot()
    env = cpu_instance.exec("docker", "inspect", "--format", "{{json .Config.Env}}",
                            "inference-proxy").stdout
    assert "PROXY_DEFAULT_TIMEOUT=77" in env
    recovery = cpu_instance.exec("cat", "/var/log/inference-recovery.log").stdout
    assert "scripts changed" in recovery
    want = re.search(r"^want=([0-9a-f]{64})$", applied.files[harness.render.BOOTSTRAP], re.M)
    assert want is not None
    assert cpu_instance.exec("cat", "/var/lib/inference/scripts.sha256").stdout.strip() == \
        want.group(1)


def test_a_reboot_runs_the_recovery_with_no_ordering_cycle(
        cpu_instance: harness.Instance) -> None:
    restarted = time.time()
    cpu_instance.reboot()
    console = cpu_instance.console(since=restarted - 1)
    assert not CYCLE.search(console), "\n".join(
        line for line in console.splitlines() if CYCLE.search(line))
    started = cpu_instance.unit_property("inference-recovery.service",
                                         "ExecMainStartTimestampMonotonic")
    boot_started = cpu_instance.exec("cat", "/proc/1/stat").stdout  # PID 1 = this boot
    assert started not in ("", "0"), "inference-recovery.service did not run in this boot"
    assert int(started) / 1e6 >= int(boot_started.split()[21]) / harness.CLOCK_TICKS - 1
    result = cpu_instance.unit_property("inference-recovery.service", "Result")
    assert result == "success"
    assert_serves(cpu_instance, cpu_instance.api_keys()[0])


def test_a_replacement_on_the_same_volume_keeps_the_cached_weights(
        cpu_instance: harness.Instance) -> None:
    old_container = cpu_instance.container
    old_uuid = cpu_instance.exec("blkid", "-s", "UUID", "-o", "value",
                                 cpu_instance.state.loop_device or "").stdout.strip()
    cpu_instance.replace()
    assert cpu_instance.container != old_container
    log = cpu_instance.exec("cat", "/var/log/user-data.log").stdout
    assert "formatting" not in log
    uuid = cpu_instance.exec("blkid", "-s", "UUID", "-o", "value",
                             cpu_instance.state.loop_device or "").stdout.strip()
    assert uuid == old_uuid
    vllm_log = cpu_instance.exec("journalctl", "-u", "vllm", "--no-pager").stdout
    assert "found in the cache" in vllm_log and "downloading" not in vllm_log
    assert_serves(cpu_instance, cpu_instance.api_keys()[0])
