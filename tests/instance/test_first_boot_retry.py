"""A first boot whose scripts are not in S3: the bootstrap installs the recovery unit before
it waits for them, so once they appear a reboot (with cloud-init done with user_data, as
after a bootstrap that gave up) still brings the instance up."""

from __future__ import annotations

import pytest
from instance_checks import Boot, assert_serves, wait_until

pytestmark = [pytest.mark.instance, pytest.mark.slow]


def test_a_reboot_retries_a_first_boot_whose_scripts_never_came(boot: Boot) -> None:
    instance = boot("cpu", upload_scripts=False, wait=False)
    wait_until("the bootstrap's recovery unit enabled", lambda: instance.exec(
        "systemctl", "is-enabled", "inference-recovery.service", check=False).stdout.strip()
        == "enabled")
    unit = instance.exec("cat", "/etc/systemd/system/inference-recovery.service").stdout
    assert "ExecStart=/var/lib/inference/bootstrap.sh" in unit, unit
    log = instance.exec("cat", "/var/log/user-data.log").stdout
    assert "bootstrap start" in log and "main-setup" not in log
    # From here on cloud-init leaves user_data alone, as at any boot after the first: only
    # the recovery unit can finish the job.
    instance.exec("touch", "/etc/cloud/cloud-init.disabled")
    instance.reboot(wait=False)
    instance.upload_scripts()
    instance.wait_ready()
    started = instance.unit_property("inference-recovery.service", "ExecMainStartTimestamp")
    assert started, "the recovery unit did not run at the boot after"
    assert instance.exec("test", "-f", "/var/lib/inference/setup.done", check=False).returncode == 0
    # main-setup installed the rendered recovery unit over the bootstrap's.
    unit = instance.exec("cat", "/etc/systemd/system/inference-recovery.service").stdout
    assert "ExecStart=/opt/inference/scripts/recovery.sh" in unit
    assert_serves(instance, instance.api_keys()[0])
