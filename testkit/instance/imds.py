"""The instance metadata service (IMDSv2) of a booted instance, as a process:

    python -m testkit.instance.imds --listen 127.0.0.1:8169 --root DIR

It runs in the instance's network namespace on a side port; the harness DNATs
169.254.169.254:80 to it (testkit/instance/network.py), so only the instance itself reaches
it, as on EC2 with a hop limit of 1. Like EC2 with `http_tokens = "required"`: a session
token comes from `PUT /latest/api/token` with a TTL header (1..21600 s), every GET needs
it (401 otherwise), a request carrying X-Forwarded-For is refused.

What it serves is read from DIR at every request, so the harness changes it between boots
(a new apply's user_data, a replacement's instance id): `user-data` (bytes as EC2 returns
them) and `meta-data.json` (`{"instance-id": ..., "placement/availability-zone": ...,
"public-ipv4": ..., "iam/security-credentials/<role>": {...}}`, paths under
/latest/meta-data/; a directory listing is made from the keys). A Spot interruption notice
is one more key, `"spot/instance-action": {"action": "stop", "time": ...}`, which the harness
adds on demand (`Instance.announce_spot_interruption`); without it the path is a 404, as on
EC2 when no interruption is planned.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_TTL = 21600


class Metadata:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tokens: dict[str, float] = {}

    def issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + ttl
        return token

    def valid(self, token: str | None) -> bool:
        return token is not None and self.tokens.get(token, 0) > time.monotonic()

    def lookup(self, path: str) -> bytes | None:
        """The body for /latest/<path>, or None (404)."""
        if path == "user-data":
            file = self.root / "user-data"
            return file.read_bytes() if file.exists() else None
        if not path.startswith("meta-data"):
            return None
        entries: dict[str, Any] = json.loads((self.root / "meta-data.json").read_text())
        key = path.removeprefix("meta-data").strip("/")
        if key in entries:
            value = entries[key]
            return (value if isinstance(value, str) else json.dumps(value)).encode()
        prefix = f"{key}/" if key else ""
        children = sorted({k[len(prefix):].split("/")[0] + ("/" if "/" in k[len(prefix):] else "")
                           for k in entries if k.startswith(prefix)})
        return "\n".join(children).encode() if children else None


def handler(metadata: Metadata) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "EC2ws"
        sys_version = ""

        def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
                   ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            if self.path != "/latest/api/token" or self.headers.get("X-Forwarded-For"):
                self.answer(403)
                return
            try:
                ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= MAX_TTL:
                self.answer(400)
                return
            self.answer(200, metadata.issue(ttl).encode(),
                        {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})

        def do_GET(self) -> None:
            if not metadata.valid(self.headers.get("X-aws-ec2-metadata-token")):
                self.answer(401)
                return
            body = metadata.lookup(self.path.removeprefix("/latest/").split("?")[0])
            self.answer(404) if body is None else self.answer(200, body)

        def log_message(self, format: str, *args: Any) -> None:
            print(f"imds {self.command} {self.path} {args[1] if len(args) > 1 else ''}",
                  flush=True)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), handler(Metadata(args.root)))
    print(f"imds on {args.listen}, serving {args.root}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
