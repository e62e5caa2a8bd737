"""Instances that start together create the API-keys parameter once: the rendered
setup-secrets.sh of the autoscaling mode, run at the same moment by three copies of the
instance image (its own AWS CLI) against one moto SSM, where each finds the parameter
missing. The create is `put-parameter --no-overwrite` (and the role may never overwrite),
so one wins, the others are refused and read the winner's key: every instance serves the
same key, and SSM holds version 1.

The race is forced, not hoped for: an `aws` on PATH in front of the real one holds every
`ssm put-parameter` until all three have asked for it (so all three read "missing" first),
then runs the real CLI. The script itself runs as rendered."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from testkit import render
from testkit.instance import images
from testkit.ports import free_port
from testkit.registry import stop, wait_for_http

pytestmark = [pytest.mark.instance, pytest.mark.slow]

INSTANCES = 3
PARAMETER = "/llm-race/api_keys"
BARRIER = f"""#!/bin/bash
# Hold `aws ssm put-parameter` until all {INSTANCES} instances have reached it.
if [ "$1 $2" = "ssm put-parameter" ]; then
  touch "/barrier/$HOSTNAME"
  for _ in $(seq 1 300); do
    [ "$(ls /barrier | wc -l)" -ge {INSTANCES} ] && break
    sleep 0.1
  done
fi
exec /usr/local/bin/aws "$@"
"""


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=out)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/moto-api/", process, log)
        yield url
    finally:
        stop(process)


def test_instances_starting_together_create_one_key_and_all_serve_it(
        moto: str, tmp_path: Path, instance_machine: None) -> None:
    files = render.render_one({
        **render.PINNED_TFVARS, "name": "llm", "environment": "race",
        "deployment_mode": "autoscaling", "domain_name": "example.com",
        "route53_zone_id": "Z0123456789ABCDEFGHIJ", "use_gpu": False})
    assert f"API_KEYS_PARAMETER='{PARAMETER}'" in files["inference.env"]
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name, content in files.items():
        if name != render.BOOTSTRAP:
            (scripts / name).write_text(content)
            if name.endswith(".sh"):  # executable, as the instance installs them
                (scripts / name).chmod(0o755)
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "aws").write_text(BARRIER)
    (shim / "aws").chmod(0o755)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    (tmp_path / "aws-config").write_text(f"[default]\nregion = us-east-1\nendpoint_url = {moto}\n")

    def run(index: int, results: dict[int, subprocess.CompletedProcess[str]]) -> None:
        results[index] = subprocess.run(
            ["docker", "run", "--rm", "--network", "host", "--hostname", f"race{index}",
             "--name", f"ec2i-scale-race-{tmp_path.name[-12:]}-{index}",
             "--entrypoint", "bash",
             "--volume", f"{scripts}:/opt/inference/scripts:ro",
             "--volume", f"{shim}:/opt/shim:ro", "--volume", f"{barrier}:/barrier",
             "--volume", f"{tmp_path / 'aws-config'}:/root/.aws/config:ro",
             "--env", "AWS_ACCESS_KEY_ID=testing", "--env", "AWS_SECRET_ACCESS_KEY=testing",
             "--env", "PATH=/opt/shim:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             images.INSTANCE_IMAGE, "-c",
             "bash /opt/inference/scripts/setup-secrets.sh && cat /run/proxy-keys/keys.json"],
            capture_output=True, text=True, timeout=180, check=False)

    results: dict[int, subprocess.CompletedProcess[str]] = {}
    threads = [threading.Thread(target=run, args=(i, results)) for i in range(INSTANCES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for done in results.values():
        assert done.returncode == 0, done.stderr
        # Every instance found the parameter missing and tried to create it ...
        assert f"{PARAMETER} does not exist; creating it with a random key" in done.stderr
    # ... one of them made it, the others were refused and read the winner's key.
    refused = [d for d in results.values() if "put-parameter failed; reading again" in d.stderr]
    assert len(refused) == INSTANCES - 1, [d.stderr for d in results.values()]
    served = {done.stdout.strip() for done in results.values()}
    assert len(served) == 1, served
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=moto,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    stored = ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]
    assert stored["Version"] == 1
    assert served == {stored["Value"]}  # the proxy's key file (refresh-keys.sh)
