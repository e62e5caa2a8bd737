"""tools/wait_ready.py, the readiness gate Terraform runs: run as Terraform runs it (a
subprocess of python3 without site-packages, so only the standard library is there), against
the real proxy over TCP while its vLLM is not up yet and once it is, a proxy that never gets
ready (the timeout and its message), nothing listening, and a certificate this machine does
not trust. The lifecycle test in tests/modules/root runs it through Terraform's local-exec,
the boot tests against a booted instance."""

from __future__ import annotations

import dataclasses
import datetime
import http.server
import io
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from inference_proxy.config import Settings

from testkit.fake_vllm import FakeVLLM
from testkit.ports import free_port
from testkit.proxy_server import API_KEY, ThreadedProxy
from tools import wait_ready

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "wait_ready.py"
DIAGNOSTICS = {"check_services": "aws ssm start-session --target i-0123 ...",
               "health": "curl -s https://llm.example.com/health"}


def gate(url: str, timeout: float, interval: float = 0.5) -> subprocess.Popen[str]:
    """The tool as Terraform's local-exec starts it; -S: no site-packages, stdlib only."""
    return subprocess.Popen(
        [sys.executable, "-S", str(TOOL), "--timeout", str(timeout), "--interval",
         str(interval), "--url", url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"EC2I_DIAGNOSTICS": json.dumps(DIAGNOSTICS), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def proxy_without_vllm() -> Iterator[tuple[ThreadedProxy, int]]:
    """The real proxy, its upstream a port where vLLM is not listening yet."""
    port = free_port()
    settings = dataclasses.replace(Settings(), upstream_url=f"http://127.0.0.1:{port}",
                                   api_keys=API_KEY)
    proxy = ThreadedProxy(settings).start()
    yield proxy, port
    proxy.stop()


def test_waits_while_vllm_is_not_up_and_returns_once_the_proxy_is_ready(
        proxy_without_vllm: tuple[ThreadedProxy, int]) -> None:
    proxy, vllm_port = proxy_without_vllm
    process = gate(f"{proxy.url}/ready", timeout=60)
    time.sleep(3)
    assert process.poll() is None, process.communicate()[0]
    with FakeVLLM(port=vllm_port):
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert output.startswith(f"waiting for {proxy.url}/ready to answer 200 (at most 1 min 00 s)")
    assert "ready after" in output and "answered HTTP 200" in output


def test_a_timeout_fails_with_the_last_answer_and_the_diagnostic_commands(
        proxy_without_vllm: tuple[ThreadedProxy, int]) -> None:
    proxy, _ = proxy_without_vllm
    started = time.monotonic()
    process = gate(f"{proxy.url}/ready", timeout=3)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert time.monotonic() - started < 30
    assert f"did not answer {proxy.url}/ready with 200 within 3 s (last: HTTP 503" in output
    for name, command in DIAGNOSTICS.items():
        assert f"  {name}: {command}" in output
    assert "run `terraform apply` again" in output and "wait_for_ready_timeout" in output


def test_nothing_listening_is_said_as_such() -> None:
    process = gate(f"http://127.0.0.1:{free_port()}/ready", timeout=2)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "Connection refused" in output


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (tools run on 3.10)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ready" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_untrusted_certificate_is_reported_and_the_model_still_counts_as_ready(
        tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed(tmp_path))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        process = gate(f"https://localhost:{server.server_address[1]}/ready", timeout=20)
        output, _ = process.communicate(timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert process.returncode == 0, output
    assert "certificate not trusted here" in output and "staging" in output
    assert "ready after" in output


def test_a_url_that_is_not_http_is_refused_with_what_to_fix() -> None:
    process = gate("file:///etc/hostname", timeout=5)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "--url must be an http:// or https:// URL, not 'file:///etc/hostname'" in output


def test_progress_is_printed_every_30_seconds_while_waiting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    out = io.StringIO()

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(wait_ready, "ask", lambda url, timeout, verify=True: (False, "HTTP 503"))
    ready, last = wait_ready.wait("http://x/ready", 95, 10, out, clock=lambda: now[0],
                                  sleep=sleep)
    assert (ready, last) == (False, "HTTP 503")
    lines = out.getvalue().splitlines()
    assert lines[0] == "waiting for http://x/ready to answer 200 (at most 1 min 35 s)"
    assert lines[1:] == ["still waiting after 30 s: HTTP 503",
                         "still waiting after 1 min 00 s: HTTP 503",
                         "still waiting after 1 min 30 s: HTTP 503"]
