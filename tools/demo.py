"""`make demo`: the instance's stack on this machine, on real vLLM (CPU).

    python tools/demo.py [--detach] [--vllm-port N] [--proxy-port N] [--http-port N]
    python tools/demo.py --stop

Starts vLLM with SmolLM2-135M-Instruct, the proxy in front of it with a generated API key,
and NGINX with the site config the instance gets (rendered from
modules/ec2/templates/), sends one chat completion through NGINX and prints the answer
and the commands to try next. It then stays in the foreground until Ctrl-C, which stops
everything it started; with --detach it returns and `make demo-stop` stops the services.
What it runs is recorded in .run/demo/ (PIDs, logs, the API key, NGINX's prefix).
`bash tools/prepare.sh demo` sets up vLLM and the model first (once, cached).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx
import openai

from testkit import local_stack
from testkit.nginx import local_site, nginx_binary, start_nginx
from testkit.ports import port_in_use
from testkit.processes import Service, Stack, StackError, stop_process_group, wait_until

DEFAULT_STATE_DIR = local_stack.ROOT / ".run" / "demo"
QUESTION = "In one sentence, what is a large language model?"


class DemoError(RuntimeError):
    """Something the user can fix; the message says what."""


@dataclass(frozen=True)
class Ports:
    vllm: int
    proxy: int
    http: int


class Progress:
    """One status line per long step: rewritten in place on a terminal, every 10 s otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stdout.isatty()
        self.last_print = 0.0
        print(f"  {label} ...", end="" if self.tty else "\n", flush=True)

    def tick(self, elapsed: float) -> None:
        if self.tty:
            print(f"\r  {self.label} ... {elapsed:4.0f} s", end="", flush=True)
        elif elapsed - self.last_print >= 10:
            self.last_print = elapsed
            print(f"  {self.label} ... {elapsed:.0f} s", flush=True)

    def done(self, elapsed: float) -> None:
        prefix = "\r" if self.tty else ""
        print(f"{prefix}  {self.label} ... ready in {elapsed:.0f} s   ", flush=True)


class State:
    """.run/demo/: what the demo started, so `--stop` can end it from another shell."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pids_file = directory / "pids.json"

    def recorded(self) -> dict[str, int]:
        try:
            data = json.loads(self.pids_file.read_text())
        except (OSError, ValueError):
            return {}
        return {str(name): int(pid) for name, pid in data.items()}

    def record(self, name: str, pid: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        pids = self.recorded()
        pids[name] = pid
        self.pids_file.write_text(json.dumps(pids))

    def alive(self) -> dict[str, int]:
        return {name: pid for name, pid in self.recorded().items() if _is_ours(pid, self)}

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pids_file.unlink()


def _is_ours(pid: int, state: State) -> bool:
    """True if `pid` runs and is one of the demo's processes (not a recycled PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    markers = ("vllm.entrypoints.openai.api_server", "inference_proxy", str(state.directory))
    return any(marker in cmdline for marker in markers)


def stop(state: State) -> int:
    alive = state.alive()
    if not alive:
        print("demo: nothing is running")
        state.clear()
        return 0
    for name, pid in reversed(list(alive.items())):
        print(f"demo: stopping {name} (PID {pid})")
        stop_process_group(pid)
    state.clear()
    return 0


def check_ports(ports: Ports) -> None:
    flags = {"vllm": "--vllm-port", "proxy": "--proxy-port", "http": "--http-port"}
    for name, port in vars(ports).items():
        if port_in_use(port):
            env = f"EC2I_DEMO_{name.upper()}_PORT"
            raise DemoError(
                f"port {port} on 127.0.0.1 ({name}) is already in use. Stop what listens there"
                f" (`ss -ltnp 'sport = :{port}'` shows it), or choose another port with"
                f" {flags[name]} N (or {env}=N make demo)."
            )
    if len(set(vars(ports).values())) != 3:
        raise DemoError(f"the three ports must differ: {ports}")


def wait_with_progress(
    service: Service, label: str, ready: Callable[[], bool], timeout: float
) -> None:
    progress = Progress(label)
    try:
        elapsed = wait_until(service, ready, timeout, on_tick=progress.tick)
    except BaseException:
        if progress.tty:
            print()  # keep the last status line above the error
        raise
    progress.done(elapsed)


def ask(base_url: str, api_key: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)
    reply = client.chat.completions.create(
        model=local_stack.CHAT_MODEL_NAME,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=64,
        temperature=0,
    )
    return (reply.choices[0].message.content or "").strip()


