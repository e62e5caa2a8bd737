"""The HTTPS stack of the instance, on loopback: an ACME CA (pebble, with
pebble-challtestsrv as its DNS), certbot, NGINX with the site that Terraform renders, and
an httpx client that resolves the test domain to 127.0.0.1 and trusts only pebble's root.

Every process is started on free loopback ports in its own process group and stopped by
PID (testkit/local_stack.py does both). Nothing under /etc is read or written except the
distribution's /etc/nginx/mime.types.

The rendered site is used as Terraform renders it, with one documented rewrite
(`localize_site`): listen ports, the certificate and webroot directories, and the proxy's
port move to the test's own; every rule, header, timeout and redirect stays byte for byte.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from testkit import nginx as nginx_runner
from testkit.ports import free_port
from testkit.processes import Service, StackError, start_process, wait_until

ROOT = Path(__file__).resolve().parents[1]


if TYPE_CHECKING:
    from testkit.fake_vllm import FakeVLLM

API_KEY = "sk-tls-" + "7" * 24
ACME_EMAIL = "ops@ec2i-tls.test"
START_TIMEOUT = 30.0


class TlsStackError(RuntimeError):
    """A part of the HTTPS stack failed; the message carries its output."""


def world_readable_tempdir(prefix: str) -> Path:
    """A temp dir NGINX's unprivileged workers can traverse (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def wait_for_port(service: Service, port: int, timeout: float = START_TIMEOUT) -> None:
    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    try:
        wait_until(service, listening, timeout, interval=0.05)
    except StackError as error:
        raise TlsStackError(str(error)) from error


# --- ACME: pebble + pebble-challtestsrv -------------------------------------------------


