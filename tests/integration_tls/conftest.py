"""The HTTPS stack on loopback, built once for the module the way the instance builds it:
the port-80 ACME site first, certbot HTTP-01 through it, then the full site swapped in
with `nginx -t` + reload (setup-nginx.sh and setup-certbot.sh). Behind NGINX: the real
proxy (`python -m inference_proxy`) and the fake vLLM of testkit/fake_vllm.py."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Protocol

import pytest

from testkit import local_stack, render, tls_stack
from testkit.fake_vllm import FakeVLLM
from testkit.ports import free_port
from testkit.processes import wait_until
from testkit.support import need_tool
from testkit.tls_stack import API_KEY, HttpsStack
from tools import lint_templates

# The HTTPS case of tools/lint_templates.py: the same bytes the lint checks.
HTTPS_CASE = next(case for case in lint_templates.matrix() if case.name == "cpu-https-dns")
DOMAIN = f"{lint_templates.SUBDOMAIN}.{lint_templates.DOMAIN}"


class Stoppable(Protocol):
    def stop(self) -> None: ...


@pytest.fixture(scope="session")
def rendered_https() -> dict[str, str]:
    """The instance's files for an HTTPS deployment, from a real Terraform plan."""
    return render.render_one(HTTPS_CASE.tfvars())


def exec_start(unit: str) -> str:
    lines = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, unit
    return lines[0]


@pytest.fixture(scope="module")
def https_stack(rendered_https: dict[str, str]) -> Iterator[HttpsStack]:
    for tool in ("pebble", "pebble-challtestsrv", "certbot", "nginx", "openssl"):
        need_tool(tool)
    started = time.monotonic()
    base = tls_stack.world_readable_tempdir("ec2i-tls-")
    webroot = base / "webroot"
    webroot.mkdir(mode=0o755)
    ports = tls_stack.SitePorts(
        free_port(), free_port(), free_port()
    )
    app_port = int(
        next(
            line.split("=", 1)[1].strip("'")
            for line in rendered_https["inference.env"].splitlines()
            if line.startswith("APP_PORT=")
        )
    )

    def localize(name: str) -> str:
        return tls_stack.localize_site(rendered_https[name], ports, base, app_port)

    stoppers: list[Stoppable] = []
    fake = FakeVLLM(tokens_per_second=50).start()
    try:
        proxy = local_stack.start_proxy(
            fake.url, ports.proxy, base / "proxy.log", api_keys=[API_KEY]
        )
        stoppers.append(proxy)
        wait_until(
            proxy, lambda: local_stack.http_ok(f"{proxy.url}/health"), 30, interval=0.1
        )
        acme = tls_stack.start_acme(base / "acme", ports.http)
        stoppers.append(acme)
        nginx = tls_stack.start_nginx(base / "nginx", localize("nginx-acme.conf"), ports.http)
        stoppers.append(nginx)
        certbot = tls_stack.Certbot(base, acme, webroot)
        certbot.certonly(DOMAIN)
        nginx.install_site(localize("nginx-site.conf"))
        trust = tls_stack.trust_only(acme.issuing_root())
        stack = HttpsStack(
            domain=DOMAIN,
            ports=ports,
            acme=acme,
            certbot=certbot,
            nginx=nginx,
            fake=fake,
            trust=trust,
            renew_exec_start=exec_start(rendered_https["inference-cert-renew.service"]),
            setup_seconds=time.monotonic() - started,
        )
        print(f"\nHTTPS stack up (pebble, certbot HTTP-01, nginx) in {stack.setup_seconds:.1f} s")
        yield stack
    finally:
        for stopper in reversed(stoppers):
            stopper.stop()
        fake.stop()
        shutil.rmtree(base, ignore_errors=True)