def print_usage(endpoint: str, api_key: str, state: State) -> None:
    model = local_stack.CHAT_MODEL_NAME
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32}
    )
    print(
        f"""
Endpoint: {endpoint}/v1   (NGINX -> proxy -> vLLM, all on 127.0.0.1)
API key:  {api_key}   (also in {state.directory / "api-key"})
Model:    {model}

Try it with curl:
  curl -s {endpoint}/v1/chat/completions \\
    -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" \\
    -d '{body}'

Stream it with curl (-N: print chunks as they arrive):
  curl -sN {endpoint}/v1/chat/completions \\
    -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" \\
    -d '{body[:-1]}, "stream": true}}'

Or with the openai client (in .venv already; paste the whole block):
.venv/bin/python - <<'EOF'
from openai import OpenAI

client = OpenAI(base_url="{endpoint}/v1", api_key="{api_key}")
messages = [{{"role": "user", "content": "Hello!"}}]
reply = client.chat.completions.create(model="{model}", messages=messages, max_tokens=32)
print(reply.choices[0].message.content)
EOF

Health: curl -s {endpoint}/health   Readiness: curl -s {endpoint}/ready
Logs:   {state.directory}/*.log, {state.directory / "nginx" / "logs"}
"""
    )


def run(ports: Ports, state: State, detach: bool) -> int:
    if state.alive():
        raise DemoError(
            f"the demo is already running (PIDs {state.alive()}); `make demo-stop` stops it"
        )
    try:
        local_stack.check_prepared()
        nginx_binary()
    except StackError as error:
        raise DemoError(str(error)) from error
    check_ports(ports)

    state.directory.mkdir(parents=True, exist_ok=True)
    state.clear()
    api_key = local_stack.generate_api_key()
    key_file = state.directory / "api-key"
    key_file.write_text(api_key + "\n")
    key_file.chmod(0o600)

    stack = Stack()
    keep_running = False
    try:
        print(f"demo: starting the stack (logs in {state.directory})")
        vllm = stack.add(
            local_stack.start_vllm(
                local_stack.model_dir(local_stack.CHAT_MODEL_NAME),
                local_stack.CHAT_MODEL_NAME,
                ports.vllm,
                state.directory / "vllm.log",
                max_model_len=local_stack.CHAT_MAX_MODEL_LEN,
            )
        )
        state.record("vllm", vllm.pid)
        proxy = stack.add(
            local_stack.start_proxy(
                vllm.url, ports.proxy, state.directory / "proxy.log", api_keys=[api_key]
            )
        )
        state.record("proxy", proxy.pid)
        site = local_site(http_port=ports.http, proxy_port=ports.proxy)
        nginx = stack.add(
            start_nginx(
                state.directory / "nginx", site, f"http://127.0.0.1:{ports.http}"
            )
        )
        state.record("nginx", nginx.pid)

        wait_with_progress(
            vllm,
            f"vLLM: loading {local_stack.CHAT_MODEL_NAME} on the CPU",
            lambda: local_stack.vllm_serves(vllm.url, local_stack.CHAT_MODEL_NAME),
            timeout=600,
        )
        wait_with_progress(
            proxy,
            "proxy: waiting for /ready",
            lambda: local_stack.http_ok(f"{proxy.url}/ready"),
            60,
        )
        wait_with_progress(
            nginx,
            "NGINX: waiting for /ready",
            lambda: local_stack.http_ok(f"{nginx.url}/ready"),
            30,
        )

        print(f"\nQ: {QUESTION}")
        started = time.monotonic()
        answer = ask(f"{nginx.url}/v1", api_key)
        print(f"A: {answer}   ({time.monotonic() - started:.1f} s, through NGINX)")
        print_usage(nginx.url, api_key, state)

        if detach:
            keep_running = True
            print("Running in the background; `make demo-stop` stops it.")
            return 0
        print("Press Ctrl-C to stop the demo.")
        while True:
            for service in stack.services:
                if service.process.poll() is not None:
                    raise DemoError(
                        f"{service.name} exited with status {service.process.returncode};"
                        f" last lines of {service.log_path}:\n{service.log_tail()}"
                    )
            time.sleep(1)
    except (KeyboardInterrupt, SystemExit):
        print("\ndemo: stopping")
        return 130
    except (StackError, openai.OpenAIError, httpx.HTTPError) as error:
        raise DemoError(str(error)) from error
    finally:
        if not keep_running:
            stack.stop()
            state.clear()
            print("demo: stopped everything it started")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _port_default(name: str, default: int) -> int:
    return int(os.environ.get(f"EC2I_DEMO_{name.upper()}_PORT", default))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stop", action="store_true", help="stop a demo started with --detach")
    parser.add_argument("--detach", action="store_true", help="leave the stack running and return")
    parser.add_argument("--vllm-port", type=int, default=_port_default("vllm", 28000))
    parser.add_argument("--proxy-port", type=int, default=_port_default("proxy", 28080))
    parser.add_argument("--http-port", type=int, default=_port_default("http", 28088))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    state = State(args.state_dir.resolve())
    if args.stop:
        return stop(state)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(Ports(args.vllm_port, args.proxy_port, args.http_port), state, args.detach)
    except DemoError as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
