"""The hardened instance, booted (issue 11 items 13-18, issue 13's instance side), on the
shared CPU instance after tests/instance/test_cpu_instance.py (its tests run first): the
containers' flags as the engine applied them, API keys put in and removed from SSM with
tools/keys.py taking effect within the refresh timer's minute without a restart and
without cutting a stream, an empty key set failing closed with check-services saying why,
the watchdog's judgement of vLLM and the proxy, vLLM's bounded restart loop, the disk
alarm, the image prune and a grown data volume."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from instance_checks import assert_refused, assert_serves, openai_client, ready, wait_until

from testkit.instance import harness

pytestmark = [pytest.mark.instance, pytest.mark.slow(minutes=5)]

ROOT = Path(__file__).resolve().parents[2]
KEYS_TIMER_PERIOD = 60  # inference-keys.timer: OnUnitActiveSec=1min, AccuracySec=5s


def container(instance: harness.Instance, name: str, template: str = "{{json .}}") -> Any:
    out = instance.exec("docker", "inspect", "--format", template, name).stdout
    return json.loads(out) if template.startswith("{{json") else out.strip()


def container_id(instance: harness.Instance, name: str) -> str:
    """The id of the container `name`, "" while there is none (a restart in between)."""
    return instance.exec("docker", "inspect", "--format", "{{.Id}}", name,
                         check=False).stdout.strip()


def process_status(instance: harness.Instance, name: str) -> dict[str, str]:
    """/proc/1/status of a container's main process, as the kernel sees it."""
    out = instance.exec("docker", "exec", name, "cat", "/proc/1/status").stdout
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def keys_tool(instance: harness.Instance, *args: str) -> str:
    """`python tools/keys.py --parameter <the instance's> ARGS` against moto: stdout."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/keys.py"), "--parameter",
         instance.api_keys_parameter(), *args],
        env=instance.aws_env(), capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.strip()


def accepted(instance: harness.Instance, key: str) -> bool:
    with instance.http_client(timeout=10) as client:
        response = client.get(f"{instance.endpoint}/v1/models",
                              headers={"Authorization": f"Bearer {key}"})
    return response.status_code == 200


def journal(instance: harness.Instance, *args: str) -> str:
    return instance.exec("journalctl", "--no-pager", "-o", "cat", *args).stdout


def run_watchdog(instance: harness.Instance, times: int = 1) -> None:
    for _ in range(times):
        instance.exec("systemctl", "start", "inference-watchdog.service")


def check_services(instance: harness.Instance) -> subprocess.CompletedProcess[str]:
    return instance.exec("/usr/local/bin/check-services.sh", check=False)


def serving_again(instance: harness.Instance) -> None:
    wait_until("vLLM serving again", lambda: instance.exec(
        "curl", "-fsS", "http://127.0.0.1:8000/health", check=False).returncode == 0)
    wait_until("/ready through NGINX", lambda: ready(instance))


def test_containers_run_with_the_tested_flags_and_no_capability(
        cpu_instance: harness.Instance) -> None:
    proxy = container(cpu_instance, "inference-proxy")
    host = proxy["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 64
    assert host["Memory"] == host["MemorySwap"] == 256 * 1024**2
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=16m"}
    assert host["Binds"] == ["/run/proxy-keys:/run/proxy-keys:ro"]
    env = proxy["Config"]["Env"]
    assert "PROXY_API_KEYS_FILE=/run/proxy-keys/keys.json" in env
    assert "PROXY_AUTH_DISABLED=false" in env
    # No key in the container's environment, nor on any command line of the instance.
    keys = cpu_instance.api_keys()
    assert not any(key in " ".join(env) for key in keys)
    processes = cpu_instance.exec("ps", "-eo", "args", "--no-headers").stdout
    assert not any(key in processes for key in keys)
    assert cpu_instance.exec("ls", "/etc/inference").stdout.split() == \
        ["container-limits.env", "vllm.env"]

    vllm = container(cpu_instance, "vllm")["HostConfig"]
    assert vllm["CapDrop"] == ["ALL"] and not vllm["CapAdd"]
    assert "no-new-privileges" in vllm["SecurityOpt"]
    assert vllm["PidsLimit"] == 4096 and vllm["IpcMode"] == "host"
    limit = cpu_instance.exec("cat", "/etc/inference/container-limits.env").stdout
    total = int(cpu_instance.exec("sed", "-n", r"s/^MemTotal: *\([0-9]*\) kB$/\1/p",
                                  "/proc/meminfo").stdout) * 1024
    assert limit.strip() == f"VLLM_MEMORY={vllm['Memory'] // 1024**2}m"
    assert vllm["Memory"] == vllm["MemorySwap"]
    assert total - 1.5 * 1024**3 < vllm["Memory"] < total - 1024**3

    # What the kernel enforces on the two main processes: no capability, no new ones.
    for name in ("vllm", "inference-proxy"):
        status = process_status(cpu_instance, name)
        assert status["CapEff"] == status["CapBnd"] == "0000000000000000", (name, status)
        assert status["NoNewPrivs"] == "1", name
    assert process_status(cpu_instance, "inference-proxy")["Uid"].split()[0] == "10001"
    assert_serves(cpu_instance, keys[0])


def test_keys_put_and_removed_with_tools_keys_apply_without_restart_or_cut_stream(
        cpu_instance: harness.Instance) -> None:
    started = container(cpu_instance, "inference-proxy", "{{.Id}} {{.State.StartedAt}}")
    model = cpu_instance.summary()["model"]

    put = time.monotonic()
    alice = keys_tool(cpu_instance, "add", "alice", "--rpm", "600")
    assert alice.startswith("sk-") and "alice" in keys_tool(cpu_instance, "list")
    assert not accepted(cpu_instance, alice)
    wait_until("alice's key accepted", lambda: accepted(cpu_instance, alice),
               timeout=KEYS_TIMER_PERIOD + 30)
    print(f"\na key put in SSM was accepted after {time.monotonic() - put:.0f} s")
    assert_serves(cpu_instance, alice)

    # A slow stream (the fake vLLM at 1 token/s) open while the key is removed. The
    # refresh is started at once here (the timer runs the same unit, as proven above).
    result: dict[str, Any] = {}

    def stream() -> None:
        try:
            with openai_client(cpu_instance, alice) as client:
                chunks = list(client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "count"}],
                    max_tokens=20, stream=True, extra_body={"fake": {"tps": 1}}))
            result["chunks"] = chunks
        except Exception as error:  # reported by the assertion below
            result["error"] = error

    streaming = threading.Thread(target=stream)
    streaming.start()
    time.sleep(3)
    keys_tool(cpu_instance, "remove", "alice")
    cpu_instance.exec("systemctl", "start", "inference-keys.service")
    wait_until("alice's key refused", lambda: not accepted(cpu_instance, alice), timeout=15)
    assert streaming.is_alive(), "the stream ended before the key was refused"
    assert_refused(cpu_instance, alice)
    streaming.join(timeout=60)
    assert "error" not in result, result.get("error")
    chunks = result["chunks"]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text and chunks[-1].choices[0].finish_reason == "length"

    # The timer did it, with no restart of the proxy.
    assert container(cpu_instance, "inference-proxy", "{{.Id}} {{.State.StartedAt}}") == started
    refreshes = journal(cpu_instance, "-u", "inference-keys")
    assert "key(s)" in refreshes
    assert_serves(cpu_instance, cpu_instance.api_keys()[0])


def test_a_key_set_without_keys_fails_closed_and_check_services_says_what_to_do(
        cpu_instance: harness.Instance) -> None:
    ssm = cpu_instance.aws("ssm")
    parameter = cpu_instance.api_keys_parameter()
    before = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    key = cpu_instance.api_keys()[0]
    try:
        ssm.put_parameter(Name=parameter, Value=",", Type="SecureString", Overwrite=True)
        cpu_instance.exec("systemctl", "start", "inference-keys.service")
        wait_until("the old key refused", lambda: not accepted(cpu_instance, key), timeout=30)
        errors = journal(cpu_instance, "-u", "inference-keys", "-p", "err")
        assert f"{parameter} holds no valid key (0)" in errors
        check = check_services(cpu_instance)
        assert check.returncode == 1
        assert "holds no valid key (0)" in check.stdout and "tools/keys.py" in check.stdout

        # The proxy does not start on it (and is never told to run without auth).
        cpu_instance.exec("systemctl", "restart", "inference-proxy.service")
        wait_until("check-services naming the proxy's refusal", lambda: "no API key" in
                   check_services(cpu_instance).stdout, timeout=60)
        assert "the proxy refuses to start: inference_proxy: configuration error: no API key" \
            in check_services(cpu_instance).stdout
        with cpu_instance.http_client(timeout=10) as client:
            assert client.get(f"{cpu_instance.endpoint}/v1/models").status_code in (502, 503)
    finally:
        ssm.put_parameter(Name=parameter, Value=before, Type="SecureString", Overwrite=True)
        cpu_instance.exec("systemctl", "start", "inference-keys.service")
    wait_until("/ready through NGINX", lambda: ready(cpu_instance), timeout=60)
    assert_serves(cpu_instance, key)


def test_a_vllm_that_hangs_after_serving_is_restarted_by_the_watchdog_and_the_proxy_is_not(
        cpu_instance: harness.Instance) -> None:
    cpu_instance.exec("systemctl", "stop", "inference-watchdog.timer")
    try:
        run_watchdog(cpu_instance)  # it sees this vLLM serve (and records its load time)
        assert cpu_instance.exec("cat", "/var/lib/inference/vllm-seen-healthy").stdout.strip() \
            == cpu_instance.unit_property("vllm.service", "InvocationID")
        vllm = container(cpu_instance, "vllm", "{{.Id}}")
        proxy = container(cpu_instance, "inference-proxy", "{{.Id}}")
        cpu_instance.exec("docker", "pause", "vllm")
        run_watchdog(cpu_instance, times=3)
        assert "failed its health check 3 times in a row: restarting vllm.service" in \
            journal(cpu_instance, "-u", "inference-watchdog", "-p", "err")
        wait_until("a new vLLM container", lambda: container_id(
            cpu_instance, "vllm") not in ("", vllm))
        serving_again(cpu_instance)
        # The proxy answered /health (503) all along: alive, so left alone.
        assert container(cpu_instance, "inference-proxy", "{{.Id}}") == proxy
    finally:
        cpu_instance.exec("docker", "unpause", "vllm", check=False)
        cpu_instance.exec("systemctl", "start", "inference-watchdog.timer")
    assert_serves(cpu_instance, cpu_instance.api_keys()[0])


def test_while_vllm_is_down_clients_get_the_proxys_json_503(
        cpu_instance: harness.Instance) -> None:
    proxy = container(cpu_instance, "inference-proxy", "{{.Id}}")
    cpu_instance.exec("docker", "kill", "vllm")  # vllm.service restarts it in 30 s
    with openai_client(cpu_instance, cpu_instance.api_keys()[0]) as client, \
            pytest.raises(openai.APIStatusError) as failure:
        client.models.list()
    assert failure.value.status_code == 503
    body = failure.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert failure.value.response.headers["retry-after"]
    cpu_instance.exec("systemctl", "restart", "vllm.service")  # not the 30 s wait
    serving_again(cpu_instance)
    assert container(cpu_instance, "inference-proxy", "{{.Id}}") == proxy


def test_a_restarted_vllm_with_cached_weights_is_judged_after_its_recorded_load_not_an_hour(
        cpu_instance: harness.Instance) -> None:
    loads = "/opt/models/.inference/vllm-load-seconds"
    model = cpu_instance.summary()["model"]
    run_watchdog(cpu_instance)  # it has seen this vLLM serve (by now, or in this run)
    assert model in cpu_instance.exec("cat", loads).stdout
    # Given loads of at most 5 s on this volume (the fake loads in about that), the grace
    # of a new start is the 60 s floor instead of VLLM_STARTUP_TIMEOUT (3600 s).
    cpu_instance.exec("sh", "-c", f"echo '{model} 5' >{loads}")
    cpu_instance.exec("systemctl", "stop", "inference-watchdog.timer")
    try:
        cpu_instance.exec("systemctl", "restart", "vllm.service")
        wait_until("the new vLLM container", lambda: cpu_instance.exec(
            "docker", "pause", "vllm", check=False).returncode == 0, timeout=60)
        restarted = time.monotonic()
        vllm = container(cpu_instance, "vllm", "{{.Id}}")
        run_watchdog(cpu_instance)
        assert "of its 60 s grace (longest load on record: 5)" in \
            journal(cpu_instance, "-u", "inference-watchdog", "-n", "5")
        time.sleep(max(0.0, 62 - (time.monotonic() - restarted)))
        run_watchdog(cpu_instance, times=3)
        wait_until("a new vLLM container", lambda: container_id(
            cpu_instance, "vllm") not in ("", vllm))
        print(f"\na vLLM hung at its start was restarted {time.monotonic() - restarted:.0f} s "
              "after its start (VLLM_STARTUP_TIMEOUT: 3600 s)")
    finally:
        cpu_instance.exec("docker", "unpause", "vllm", check=False)
        cpu_instance.exec("systemctl", "start", "inference-watchdog.timer")
    serving_again(cpu_instance)


def test_a_vllm_that_keeps_failing_stops_at_its_start_limit_and_check_services_says_so(
        cpu_instance: harness.Instance) -> None:
    dropin = "/run/systemd/system/vllm.service.d/test-fast-restart.conf"
    # The port vLLM publishes is taken: every start fails at once. RestartSec=1 (a test
    # drop-in) only makes the shipped start limit (5 starts in 30 min) trip in seconds.
    cpu_instance.exec("systemctl", "stop", "vllm.service")
    cpu_instance.exec("sh", "-c", f"mkdir -p {Path(dropin).parent} && printf "
                      f"'[Service]\\nRestartSec=1\\n' >{dropin} && systemctl daemon-reload")
    cpu_instance.exec("systemd-run", "--unit", "test-port-8000", "python3", "-m",
                      "http.server", "--bind", "127.0.0.1", "8000")
    try:
        cpu_instance.exec("systemctl", "reset-failed", "vllm.service", check=False)
        cpu_instance.exec("systemctl", "start", "vllm.service")
        wait_until("vllm.service giving up", lambda: cpu_instance.unit_property(
            "vllm.service", "ActiveState") == "failed", timeout=120)
        # systemd 252 keeps the last exit's result; the journal names the start limit.
        assert "Start request repeated too quickly" in journal(cpu_instance, "-u", "vllm",
                                                               "-n", "10")
        time.sleep(5)
        assert cpu_instance.unit_property("vllm.service", "ActiveState") == "failed"
        check = check_services(cpu_instance)
        assert check.returncode == 1
        assert "vllm.service gave up: it failed 5 times within 30 minutes" in check.stdout
        # The watchdog tries again, says so at err level, and systemd holds it back.
        run_watchdog(cpu_instance)
        assert "vllm.service gave up after failing too often" in \
            journal(cpu_instance, "-u", "inference-watchdog", "-p", "err")
        assert cpu_instance.unit_property("vllm.service", "ActiveState") == "failed"
        # The proxy stayed up and says what it can: vLLM is not there.
        assert cpu_instance.exec("systemctl", "is-active", "inference-proxy.service"
                                 ).stdout.strip() == "active"
    finally:
        cpu_instance.exec("systemctl", "stop", "test-port-8000", check=False)
        cpu_instance.exec("sh", "-c", f"rm -f {dropin} && systemctl daemon-reload")
        cpu_instance.exec("systemctl", "reset-failed", "vllm.service", check=False)
        cpu_instance.exec("systemctl", "start", "vllm.service")
    serving_again(cpu_instance)


def test_a_full_disk_is_logged_at_err_and_shown_by_check_services(
        cpu_instance: harness.Instance) -> None:
    free = int(cpu_instance.exec("df", "--output=avail", "-B1", "/opt/models").stdout.split()[1])
    size = int(cpu_instance.exec("df", "--output=size", "-B1", "/opt/models").stdout.split()[1])
    filler = "/opt/models/test-filler"
    cpu_instance.exec("fallocate", "-l", str(free - size // 20), filler)
    try:
        run_watchdog(cpu_instance)
        errors = journal(cpu_instance, "-u", "inference-watchdog", "-p", "err", "-n", "5")
        assert "disk /opt/models is 9" in errors and "(alarm at 90%)" in errors, errors
        check = check_services(cpu_instance)
        assert check.returncode == 1 and "/opt/models is 9" in check.stdout
    finally:
        cpu_instance.exec("rm", "-f", filler)
    assert check_services(cpu_instance).returncode == 0


def test_the_prune_removes_old_images_and_keeps_the_configured_ones_even_unused(
        cpu_instance: harness.Instance) -> None:
    images = "{{.Config.Image}}"
    vllm_image = container(cpu_instance, "vllm", images)
    proxy_image = container(cpu_instance, "inference-proxy", images)
    cpu_instance.exec("sh", "-c", "tar -cf - --files-from /dev/null | "
                      "docker import - ec2i-test/old-vllm:v0.0.1")
    since = "@" + cpu_instance.exec("date", "+%s").stdout.strip()
    cpu_instance.exec("systemctl", "stop", "vllm.service")  # its image is in use by nothing
    try:
        cpu_instance.exec("systemctl", "start", "inference-prune.service")
        present = cpu_instance.exec("docker", "image", "ls", "--format",
                                    "{{.Repository}}:{{.Tag}}").stdout.split()
        assert "ec2i-test/old-vllm:v0.0.1" not in present
        assert vllm_image in present and proxy_image in present
        assert "removed ec2i-test/old-vllm:v0.0.1" in journal(cpu_instance, "-u",
                                                                "inference-prune")
        assert cpu_instance.exec("systemctl", "is-enabled", "inference-prune.timer"
                                 ).stdout.strip() == "enabled"
    finally:
        cpu_instance.exec("systemctl", "start", "vllm.service")
    serving_again(cpu_instance)
    log = journal(cpu_instance, "-u", "vllm", "--since", since)  # this start's lines only
    assert "fake vLLM serving" in log, log
    assert "Unable to find image" not in log and "Downloaded newer image" not in log


def test_a_grown_data_volume_is_grown_on_disk_at_the_next_boot(
        cpu_instance: harness.Instance) -> None:
    def size() -> int:
        out = cpu_instance.exec("df", "--output=size", "-B1M", "/opt/models").stdout
        return int(out.split()[1])

    before = size()
    cpu_instance.grow_data_volume(harness.DATA_VOLUME_BYTES + 2 * 1024**3)
    cpu_instance.reboot()
    # In the simulation the script mounts the volume after a reboot (no fstab mounts in a
    # container), so it grows it before mounting; on EC2 fstab has mounted it and ext4
    # grows online (this machine lacks CAP_SYS_RESOURCE, which that needs).
    assert size() > before + 1900
    log = cpu_instance.exec("cat", "/var/log/inference-recovery.log",
                            "/var/log/user-data.log").stdout
    assert "grew the file system on" in log
    assert_serves(cpu_instance, cpu_instance.api_keys()[0])
