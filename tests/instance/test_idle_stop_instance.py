"""The idle stop on a booted instance (idle_stop_minutes = 5, the instance of
test_cost_instance.py): with no API request for 5 minutes the timer's script calls
`shutdown --poweroff` (recorded by a diverted `shutdown`, then done: the machine powers off,
which on EC2, with the shutdown behaviour stop, stops the instance), and a start (what the
start_command output runs) brings the same instance back serving. This file sorts after the
other boot tests, so the idle minutes pass while they run."""

from __future__ import annotations

import time

import pytest
from instance_checks import assert_serves

from testkit.instance import harness

pytestmark = [pytest.mark.instance, pytest.mark.slow]

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
