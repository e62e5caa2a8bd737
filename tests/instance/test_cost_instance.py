"""The cost controls on a booted instance (use_spot, idle_stop_minutes = 5). First the idle
stop: with no API request for 5 minutes the timer's script calls `shutdown --poweroff`
(recorded by a diverted `shutdown`, then done: the machine powers off, which on EC2, with the
shutdown behaviour stop, stops the instance), and a start (what the start_command output
runs) brings the same instance back serving. The test mostly waits for the idle minutes, and
comes first so that a whole `make test` runs other files meanwhile (a pytest-xdist worker is
handed the next file when two tests of this one are left). Then, on the started instance:
the timers run from what `terraform apply` rendered; a Spot interruption notice in the
instance metadata is logged and drains the proxy while a stream is in flight (the stream
ends whole); the interruption (behaviour stop: EC2 stops the instance and starts it again
when capacity returns) is a stop and a start, after which the same instance serves
again."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from instance_checks import assert_serves, openai_client, ready, wait_until

from testkit.instance import harness

pytestmark = [pytest.mark.instance, pytest.mark.slow(minutes=9)]


# 5 idle minutes counted from the last setup at the earliest, plus the timer's minute and
# the poweroff, plus a margin for a loaded machine.
STOP_TIMEOUT = 10 * 60


def test_the_idle_instance_stops_itself_and_a_start_brings_it_back(
        cost_instance: harness.Instance) -> None:
    waited = time.monotonic()
    deadline = waited + STOP_TIMEOUT
    while cost_instance.running():
        assert time.monotonic() < deadline, (
            "the idle instance did not power off within "
            f"{STOP_TIMEOUT // 60} min:\n" + cost_instance.exec(
                "journalctl", "-u", "inference-idle-stop", "--no-pager", "-n", "20").stdout)
        time.sleep(5)
    print(f"\nidle stop: powered off {time.monotonic() - waited:.0f} s into this test")
    seconds = cost_instance.start()
    assert seconds is not None
    # The call came from the idle stop's unit, with --poweroff (never a halt or reboot).
    calls = cost_instance.exec("cat", harness.SHUTDOWN_LOG).stdout
    assert "argv: --poweroff now No API request for 5 minutes" in calls, calls
    assert "inference-idle-stop.service" in calls, calls
    stops = cost_instance.exec("journalctl", "-u", "inference-idle-stop", "--no-pager").stdout
    assert "no API request for 5 min (idle_stop_minutes = 5): stopping the instance" in stops
    # Back: the same machine serves, and the minutes count again from this boot.
    assert_serves(cost_instance, cost_instance.api_keys()[0])
    assert cost_instance.running()
    print(f"idle stop: start -> /ready in {seconds:.0f} s (weights cached on the volume)")


def journal(instance: harness.Instance, unit: str, *extra: str) -> list[dict[str, Any]]:
    out = instance.exec("journalctl", "-u", unit, "-o", "json", "--no-pager", *extra).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def active(instance: harness.Instance, unit: str) -> str:
    return instance.exec("systemctl", "is-active", unit, check=False).stdout.strip()


def test_the_cost_timers_run_and_the_spot_notice_polls_quietly(
        cost_instance: harness.Instance) -> None:
    for timer in ("inference-idle-stop.timer", "inference-spot-notice.timer"):
        assert active(cost_instance, timer) == "active", timer
    check = cost_instance.exec("/usr/local/bin/check-services.sh", check=False)
    assert check.returncode == 0, check.stdout
    assert "inference-spot-notice.timer active" in check.stdout
    # The notice timer fires every 5 s (no notice: IMDS answers 404); the journal gets
    # nothing from it while nothing happens (LogLevelMax=notice).
    # The IMDS of the harness logs each request on the host.
    imds_log = cost_instance.dir / "logs" / "imds.log"
    wait_until("three polls of spot/instance-action", lambda: imds_log.read_text().count(
        "GET /latest/meta-data/spot/instance-action 404") >= 3, timeout=60)
    messages = [entry.get("MESSAGE", "") for entry in journal(cost_instance,
                                                                "inference-spot-notice.service")]
    assert messages == [], messages


def last_request(instance: harness.Instance) -> float:
    """The gauge the idle stop reads, from the proxy's /metrics on the instance."""
    metrics = instance.exec("curl", "-fsS", "http://127.0.0.1:8080/metrics").stdout
    (line,) = [m for m in metrics.splitlines()
               if m.startswith("proxy_last_request_timestamp_seconds ")]
    return float(line.split()[1])


