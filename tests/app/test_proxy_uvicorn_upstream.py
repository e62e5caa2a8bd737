"""The proxy in front of an upstream built like vLLM's server (a Starlette app on uvicorn),
so the proxy's own HTTP client meets the framing vLLM really sends: uvicorn's chunked
streams, content-length JSON, keep-alive, and http.disconnect when the proxy hangs up."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from testkit.proxy_server import API_KEY, ThreadedProxy


class UvicornUpstream:
    def __init__(self) -> None:
        self.disconnected = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models),
            ]
        )
        config = uvicorn.Config(app, log_config=None, access_log=False, http="h11", loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "m-8B", "object": "model"}]})

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        if not isinstance(body.get("messages"), list):
            return JSONResponse(
                {
                    "error": {
                        "message": "bad",
                        "type": "BadRequestError",
                        "param": None,
                        "code": 400,
                    }
                },
                status_code=400,
            )
        count = int(body.get("max_tokens", 3))
        if not body.get("stream"):
            text = "".join(f"t{i} " for i in range(count))
            return JSONResponse({"choices": [{"message": {"content": text}}]})

        async def events() -> AsyncIterator[bytes]:
            # Starlette cancels this generator when the client (the proxy) goes away.
            finished = False
            try:
                for i in range(count):
                    event = {"choices": [{"delta": {"content": f"t{i} "}}]}
                    yield b"data: " + json.dumps(event).encode() + b"\n\n"
                    await asyncio.sleep(0.02)
                yield b"data: [DONE]\n\n"
                finished = True
            finally:
                if not finished:
                    self.disconnected.set()

        return StreamingResponse(events(), media_type="text/event-stream")

    def __enter__(self) -> UvicornUpstream:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def upstream() -> Iterator[UvicornUpstream]:
    with UvicornUpstream() as server:
        yield server


def test_streams_json_errors_and_keep_alive_through_a_uvicorn_upstream(
    upstream: UvicornUpstream, start_proxy: Callable[..., ThreadedProxy]
) -> None:
    proxy = start_proxy(f"http://127.0.0.1:{upstream.port}")
    with proxy.client() as client:
        for _ in range(3):
            models = client.get("/v1/models")
            assert models.status_code == 200 and models.json()["data"][0]["id"] == "m-8B"
            chat = client.post("/v1/chat/completions", json={"messages": [], "max_tokens": 4})
            assert chat.json()["choices"][0]["message"]["content"] == "t0 t1 t2 t3 "
            bad = client.post("/v1/chat/completions", json={"messages": "x"})
            assert bad.status_code == 400 and bad.json()["error"]["type"] == "BadRequestError"
            with client.stream(
                "POST",
                "/v1/chat/completions",
                json={"messages": [], "max_tokens": 5, "stream": True},
            ) as stream:
                reads = [d for d in stream.iter_raw() if b"content" in d]
            assert [json.loads(d[6:])["choices"][0]["delta"]["content"] for d in reads] == [
                f"t{i} " for i in range(5)
            ]


def test_client_disconnect_reaches_a_uvicorn_upstream(
    upstream: UvicornUpstream, start_proxy: Callable[..., ThreadedProxy]
) -> None:
    proxy = start_proxy(f"http://127.0.0.1:{upstream.port}")
    body = json.dumps({"messages": [], "max_tokens": 500, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        received = b""
        while received.count(b"data: ") < 3:
            received += sock.recv(65536)
    # The proxy closed its upstream connection: the upstream app sees http.disconnect
    # and stops generating, as vLLM aborts the request.
    assert upstream.disconnected.wait(3)
