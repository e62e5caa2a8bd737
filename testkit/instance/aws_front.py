"""AWS endpoints that the instance reaches by name, not through the AWS CLI's endpoint_url,
as a process in the instance's network namespace:

    python -m testkit.instance.aws_front --listen 127.0.0.1:5446 --cert C --key K \\
        --moto 127.0.0.1:5000 --downloads DIR

Docker's awslogs driver (the Go SDK inside dockerd) and the CloudWatch agent's package
download go to `logs.<region>.amazonaws.com` and
`amazoncloudwatch-agent-<region>.s3.<region>.amazonaws.com` over HTTPS, as on EC2. The
harness names both in the instance's /etc/hosts with one address, DNATs its port 443 here
(testkit/instance/network.py), and gives this server a certificate for both names from the
harness CA, which the instance trusts as it trusts public CAs. Here:

* a request for the logs endpoint is relayed to moto as it came (method, path, headers,
  body), so moto's CloudWatch Logs answers what dockerd sends;
* a GET on the agent's download host is a file from DIR, by path (`agent_package` puts
  the stand-in agent there, testkit/instance/cloudwatch_agent.py).

Nothing in the shipped scripts knows about it: they use AWS's names.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import ssl
import subprocess
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

AGENT_PATH = "ubuntu/amd64/latest/amazon-cloudwatch-agent.deb"
AGENT_SOURCE = Path(__file__).resolve().with_name("cloudwatch_agent.py")


def logs_host(region: str) -> str:
    return f"logs.{region}.amazonaws.com"


def agent_host(region: str) -> str:
    return f"amazoncloudwatch-agent-{region}.s3.{region}.amazonaws.com"


def agent_package(downloads: Path) -> Path:
    """The stand-in agent as a Debian package at the path the real one has in its bucket
    (amd64: the instance image's architecture). Rebuilt every time (a second)."""
    target = downloads / AGENT_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pkg"
        home = root / "opt/aws/amazon-cloudwatch-agent"
        (home / "bin").mkdir(parents=True)
        (home / "etc").mkdir()
        shutil.copy(AGENT_SOURCE, home / "bin/cloudwatch_agent.py")
        ctl = home / "bin/amazon-cloudwatch-agent-ctl"
        ctl.write_text("#!/bin/sh\n# Stand-in (testkit/instance/cloudwatch_agent.py).\n"
                       'exec python3 /opt/aws/amazon-cloudwatch-agent/bin/cloudwatch_agent.py '
                       'ctl "$@"\n')
        ctl.chmod(0o755)
        unit = root / "etc/systemd/system/amazon-cloudwatch-agent.service"
        unit.parent.mkdir(parents=True)
        unit.write_text(
            "[Unit]\nDescription=Amazon CloudWatch Agent (harness stand-in)\n"
            "After=network-online.target\n\n[Service]\n"
            "ExecStart=/usr/bin/python3"
            " /opt/aws/amazon-cloudwatch-agent/bin/cloudwatch_agent.py run\n"
            "Restart=on-failure\nRestartSec=10\n\n[Install]\nWantedBy=multi-user.target\n")
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN/control").write_text(
            "Package: amazon-cloudwatch-agent\nVersion: 0.0.0-ec2i-standin\n"
            "Architecture: amd64\nMaintainer: ec2-inference tests <noreply@example.com>\n"
            "Depends: python3\n"
            "Description: stand-in for the Amazon CloudWatch agent (testkit/instance)\n")
        subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(target)],
                       check=True, capture_output=True)
    return target


def handler(moto: str, downloads: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _download(self) -> None:
            path = (downloads / self.path.split("?")[0].lstrip("/")).resolve()
            if downloads.resolve() not in path.parents or not path.is_file():
                self._answer(404, b"NoSuchKey", {"Content-Type": "text/plain"})
                return
            self._answer(200, path.read_bytes(), {"Content-Type": "application/octet-stream"})

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host, port = moto.rsplit(":", 1)
            upstream = http.client.HTTPConnection(host, int(port), timeout=60)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("connection", "transfer-encoding")}
            try:
                upstream.request(self.command, self.path, body, headers)
                answer = upstream.getresponse()
                content = answer.read()
                relayed = {k: v for k, v in answer.getheaders()
                           if k.lower() not in ("connection", "transfer-encoding",
                                                "content-length", "server", "date")}
                self._answer(answer.status, content, relayed)
            finally:
                upstream.close()

        def _route(self) -> None:
            if self.headers.get("Host", "").startswith("amazoncloudwatch-agent-"):
                if self.command != "GET":
                    self._answer(405, b"", {})
                else:
                    self._download()
            else:
                self._relay()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _route

        def log_message(self, format: str, *args: Any) -> None:
            print(f"aws-front {self.headers.get('Host')} {self.command} {self.path} "
                  f"{args[1] if len(args) > 1 else ''}", flush=True)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--moto", required=True, help="HOST:PORT of moto's server")
    parser.add_argument("--downloads", type=Path, required=True)
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), handler(args.moto, args.downloads))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"aws-front on {args.listen} -> moto {args.moto}, downloads {args.downloads}",
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