def test_only_api_requests_move_the_gauge_the_idle_stop_reads(
        cost_instance: harness.Instance) -> None:
    """End to end through NGINX: health probes, a refused key and the idle stop's own
    scrapes of /metrics (on the box: NGINX keeps /metrics off the public side) leave the
    last request time where it was; an API request moves it."""
    key = cost_instance.api_keys()[0]
    wait_until("the proxy serving", lambda: ready(cost_instance))
    before = last_request(cost_instance)
    with cost_instance.http_client(timeout=10) as client:
        for path in ("/health", "/ready"):
            assert client.get(f"{cost_instance.endpoint}{path}").status_code == 200, path
        assert client.get(f"{cost_instance.endpoint}/metrics").status_code in (403, 404)
        refused = client.get(f"{cost_instance.endpoint}/v1/models",
                             headers={"Authorization": "Bearer sk-wrong"})
        assert refused.status_code == 401
        time.sleep(1.1)
        assert last_request(cost_instance) == before
        served = client.get(f"{cost_instance.endpoint}/v1/models",
                            headers={"Authorization": f"Bearer {key}"})
        assert served.status_code == 200
    assert last_request(cost_instance) > max(before, time.time() - 30)


def test_a_spot_notice_is_logged_and_drains_the_proxy_with_the_stream_whole(
        cost_instance: harness.Instance) -> None:
    key = cost_instance.api_keys()[0]
    model = cost_instance.summary()["model"]
    wait_until("the proxy serving", lambda: ready(cost_instance))
    chunks: list[Any] = []
    ended: list[float] = []
    failure: list[BaseException] = []

    def stream() -> None:
        try:
            with openai_client(cost_instance, key) as client:
                # 20 tokens at 2 per second: ~10 s in flight.
                for chunk in client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "hello"}],
                        max_tokens=20, stream=True, extra_body={"fake": {"tps": 2}}):
                    chunks.append(chunk)
            ended.append(time.time())
        except BaseException as error:
            failure.append(error)

    reader = threading.Thread(target=stream)
    reader.start()
    wait_until("the first token", lambda: bool(chunks) or bool(failure), timeout=30)
    notice = cost_instance.announce_spot_interruption()
    reader.join(timeout=60)
    assert not failure, failure
    assert ended, "the stream did not end"
    # Drained, not cut: every token arrived and the stream ended normally.
    tokens = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(tokens) == 20
    assert [c for c in chunks if c.choices][-1].choices[0].finish_reason == "length"
    wait_until("the proxy stopped", lambda: active(cost_instance, "inference-proxy.service")
               == "inactive", timeout=60)
    warnings = journal(cost_instance, "inference-spot-notice.service", "-p", "warning")
    assert len(warnings) == 1, warnings
    assert warnings[0]["MESSAGE"] == f"Spot interruption notice: {notice}; draining the proxy"
    # The notice came while the stream was still in flight (the drain let it finish).
    assert int(warnings[0]["__REALTIME_TIMESTAMP"]) / 1e6 < ended[0]
    drained = journal(cost_instance, "inference-spot-notice.service", "-p", "notice")
    assert any("Proxy drained and stopped after" in e["MESSAGE"] for e in drained), drained
    # Meanwhile NGINX has no proxy behind it; the next polls do not drain again.
    with cost_instance.http_client(timeout=10) as client:
        assert client.get(f"{cost_instance.endpoint}/v1/models",
                          headers={"Authorization": f"Bearer {key}"}).status_code == 502
    time.sleep(11)
    assert len(journal(cost_instance, "inference-spot-notice.service", "-p", "warning")) == 1


def test_after_the_interruption_the_same_instance_comes_back_healthy(
        cost_instance: harness.Instance) -> None:
    container = cost_instance.container
    volume = cost_instance.exec("findmnt", "-rno", "SOURCE", "/opt/models").stdout.strip()
    seconds = cost_instance.interrupt_spot()
    assert seconds is not None
    assert active(cost_instance, "inference-proxy.service") == "active"
    assert active(cost_instance, "inference-spot-notice.timer") == "active"
    assert cost_instance.exec("findmnt", "-rno", "SOURCE", "/opt/models").stdout.strip() == volume
    # The same machine (root disk, instance id), not a replacement.
    assert cost_instance.container == container
    assert cost_instance.exec("cloud-init", "query", "instance_id").stdout.strip() == \
        cost_instance.state.ec2_instance_id
    vllm_log = cost_instance.exec("journalctl", "-u", "vllm", "--no-pager", "-b").stdout
    assert "found in the cache" in vllm_log
    assert_serves(cost_instance, cost_instance.api_keys()[0])
    print(f"\nafter the Spot interruption: /ready {seconds:.0f} s after the start")