@dataclass
class Acme:
    """A running pebble CA whose DNS (challtestsrv) answers 127.0.0.1 for every name."""

    directory_url: str
    management_url: str
    listener_ca: Path  # pebble's own HTTPS certificate: certbot's REQUESTS_CA_BUNDLE
    services: list[Service]

    def issuing_root(self) -> str:
        """PEM of the root that signs every certificate (new on every pebble start)."""
        trust = ssl.create_default_context(cafile=str(self.listener_ca))
        response = httpx.get(f"{self.management_url}/roots/0", verify=trust, timeout=5)
        response.raise_for_status()
        return response.text

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop(grace=5)


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def start_acme(workdir: Path, http_challenge_port: int) -> Acme:
    """pebble validating HTTP-01 on `http_challenge_port` (where NGINX listens for port 80)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = _self_signed(workdir, "pebble-listener")
    dns_port, challtest_mgmt = free_port(), free_port()
    acme_port, mgmt_port = free_port(), free_port()
    services: list[Service] = []
    try:
        challtestsrv = start_process(
            "pebble-challtestsrv",
            [
                "pebble-challtestsrv",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",  # no AAAA: pebble must reach NGINX on 127.0.0.1
                "-dns01",
                f"127.0.0.1:{dns_port}",
                "-management",
                f"127.0.0.1:{challtest_mgmt}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ],
            workdir / "challtestsrv.log",
            f"http://127.0.0.1:{challtest_mgmt}",
        )
        services.append(challtestsrv)
        wait_for_port(challtestsrv, challtest_mgmt)
        config = workdir / "pebble.json"
        config.write_text(
            json.dumps(
                {
                    "pebble": {
                        "listenAddress": f"127.0.0.1:{acme_port}",
                        "managementListenAddress": f"127.0.0.1:{mgmt_port}",
                        "certificate": str(cert),
                        "privateKey": str(key),
                        "httpPort": http_challenge_port,
                        "tlsPort": free_port(),
                        "ocspResponderURL": "",
                        "externalAccountBindingRequired": False,
                    }
                }
            )
        )
        pebble = start_process(
            "pebble",
            ["pebble", "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}"],
            workdir / "pebble.log",
            f"https://127.0.0.1:{acme_port}/dir",
            # No artificial validation delays, no rejected nonces: deterministic and fast.
            # No reused authorizations: a renewal validates HTTP-01 again, through the
            # full site's port-80 server this time (the challenge must not be redirected).
            env={
                "PEBBLE_VA_NOSLEEP": "1",
                "PEBBLE_WFE_NONCEREJECT": "0",
                "PEBBLE_AUTHZREUSE": "0",
            },
        )
        services.append(pebble)
        wait_for_port(pebble, acme_port)
        wait_for_port(pebble, mgmt_port)
    except BaseException:
        for service in reversed(services):
            service.stop(grace=5)
        raise
    return Acme(
        directory_url=f"https://127.0.0.1:{acme_port}/dir",
        management_url=f"https://127.0.0.1:{mgmt_port}",
        listener_ca=cert,
        services=services,
    )


# --- certbot -----------------------------------------------------------------------------


@dataclass
class Certbot:
    """certbot with every directory under `base` (never /etc/letsencrypt) and pebble's CA."""

    base: Path
    acme: Acme
    webroot: Path

    @property
    def config_dir(self) -> Path:
        return self.base / "letsencrypt"

    def live(self, domain: str) -> Path:
        return self.config_dir / "live" / domain

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        argv = [
            *argv,
            "--config-dir",
            str(self.config_dir),
            "--work-dir",
            str(self.base / "certbot-work"),
            "--logs-dir",
            str(self.base / "certbot-logs"),
        ]
        env = {**os.environ, "REQUESTS_CA_BUNDLE": str(self.acme.listener_ca)}
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, check=False, timeout=120
        )
        if result.returncode != 0:
            raise TlsStackError(
                f"{shlex.join(argv)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def certonly(self, domain: str) -> subprocess.CompletedProcess[str]:
        """The issuing call of setup-certbot.sh: webroot HTTP-01 through the port-80 site."""
        return self._run(
            [
                "certbot",
                "certonly",
                "--non-interactive",
                "--agree-tos",
                "--email",
                ACME_EMAIL,
                "--server",
                self.acme.directory_url,
                "--webroot",
                "--webroot-path",
                str(self.webroot),
                "--domain",
                domain,
                "--keep-until-expiring",
            ]
        )

    def renew(self, exec_start: str, reload_command: str) -> subprocess.CompletedProcess[str]:
        """Run the renew unit's ExecStart, its `systemctl reload nginx` deploy hook pointed
        at this test's NGINX, forced (the certificate is fresh) and without the random
        sleep certbot adds when it runs non-interactively."""
        argv = shlex.split(exec_start)
        hook = argv.index("--deploy-hook")
        if argv[hook + 1] != "systemctl reload nginx":
            raise TlsStackError(f"unexpected deploy hook in the renew unit: {exec_start}")
        argv[hook + 1] = reload_command
        argv[0] = shutil.which("certbot") or argv[0]
        return self._run([*argv, "--force-renewal", "--no-random-sleep-on-renew"])


# --- NGINX -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SitePorts:
    http: int
    https: int
    proxy: int


def localize_site(site: str, ports: SitePorts, base: Path, app_port: int) -> str:
    """The documented rewrite of the rendered site for a loopback test. Each rule must
    match (a template change that breaks one fails the test instead of going unnoticed):

    * `listen 80` / `listen 443 ssl` -> 127.0.0.1 on the test's ports; IPv6 listens go;
    * /etc/letsencrypt/ -> certbot's --config-dir under `base`;
    * /var/www/letsencrypt -> the webroot under `base`;
    * the proxy's upstream 127.0.0.1:<app_port> -> the test proxy's port.
    """
    has_tls = "ssl_certificate" in site
    rules: list[tuple[str, str, bool]] = [  # pattern, replacement, must match
        (r"(?m)^[ \t]*listen \[::\]:(80|443)\b[^;]*;\n", "", False),
        (r"(?m)^([ \t]*)listen 80\b", rf"\1listen 127.0.0.1:{ports.http}", True),
        (r"(?m)^([ \t]*)listen 443\b", rf"\1listen 127.0.0.1:{ports.https}", has_tls),
        (r"/etc/letsencrypt/", f"{base}/letsencrypt/", has_tls),
        (r"/var/www/letsencrypt\b", f"{base}/webroot", "acme-challenge" in site),
        (rf"\b127\.0\.0\.1:{app_port}\b", f"127.0.0.1:{ports.proxy}", "proxy_pass" in site),
    ]
    for pattern, replacement, required in rules:
        site, count = re.subn(pattern, replacement, site)
        if required and count == 0:
            raise TlsStackError(f"the rendered site no longer matches {pattern!r}:\n{site}")
    return site


@dataclass
class Nginx:
    """NGINX (run as root, workers as its default unprivileged user) with a private prefix."""

    prefix: Path
    service: Service

    @property
    def main_config(self) -> Path:
        return self.prefix / "nginx.conf"

    def command(self, *args: str) -> list[str]:
        return [
            nginx_runner.nginx_binary(),
            "-p",
            str(self.prefix),
            "-c",
            str(self.main_config),
            *args,
        ]

    def install_site(self, site: str) -> None:
        """Swap the site in and reload, as setup-certbot.sh does (`nginx -t` first)."""
        nginx_runner.write_nginx_main_config(self.prefix, site)
        self._check(subprocess.run(self.command("-t", "-q"), capture_output=True, text=True))
        old_workers = self.workers()
        self._check(subprocess.run(self.command("-s", "reload"), capture_output=True, text=True))
        # The reload is asynchronous: it is done when the old workers (no open connection
        # here) have exited and new ones run the new site.
        deadline = time.monotonic() + 15
        while (self.workers() & old_workers or not self.workers()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.workers() & old_workers:
            raise TlsStackError(f"nginx did not reload within 15 s\n{self.service.log_tail()}")

    def workers(self) -> set[int]:
        master = self.service.pid
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except OSError:
            return set()
        return {int(pid) for pid in children}

    def challenges_served(self) -> int:
        """ACME HTTP-01 challenge requests NGINX answered with 200 (its access log)."""
        log = self.prefix / "logs" / "access.log"
        text = log.read_text() if log.exists() else ""
        return sum(
            "/.well-known/acme-challenge/" in line and '" 200 ' in line
            for line in text.splitlines()
        )

    def reload_command(self) -> str:
        return shlex.join(self.command("-s", "reload"))

    def _check(self, result: subprocess.CompletedProcess[str]) -> None:
        if result.returncode != 0:
            raise TlsStackError(f"nginx: {result.stderr.strip()}\n{self.service.log_tail()}")

    def stop(self) -> None:
        self.service.stop(grace=10)


def start_nginx(prefix: Path, site: str, http_port: int) -> Nginx:
    try:
        service = nginx_runner.start_nginx(prefix, site, f"http://127.0.0.1:{http_port}")
    except StackError as error:
        raise TlsStackError(str(error)) from error
    nginx = Nginx(prefix, service)
    try:
        wait_for_port(service, http_port)
    except BaseException:
        nginx.stop()
        raise
    return nginx


# --- the client --------------------------------------------------------------------------


class LoopbackDomainTransport(httpx.BaseTransport):
    """Sends requests for `domain` (on ports 80/443, as a browser would) to the test's
    loopback ports, keeping the Host header and the TLS server name (SNI + certificate
    check) as `domain`: DNS without touching /etc/hosts."""

    def __init__(self, domain: str, ports: Mapping[int, int], trust: ssl.SSLContext) -> None:
        self.domain = domain
        self.ports = dict(ports)
        self.inner = httpx.HTTPTransport(verify=trust)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.host == self.domain:
            port = url.port or (443 if url.scheme == "https" else 80)
            request.url = url.copy_with(host="127.0.0.1", port=self.ports[port])
            request.extensions = {**request.extensions, "sni_hostname": self.domain}
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def trust_only(root_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=root_pem)
    return context


def served_certificate(port: int, domain: str, trust: ssl.SSLContext) -> bytes:
    """DER of the leaf NGINX presents for `domain` on a fresh connection (verified)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        trust.wrap_socket(raw, server_hostname=domain) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise TlsStackError("no peer certificate")
    return der


def wait_for_certificate_change(
    port: int, domain: str, trust: ssl.SSLContext, old: bytes, timeout: float = 15.0
) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        current = served_certificate(port, domain, trust)
        if current != old:
            return current
        if time.monotonic() > deadline:
            raise TlsStackError(f"NGINX still serves the old certificate after {timeout} s")
        time.sleep(0.1)


# --- the whole stack, as the fixture in conftest.py builds it -----------------------------


@dataclass
class HttpsStack:
    domain: str
    ports: SitePorts
    acme: Acme
    certbot: Certbot
    nginx: Nginx
    fake: FakeVLLM
    trust: ssl.SSLContext
    renew_exec_start: str
    setup_seconds: float

    def client(self) -> httpx.Client:
        """A client for https://<domain>/ (and http://) that trusts only pebble's root."""
        transport = LoopbackDomainTransport(
            self.domain, {80: self.ports.http, 443: self.ports.https}, self.trust
        )
        return httpx.Client(transport=transport, timeout=30)
