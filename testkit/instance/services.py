"""AWS and the internet, locally: the processes the booted instance talks to.

Each runs on the host's file system but inside the instance's network namespace
(`nsenter --net`), in its own session, and is stopped by its PID (testkit/processes.py):

* moto server on 0.0.0.0:5000: S3, SSM, ECR auth and EC2 (the instance's AWS CLI has
  `endpoint_url` in root's ~/.aws/config; the tests reach it at <instance address>:5000);
* testkit/instance/imds.py on 127.0.0.1:8169: IMDSv2 at 169.254.169.254 (DNAT);
* docker-registry with TLS and htpasswd on 127.0.0.1:5443: ECR
  (`<account>.dkr.ecr.<region>.amazonaws.com`, DNAT from its address:443), and one with TLS
  and no auth on 127.0.0.1:5444: public.ecr.aws, where the vLLM image lives;
* testkit/instance/aws_front.py with TLS on 127.0.0.1:5446: the AWS endpoints reached by
  name (CloudWatch Logs for Docker's awslogs driver, relayed to moto; the CloudWatch agent's
  download bucket, serving the stand-in agent), DNAT from their address:443;
* pebble on 127.0.0.1:14000 and pebble-challtestsrv as DNS on 127.0.0.1:53: Let's Encrypt
  and the public DNS (HTTPS case).

Certificates are signed by the harness CA that tools/prepare/42-instance-image.sh made and
put into the instance image's trust store.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Sequence
from pathlib import Path

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testkit.cache import cache_dir
from testkit.instance.network import nsenter
from testkit.processes import Service, start_process

MOTO_PORT = 5000
IMDS_PORT = 8169
ECR_REGISTRY_PORT = 5443
PUBLIC_REGISTRY_PORT = 5444
ACME_PORT = 14000
ACME_MANAGEMENT_PORT = 15000
CHALLTESTSRV_MANAGEMENT_PORT = 8055
AWS_FRONT_PORT = 5446
MOTO_ACCOUNT = "123456789012"
ECR_PASSWORD = f"{MOTO_ACCOUNT}-auth-token"  # what moto's ECR GetAuthorizationToken hands out
PUBLIC_REGISTRY_HOST = "public.ecr.aws"


class HarnessCAError(RuntimeError):
    """The harness CA is missing: tools/prepare/42-instance-image.sh makes it."""


def ca_dir() -> Path:
    return cache_dir() / "instance-ca"


def load_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    directory = ca_dir()
    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    except FileNotFoundError as error:
        raise HarnessCAError(f"{error.filename} is missing; run `bash tools/prepare.sh test`"
                             ) from error
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise HarnessCAError(f"{directory / 'ca.key'} is not an EC key")
    return cert, key


def issue_certificate(directory: Path, name: str, dns_names: Sequence[str] = (),
                      ip_addresses: Sequence[str] = ()) -> tuple[Path, Path]:
    """A server certificate signed by the harness CA: (certificate chain, key) files."""
    ca_cert, ca_key = load_ca()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                          + ca_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def registry_storage() -> Path:
    """Where the images of the boot tests are pushed (kept: a second run pushes nothing)."""
    return cache_dir() / "instance-registry"


def registry_config(workdir: Path, listen: str, tls: tuple[Path, Path] | None = None,
                    users: dict[str, str] | None = None) -> Path:
    """A docker-registry configuration over the shared storage (JSON is YAML)."""
    workdir.mkdir(parents=True, exist_ok=True)
    http: dict[str, object] = {"addr": listen}
    if tls:
        http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(registry_storage())}},
        "http": http,
    }
    if users:
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text("".join(
            f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
            for user, password in users.items()))
        config["auth"] = {"htpasswd": {"realm": "ec2-inference-instance", "path": str(htpasswd)}}
    path = workdir / "config.yml"
    path.write_text(json.dumps(config))
    return path


def start_in_namespace(pid: int, name: str, argv: Sequence[str], logs: Path,
                       env: dict[str, str] | None = None) -> Service:
    """`argv` in the network namespace of `pid` (nsenter execs it: same PID), in its own
    session, logging to logs/<name>.log."""
    return start_process(name, [*nsenter(pid), *argv], logs / f"{name}.log", url="", env=env)


def pebble_config(workdir: Path, listener: tuple[Path, Path]) -> Path:
    config = workdir / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{ACME_PORT}",
        "managementListenAddress": f"0.0.0.0:{ACME_MANAGEMENT_PORT}",
        "certificate": str(listener[0]),
        "privateKey": str(listener[1]),
        "httpPort": 80,
        "tlsPort": 443,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}))
    return config


# No artificial validation delays, no rejected nonces, no reused authorizations.
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
