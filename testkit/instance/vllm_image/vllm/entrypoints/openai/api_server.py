"""`python3 -m vllm.entrypoints.openai.api_server` of the instance harness's vLLM image:
the options the rendered vllm.service passes, parsed by their vLLM names (an unknown option
fails with exit status 2, as vLLM's parser does), then testkit/fake_vllm.py serving
`--model` on `--host`/`--port`.

Like vLLM, the weights live in the Hugging Face cache under $HF_HOME (the data volume): the
first start on an empty cache "downloads" them (writes the hub layout and a marker with the
time), every later start finds them and says so. The boot tests read that line to tell a
cached volume from a fresh one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import signal
import sys
from pathlib import Path

import fake_vllm

MARKER = "ec2i-downloaded-at"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vllm.entrypoints.openai.api_server")
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 (vLLM's default)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-model-len", type=int)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--served-model-name")
    return parser.parse_args(argv)


def weights(model: str) -> Path:
    """The model's snapshot in the Hugging Face hub cache, "downloaded" when missing."""
    hub = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    snapshot = hub / f"models--{model.replace('/', '--')}" / "snapshots" / "fake"
    marker = snapshot / MARKER
    if marker.exists():
        print(f"weights of {model} found in the cache: {snapshot} (downloaded"
              f" {marker.read_text().strip()})", flush=True)
    else:
        print(f"downloading the weights of {model} to {snapshot}", flush=True)
        snapshot.mkdir(parents=True, exist_ok=True)
        (snapshot / "config.json").write_text(json.dumps({"model": model}))
        marker.write_text(datetime.datetime.now(datetime.UTC).isoformat() + "\n")
    return snapshot


def main(argv: list[str]) -> None:
    args = parse(argv)
    weights(args.model)
    fake = fake_vllm.FakeVLLM(host=args.host, port=args.port,
                              model=args.served_model_name or args.model,
                              tokens_per_second=50.0)
    fake.records = fake_vllm._Discard()  # a long-lived server keeps no request records

    async def run() -> None:
        server = await fake.serve()
        # As vLLM does: SIGTERM (docker stop) shuts the server down. As PID 1 of its
        # container nothing would happen otherwise, and every stop would wait for SIGKILL.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server.close)
        print(f"fake vLLM serving {fake.model} on {args.host}:{args.port}", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main(sys.argv[1:])
