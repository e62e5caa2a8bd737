"""Wait until the endpoint answers /ready: the readiness gate of `terraform apply`.

    python3 tools/wait_ready.py --timeout 2400 --url https://llm.example.com/ready

Asks the URL every --interval seconds (each try at most 10 s) and prints a line at least
every 30 s: how long it has waited and what answered last. Exits 0 once /ready answers
200 (the model is served). On timeout it prints the diagnostic commands (the JSON object in
EC2I_DIAGNOSTICS: the root module's `diagnostic_commands`), says what to do, and exits 1.

A certificate this machine does not trust (Let's Encrypt's staging server, see
acme_server) is reported, and /ready is then asked without verification: the gate is about
the model being served, the certificate is the user's choice.

Terraform runs it (root main.tf, `terraform_data.wait_for_ready`) with the python3 of the
user's machine: standard library only, nothing of this project is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TextIO

TRY_SECONDS = 10.0
PROGRESS_SECONDS = 30.0


def ask(url: str, timeout: float, verify: bool = True) -> tuple[bool, str]:
    """(ready, what answered): ready only on 200."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        # main() lets only http(s) URLs through.
        with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:  # noqa: S310
            return answer.status == 200, f"HTTP {answer.status}"
    except urllib.error.HTTPError as error:
        body = error.read(200).decode(errors="replace").strip()
        return False, f"HTTP {error.code}{': ' + body if body else ''}"
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            return False, f"certificate not trusted here ({reason.verify_message})"
        return False, str(reason)
    except (TimeoutError, OSError) as error:
        return False, str(error) or type(error).__name__


def format_seconds(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def diagnostics(environ: dict[str, str]) -> list[str]:
    try:
        commands = json.loads(environ.get("EC2I_DIAGNOSTICS", "{}"))
    except ValueError:
        return []
    return [f"  {name}: {command}" for name, command in commands.items()]


def wait(url: str, timeout: float, interval: float, out: TextIO,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> tuple[bool, str]:
    """Ask until ready or timeout; (ready, what answered last)."""
    start = clock()
    last, reported = "no answer yet", start
    untrusted_said = False
    print(f"waiting for {url} to answer 200 (at most {format_seconds(timeout)})", file=out,
          flush=True)
    while True:
        remaining = timeout - (clock() - start)
        ready, last = ask(url, max(1.0, min(TRY_SECONDS, remaining)))
        if not ready and last.startswith("certificate not trusted"):
            if not untrusted_said:
                print(f"{url}: {last}; asking without verifying it (Let's Encrypt's "
                      "staging server? see acme_server)", file=out, flush=True)
                untrusted_said = True
            ready, answer = ask(url, max(1.0, min(TRY_SECONDS, remaining)), verify=False)
            last = f"{answer} (certificate not trusted here)"
        elapsed = clock() - start
        if ready:
            print(f"ready after {format_seconds(elapsed)}: {url} answered {last}", file=out,
                  flush=True)
            return True, last
        if elapsed >= timeout:
            return False, last
        if clock() - reported >= PROGRESS_SECONDS:
            print(f"still waiting after {format_seconds(elapsed)}: {last}", file=out,
                  flush=True)
            reported = clock()
        sleep(max(0.0, min(interval, timeout - (clock() - start))))


def main(argv: list[str] | None = None, out: TextIO = sys.stdout,
         environ: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the endpoint's /ready URL")
    parser.add_argument("--timeout", type=float, required=True, help="seconds to wait at most")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between tries")
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://", "https://")):
        parser.error(f"--url must be an http:// or https:// URL, not {args.url!r}")
    if args.timeout <= 0 or args.interval <= 0:
        parser.error("--timeout and --interval must be positive numbers of seconds")
    environ = dict(os.environ if environ is None else environ)
    ready, last = wait(args.url, args.timeout, args.interval, out)
    if ready:
        return 0
    print(f"\nThe endpoint did not answer {args.url} with 200 within "
          f"{format_seconds(args.timeout)} (last: {last}).\n"
          "A first boot pulls the vLLM image and downloads the model, which can take longer "
          "than that for a large model. Look at the instance:", file=out)
    for line in diagnostics(environ):
        print(line, file=out)
    print("Then run `terraform apply` again to wait once more (the gate runs again because it "
          "failed), raise wait_for_ready_timeout, or set wait_for_ready = false.", file=out,
          flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
