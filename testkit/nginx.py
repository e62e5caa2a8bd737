"""NGINX started on loopback with a private prefix (own nginx.conf, pid, logs and temp
dirs), around a site that Terraform rendered for the instance. The system's nginx service
and /etc/nginx are never touched (only /etc/nginx/mime.types is read)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testkit import render
from testkit.processes import Service, StackError, start_process

PREPARE_HINT = "run `bash tools/prepare.sh test` (or `make demo`) to install it"
# The instance's plain-HTTP site listens on port 80; on this machine it moves to a
# loopback port (the only change made to the rendered site).
INSTANCE_LISTEN = "listen 80 default_server;"


def nginx_binary() -> str:
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path is None:
        raise StackError(f"nginx is not installed; {PREPARE_HINT}")
    return path


def write_nginx_main_config(prefix: Path, site_config: str, log_level: str = "warn") -> Path:
    """A private nginx.conf around `site_config`: own pid, logs and temp dirs under `prefix`.
    `log_level` "debug" logs, among others, the location each request used.

    The system's nginx service and /etc/nginx are never touched.
    """
    for sub in ("logs", "temp/client", "temp/proxy", "temp/fastcgi", "temp/uwsgi", "temp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "site.conf").write_text(site_config)
    main = prefix / "nginx.conf"
    main.write_text(
        f"""# Written by testkit/nginx.py; not the system nginx.
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log {log_level};
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/temp/client;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {prefix}/site.conf;
}}
"""
    )
    return main


def check_nginx_config(main_config: Path, prefix: Path) -> None:
    result = subprocess.run(
        [nginx_binary(), "-t", "-p", str(prefix), "-c", str(main_config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"nginx rejected {main_config}:\n{result.stderr.strip()}")


def start_nginx(prefix: Path, site_config: str, url: str, log_level: str = "warn") -> Service:
    """Run nginx in the foreground (its own process group) with a private prefix."""
    main = write_nginx_main_config(prefix, site_config, log_level)
    check_nginx_config(main, prefix)
    argv = [nginx_binary(), "-p", str(prefix), "-c", str(main), "-g", "daemon off;"]
    return start_process("nginx", argv, prefix / "logs" / "nginx.out", url)


def local_site(http_port: int, proxy_port: int, tfvars: Mapping[str, Any] | None = None) -> str:
    """The instance's plain-HTTP NGINX site as Terraform renders it (testkit/render.py)
    for a CPU deployment whose proxy listens on `proxy_port`, listening on
    127.0.0.1:`http_port` instead of port 80."""
    files = render.render_one(
        {
            **render.PINNED_TFVARS,
            "use_gpu": False,
            "app_port": proxy_port,
            # Loopback only, but the site is the instance's plain-HTTP one, which the root
            # module plans only when asked for explicitly.
            "allow_plaintext_http": True,
            **(tfvars or {}),
        }
    )
    site = files["nginx-site.conf"]
    if site.count(INSTANCE_LISTEN) != 1:
        raise StackError(f"the rendered site no longer has exactly one {INSTANCE_LISTEN!r}")
    return site.replace(INSTANCE_LISTEN, f"listen 127.0.0.1:{http_port} default_server;")
