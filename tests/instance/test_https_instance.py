"""The HTTPS deployment booted with pebble as Let's Encrypt and pebble-challtestsrv as the
public DNS: the scripts reach S3 only after the bootstrap started waiting for them (it
converges once they appear), setup-certbot.sh waits for DNS -> the instance's public IPv4
(IMDS), gets a real certificate through NGINX's port 80, and enables the renewal timer. The
certificate lives on the data volume: a replacement keeps it, a changed acme_server gets a
new one."""

from __future__ import annotations

import json
import time

import pytest
from cryptography import x509
from instance_checks import Boot, assert_serves

from testkit.instance import harness, services

pytestmark = [pytest.mark.instance, pytest.mark.slow(minutes=3)]


@pytest.fixture(scope="module")
def https_instance(boot: Boot) -> harness.Instance:
    instance = boot("https", upload_scripts=False, wait=False)
    deadline = time.monotonic() + 180
    while "bootstrap start" not in instance.exec("cat", "/var/log/user-data.log",
                                                   check=False).stdout:
        assert time.monotonic() < deadline, "the bootstrap never started"
        time.sleep(2)
    time.sleep(15)  # the bootstrap is polling S3 in vain
    instance.upload_scripts()
    instance.wait_ready()
    instance.wait_converged()  # /ready comes before main-setup's last steps
    return instance


def test_certificate_issued_at_boot_and_served_by_nginx(https_instance: harness.Instance) -> None:
    domain = f"{harness.SUBDOMAIN}.{harness.DOMAIN}"
    pem = https_instance.exec("cat", f"/etc/letsencrypt/live/{domain}/fullchain.pem").stdout
    certificate = x509.load_pem_x509_certificate(pem.encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == [domain]
    assert "Pebble" in certificate.issuer.rfc4514_string()
    # The client trusts only pebble's root and reaches the domain: NGINX serves that chain.
    assert_serves(https_instance, https_instance.api_keys()[0])
    log = https_instance.exec("cat", "/var/log/user-data.log").stdout
    assert f"DNS {domain} -> this instance's public IP: ready" in log
    assert f"certificate issued for {domain}" in log


def test_renewal_timer_enabled_and_port_80_redirects(https_instance: harness.Instance) -> None:
    enabled = https_instance.exec("systemctl", "is-enabled", "inference-cert-renew.timer",
                                  "certbot.timer", check=False).stdout.split()
    assert enabled == ["enabled", "disabled"]
    active = https_instance.exec("systemctl", "is-active", "inference-cert-renew.timer").stdout
    assert active.strip() == "active"
    with https_instance.http_client() as client:
        response = client.get(f"http://{https_instance.addresses.instance}/v1/models",
                              headers={"Host": f"{harness.SUBDOMAIN}.{harness.DOMAIN}"})
    assert response.status_code in (301, 308, 403), response.status_code
    check = https_instance.exec("/usr/local/bin/check-services.sh", check=False)
    assert check.returncode == 0, check.stdout
    failed = https_instance.exec("systemctl", "--failed", "--plain", "--no-legend").stdout
    assert failed.strip() == "", failed


def certificate(instance: harness.Instance) -> x509.Certificate:
    domain = f"{harness.SUBDOMAIN}.{harness.DOMAIN}"
    pem = instance.exec("cat", f"/etc/letsencrypt/live/{domain}/fullchain.pem").stdout
    return x509.load_pem_x509_certificate(pem.encode())


def test_a_replacement_keeps_the_certificate_on_the_data_volume(
        https_instance: harness.Instance) -> None:
    domain = f"{harness.SUBDOMAIN}.{harness.DOMAIN}"
    before = certificate(https_instance).serial_number
    https_instance.replace()
    assert https_instance.exec("readlink", "/etc/letsencrypt").stdout.strip() == \
        "/opt/models/letsencrypt"
    assert certificate(https_instance).serial_number == before
    log = https_instance.exec("cat", "/var/log/user-data.log").stdout
    assert f"certificate for {domain} from https://127.0.0.1:{services.ACME_PORT}/dir found " \
        "on the data volume" in log
    assert "certificate issued" not in log
    assert_serves(https_instance, https_instance.api_keys()[0])


def test_a_changed_acme_server_issues_a_new_certificate(https_instance: harness.Instance) -> None:
    # The same pebble under another directory URL: what certbot records as the issuing
    # server changes, as from Let's Encrypt's staging to its production directory.
    domain = f"{harness.SUBDOMAIN}.{harness.DOMAIN}"
    old_server = f"https://127.0.0.1:{services.ACME_PORT}/dir"
    new_server = f"https://localhost:{services.ACME_PORT}/dir"
    before = certificate(https_instance).serial_number
    https_instance.apply(acme_server=new_server)
    https_instance.reboot()
    after = certificate(https_instance)
    assert after.serial_number != before
    assert "Pebble" in after.issuer.rfc4514_string()
    renewal = https_instance.exec("cat", f"/etc/letsencrypt/renewal/{domain}.conf").stdout
    assert f"server = {new_server}" in renewal
    # The new scripts ran from the new bootstrap, which logs to user-data.log.
    log = https_instance.exec("cat", "/var/log/inference-recovery.log",
                              "/var/log/user-data.log").stdout
    assert f"the certificate for {domain} is from {old_server}; asking {new_server}" in log
    assert_serves(https_instance, https_instance.api_keys()[0])


def test_without_cloudwatch_logs_docker_rotates_its_own_and_health_is_checked_over_tls(
        https_instance: harness.Instance) -> None:
    # This case turns CloudWatch Logs off (enable_cloudwatch_logs = false).
    config = https_instance.exec("docker", "inspect", "--format",
                                 "{{json .HostConfig.LogConfig}}", "inference-proxy").stdout
    assert json.loads(config) == {"Type": "local",
                                  "Config": {"max-file": "5", "max-size": "20m"}}
    daemon = json.loads(https_instance.exec("cat", "/etc/docker/daemon.json").stdout)
    assert daemon["log-driver"] == "local"
    # Metrics stay on: the publisher asks /ready through NGINX as a client does, with the
    # domain's name for SNI and verification (pebble's root is trusted on the instance).
    https_instance.exec("systemctl", "start", "inference-metrics.service")
    journal = https_instance.exec("journalctl", "-u", "inference-metrics", "--no-pager").stdout
    assert "(ready: True)" in journal, journal
