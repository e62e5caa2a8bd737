"""IAM as AWS applies it to the instance role (testkit/instance/iam.py): every boot test
runs with moto checking each call against the policy the apply rendered, so a permission
the scripts need and the policy lacks fails the boot here as on AWS. This test proves the
check is real: the same boot without `ec2:DescribeVolumes` (found missing by reading, once)
stops at the data volume, at once, saying which permission."""

from __future__ import annotations

import pytest
from instance_checks import Boot, wait_until

pytestmark = [pytest.mark.instance, pytest.mark.slow]


def test_a_permission_missing_from_the_instance_role_fails_the_boot_naming_it(
        boot: Boot) -> None:
    instance = boot("cpu", wait=False, missing_permissions=["ec2:DescribeVolumes"])

    def log() -> str:
        return instance.exec("cat", "/var/log/user-data.log", check=False).stdout

    wait_until("the boot stopping at the data volume", lambda: "EC2 refused" in log(),
               timeout=300)
    text = log()
    assert "the instance role needs ec2:DescribeVolumes" in text
    assert "AccessDenied" in text and "DescribeVolumes" in text
    # It stopped there: no secrets read, no services, nothing formatted.
    assert "step setup-secrets" not in text and "formatting" not in text
    # What the role may do still works (the scripts came from S3 with it).
    assert "step setup-data-volume" in text
