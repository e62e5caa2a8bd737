"""The CPU deployment, booted from what `terraform apply` rendered: first boot, faults,
secret rotation, a script change, a reboot and a replacement, on one shared instance (in
this order; each test proves its own behaviour and leaves the instance serving)."""

from __future__ import annotations

import re
import time

import pytest
from instance_checks import assert_refused, assert_serves, ready, wait_until

from testkit.instance import harness

pytestmark = [pytest.mark.instance, pytest.mark.slow(minutes=4)]

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


def container_started(instance: harness.Instance, name: str) -> str:
    return instance.exec("docker", "inspect", "--format", "{{.State.StartedAt}}", name,
                         check=False).stdout.strip()


def proxy_env(instance: harness.Instance) -> str:
    return instance.exec("docker", "inspect", "--format", "{{json .Config.Env}}",
                         "inference-proxy", check=False).stdout


def test_a_timeout_change_is_applied_in_place_restarting_the_proxy_only(
        cpu_instance: harness.Instance) -> None:
    """Item 6 of issue 14: Terraform uploads the change and a new manifest; the instance's
    update timer applies it within a minute or so. user_data stays as it was (so EC2 would
    not stop the instance), the instance is not rebooted, vLLM keeps running with its model
    loaded, the proxy is restarted with the new timeout and NGINX reloaded with its own."""
    before = cpu_instance.files().files
    vllm_started = container_started(cpu_instance, "vllm")
    machine_started = cpu_instance.docker.containers.get(
        cpu_instance.container).attrs["State"]["StartedAt"]
    nginx_pid = cpu_instance.exec("cat", "/run/nginx.pid").stdout.strip()

    applied = cpu_instance.apply(default_proxy_timeout=77)
    assert applied.files[harness.render.BOOTSTRAP] == before[harness.render.BOOTSTRAP]
    changed = {name for name, content in applied.files.items() if before.get(name) != content}
    assert changed == {"inference-proxy.service", "nginx-site.conf", "manifest"}

    wait_until("the proxy restarted with PROXY_DEFAULT_TIMEOUT=77 by the update timer",
               lambda: "PROXY_DEFAULT_TIMEOUT=77" in proxy_env(cpu_instance), timeout=240)
    wait_until("/ready through NGINX", lambda: ready(cpu_instance))
    assert container_started(cpu_instance, "vllm") == vllm_started, "vLLM was restarted"
    assert cpu_instance.docker.containers.get(
        cpu_instance.container).attrs["State"]["StartedAt"] == machine_started
    # NGINX reloaded (same master) with the new read timeouts: 77 + its 30 s margin.
    assert cpu_instance.exec("cat", "/run/nginx.pid").stdout.strip() == nginx_pid
    assert "proxy_read_timeout 107s;" in cpu_instance.exec("nginx", "-T").stdout
    journal = cpu_instance.exec("journalctl", "-u", "inference-update", "--no-pager").stdout
    assert "2 file(s) changed: inference-proxy.service nginx-site.conf;" in journal, journal
    assert "started inference-proxy.service" in journal
    assert "started vllm.service" not in journal
    applied_manifest = cpu_instance.exec("cat", "/var/lib/inference/manifest.applied").stdout
    assert applied_manifest == applied.files["manifest"]
    assert_serves(cpu_instance, cpu_instance.api_keys()[0])


def test_a_change_applied_while_the_instance_is_stopped_is_in_effect_after_its_start(
        cpu_instance: harness.Instance) -> None:
    cpu_instance.stop_container()
    applied = cpu_instance.apply(max_proxy_timeout=640)
    assert "PROXY_MAX_TIMEOUT=640" in applied.files["inference-proxy.service"]
    cpu_instance.start()
    assert "PROXY_MAX_TIMEOUT=640" in proxy_env(cpu_instance)
    recovery = cpu_instance.exec("cat", "/var/log/inference-recovery.log").stdout
    last_boot = recovery[recovery.rindex("after kernel start"):]
    assert "user_data changed" not in last_boot
    assert "file(s) changed" in last_boot
    assert cpu_instance.exec("cat", "/var/lib/inference/manifest.applied").stdout == \
        applied.files["manifest"]


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
