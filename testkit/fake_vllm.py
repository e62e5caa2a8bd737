"""A fake vLLM OpenAI server for tests and benchmarks: raw asyncio HTTP/1.1, so that it
controls exactly what goes on the wire and sees exactly when its client goes away.

* Streams are written one token per `transport.write` (one TCP send per token) at a
  controlled rate, vLLM-shaped: role-less delta chunks, a final chunk with
  `finish_reason`, a usage chunk when `stream_options.include_usage` is set, `[DONE]`.
* Every request is recorded (`FakeVLLM.records`): headers, body, tokens sent, and
  whether and when the client disconnected before the response ended.
* Every answer carries the identity of the request it answers: the `id` of a completion,
  of each stream chunk and of an embedding list is `cmpl-<X-Request-ID>` (the proxy sends
  one with every request; without it, `cmpl-fake-<n>` by arrival). A proxy that handed
  one client another client's response fails the tests that check it.
* Per request, a `"fake"` object in the JSON body steers it (the proxy forwards bodies
  untouched): `{"ttft": s, "tps": n, "die_after": n, "status": code, "delay": s}`;
  `die_after` aborts the TCP connection after n tokens (upstream dying mid-stream),
  `status` answers a vLLM-shaped error. The token count is max_tokens (default 16).
* Bodies above 1 MiB are answered with vLLM's 400 for a prompt longer than the model's
  context, without being parsed (vLLM would refuse that many tokens for this model), so
  that large-body tests do not stall the fake's own event loop.
* `close_after_response=True` closes every keep-alive connection right after a response
  without saying so (no `Connection: close`), as llama.cpp's server does;
  `drop_reused_connections=True` is the same server losing the race: it closes a
  connection when a second request arrives on it, without answering (`dropped` counts).

In tests::

    with FakeVLLM(tokens_per_second=100) as fake:
        ...  # fake.url, fake.records, fake.wait_for(lambda: ...)

From a shell (benchmarks, other test packages)::

    python -m testkit.fake_vllm --port 8000 --tokens-per-second 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MODEL = "fake-org/Fake-Model-8B-Instruct"
DEFAULT_TOKENS = 16
MAX_HEADER_BYTES = 64 * 1024
LARGE_BODY_BYTES = 1024 * 1024
FINGERPRINT = "fake-vllm-0.0.0"
_ID = "\x00ID\x00"  # where a response's id goes in a precomputed event


@dataclass
class RequestRecord:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    finished_at: float | None = None
    tokens_sent: int = 0
    client_gone: bool = False
    client_gone_at: float | None = None
    number: int = 0

    @property
    def response_id(self) -> str:
        """The `id` of the answer: `cmpl-` + the request's X-Request-ID."""
        given = self.headers.get("x-request-id")
        return "cmpl-" + (given if given else f"fake-{self.number}")

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk carrying one SSE event."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _error(status: int, message: str, type_: str, param: str | None = None) -> tuple[int, bytes]:
    body = {"error": {"message": message, "type": type_, "param": param, "code": status}}
    return status, json.dumps(body).encode()


class _Connection(asyncio.Protocol):
    def __init__(self, server: FakeVLLM, number: int) -> None:
        self.server = server
        self.number = number
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.record: RequestRecord | None = None
        self.closed = False
        self.served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.server.open_connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_HEADER_BYTES + 64 * 1024 * 1024:
            self._abort()
            return
        self._maybe_start()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.open_connections.discard(self)
        record = self.record
        if record is not None and record.finished_at is None:
            record.client_gone = True
            record.client_gone_at = time.monotonic()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _maybe_start(self) -> None:
        if self.task is not None and not self.task.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            self._abort()
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        if self.served and self.server.drop_reused_connections:
            self.server.dropped += 1
            self._abort()
            return
        self.served += 1
        path = target.split("?", 1)[0]
        record = RequestRecord(method, path, headers, body, self.number)
        self.server.requests_seen += 1
        record.number = self.server.requests_seen
        self.record = record
        self.server.records.append(record)
        self.task = asyncio.ensure_future(self._handle(record))

    async def _handle(self, record: RequestRecord) -> None:
        try:
            await self.server.respond(self, record)
        except asyncio.CancelledError:
            return
        record.finished_at = time.monotonic()
        keep_alive = record.headers.get("connection", "").lower() != "close"
        if self.server.close_after_response or not keep_alive:
            if self.transport is not None:
                self.transport.close()
            return
        self.record = None
        if self.buffer:
            asyncio.get_running_loop().call_soon(self._maybe_start)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def write_response(
        self, status: int, body: bytes, content_type: str = "application/json"
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\n"
            f"content-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
            f"server: fake-vllm\r\n\r\n"
        )
        self.write(head.encode() + body)


class FakeVLLM:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = MODEL,
        tokens_per_second: float = 200.0,
        ttft: float = 0.0,
        close_after_response: bool = False,
        drop_reused_connections: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.model = model
        self.tokens_per_second = tokens_per_second
        self.ttft = ttft
        self.close_after_response = close_after_response
        self.drop_reused_connections = drop_reused_connections
        self.dropped = 0
        self.requests_seen = 0
        self.open_connections: set[_Connection] = set()
        self.records: list[RequestRecord] = []
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._stream_cache: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------
    async def serve(self) -> asyncio.Server:
        """Start listening on the running loop (for use inside an event loop)."""

        def factory() -> _Connection:
            self.connections += 1
            return _Connection(self, self.connections)

        self._server = await asyncio.get_running_loop().create_server(
            factory, self.host, self.port, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self._server

    def start(self) -> FakeVLLM:
        """Serve from a background thread with its own event loop."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-vllm", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake vLLM did not start")
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        def shutdown() -> None:
            server.close()
            for conn in list(self.open_connections):
                conn._abort()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_later(0.05, loop.stop)

        loop.call_soon_threadsafe(shutdown)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> FakeVLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Poll `predicate()` until true or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())

    def find(self, request_id: str) -> RequestRecord | None:
        for record in self.records:
            if record.headers.get("x-request-id") == request_id:
                return record
        return None

    # -- behaviour ---------------------------------------------------------------------
    async def respond(self, conn: _Connection, record: RequestRecord) -> None:
        route = (record.method, record.path)
        if route == ("GET", "/health"):
            conn.write_response(200, b"", "text/plain")
            return
        if route == ("GET", "/v1/models"):
            created = int(time.time())
            data = [
                {
                    "id": self.model,
                    "object": "model",
                    "created": created,
                    "owned_by": "vllm",
                    "root": self.model,
                    "parent": None,
                    "max_model_len": 2048,
                }
            ]
            conn.write_response(200, json.dumps({"object": "list", "data": data}).encode())
            return
        known = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize"}
        if record.path not in known:
            conn.write_response(404, b'{"detail":"Not Found"}')
            return
        if record.method != "POST":
            conn.write_response(405, b'{"detail":"Method Not Allowed"}')
            return
        if len(record.body) > LARGE_BODY_BYTES:
            conn.write_response(
                *_error(
                    400,
                    "This model's maximum context length is 2048 tokens. However, you "
                    f"requested about {len(record.body) // 4} tokens in the messages.",
                    "BadRequestError",
                )
            )
            return
        try:
            body = json.loads(record.body)
        except (ValueError, RecursionError) as exc:
            conn.write_response(*_error(400, f"JSON decode error: {exc}", "BadRequestError"))
            return
        problem = self._validate(record.path, body)
        if problem is not None:
            conn.write_response(*problem)
            return
        fake = body.get("fake") if isinstance(body.get("fake"), dict) else {}
        if isinstance(fake.get("status"), int):
            conn.write_response(*_error(fake["status"], "fake failure", "InternalServerError"))
            return
        if record.path == "/tokenize":
            count = len(json.dumps(body)) // 4
            conn.write_response(
                200,
                json.dumps(
                    {"count": count, "max_model_len": 2048, "tokens": list(range(count))}
                ).encode(),
            )
            return
        if record.path == "/v1/embeddings":
            await asyncio.sleep(float(fake.get("delay", 0)))
            data = [{"object": "embedding", "index": 0, "embedding": [0.25] * 8}]
            usage = {"prompt_tokens": 3, "total_tokens": 3}
            answer = {"id": record.response_id, "object": "list", "data": data}
            conn.write_response(
                200, json.dumps({**answer, "model": self.model, "usage": usage}).encode()
            )
            return
        await self._generate(conn, record, body, fake)

    def _validate(self, path: str, body: Any) -> tuple[int, bytes] | None:
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "BadRequestError")
        model = body.get("model", self.model)
        if model != self.model:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        if path == "/v1/chat/completions" and not isinstance(body.get("messages"), list):
            return _error(400, "messages: field required, a list", "BadRequestError", "messages")
        if path == "/v1/completions" and not isinstance(body.get("prompt"), str | list):
            return _error(400, "prompt: field required", "BadRequestError", "prompt")
        tokens = body.get("max_tokens", body.get("max_completion_tokens", DEFAULT_TOKENS))
        if tokens is not None and (
            not isinstance(tokens, int) or isinstance(tokens, bool) or not 0 < tokens <= 100_000
        ):
            return _error(
                400, "max_tokens must be a positive integer", "BadRequestError", "max_tokens"
            )
        if not isinstance(body.get("stream", False), bool):
            return _error(400, "stream must be a boolean", "BadRequestError", "stream")
        return None

    def stream_chunks(self, path: str, tokens: int, response_id: str) -> list[bytes]:
        """The token events of a stream (each an HTTP chunk), precomputed once per (route,
        length) with a hole for the response's id."""
        rid = json.dumps(response_id)[1:-1].encode()
        return [_chunk(prefix + rid + suffix) for prefix, suffix in self._templates(path, tokens)]

    def _templates(self, path: str, tokens: int) -> list[tuple[bytes, bytes]]:
        key = (path, tokens)
        if key not in self._stream_cache:
            chat = path == "/v1/chat/completions"
            events = []
            for i in range(tokens):
                if chat:
                    choice = {
                        "index": 0,
                        "delta": {"content": f"t{i} "},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                else:
                    choice = {"index": 0, "text": f"t{i} ", "logprobs": None, "finish_reason": None}
                event = _sse(
                    {
                        "id": _ID,
                        "object": "chat.completion.chunk" if chat else "text_completion",
                        "created": 1700000000,
                        "model": self.model,
                        "choices": [choice],
                    }
                )
                prefix, _, suffix = event.partition(json.dumps(_ID)[1:-1].encode())
                events.append((prefix, suffix))
            self._stream_cache[key] = events
        return self._stream_cache[key]

    async def _generate(
        self, conn: _Connection, record: RequestRecord, body: dict[str, Any], fake: dict[str, Any]
    ) -> None:
        chat = record.path == "/v1/chat/completions"
        tokens = body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_TOKENS
        tps = float(fake.get("tps", self.tokens_per_second))
        ttft = float(fake.get("ttft", self.ttft))
        die_after = fake.get("die_after")
        usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": tokens + 5}
        if not body.get("stream"):
            await asyncio.sleep(ttft + tokens / tps)
            text = "".join(f"t{i} " for i in range(tokens))
            choice = (
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "length",
                }
                if chat
                else {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
            )
            record.tokens_sent = tokens
            conn.write_response(
                200,
                json.dumps(
                    {
                        "id": record.response_id,
                        "object": "chat.completion" if chat else "text_completion",
                        "created": int(time.time()),
                        "model": self.model,
                        "choices": [choice],
                        "usage": usage,
                    }
                ).encode(),
            )
            return
        conn.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\nserver: fake-vllm\r\n\r\n"
        )
        events = self.stream_chunks(record.path, tokens, record.response_id)
        # Paced relative to the previous token (not to a schedule): a late token is not
        # followed by a burst of catch-up writes that a reader could see merged.
        if ttft > 0:
            await asyncio.sleep(ttft)
        for i, event in enumerate(events):
            if i:
                await asyncio.sleep(1 / tps)
            if die_after is not None and i >= die_after:
                conn._abort()
                record.finished_at = time.monotonic()
                raise asyncio.CancelledError
            conn.write(event)
            record.tokens_sent += 1
            if record.first_token_at is None:
                record.first_token_at = time.monotonic()
        last = (
            {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
            if chat
            else {"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}
        )
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        terminal: dict[str, Any] = {
            "id": record.response_id,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": 1700000000,
            "model": self.model,
            "choices": [last],
        }
        # As vLLM does: the fingerprint goes on the last message, which is the usage
        # event when usage was asked for, else the chunk that carries finish_reason.
        if not include_usage:
            terminal["system_fingerprint"] = FINGERPRINT
        tail = _chunk(_sse(terminal))
        if include_usage:
            tail += _chunk(
                _sse(
                    {
                        "id": record.response_id,
                        "object": "chat.completion.chunk" if chat else "text_completion",
                        "created": 1700000000,
                        "model": self.model,
                        "choices": [],
                        "usage": usage,
                        "system_fingerprint": FINGERPRINT,
                    }
                )
            )
        conn.write(tail + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--tokens-per-second", type=float, default=30.0)
    parser.add_argument("--ttft", type=float, default=0.0)
    parser.add_argument("--close-after-response", action="store_true")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop if installed")
    args = parser.parse_args()
    fake = FakeVLLM(
        host=args.host,
        port=args.port,
        model=args.model,
        tokens_per_second=args.tokens_per_second,
        ttft=args.ttft,
        close_after_response=args.close_after_response,
    )
    # Records would grow without bound in a long benchmark; keep none.
    fake.records = _Discard()

    async def run() -> None:
        server = await fake.serve()
        print(f"fake vLLM on {fake.url}", flush=True)
        await server.serve_forever()

    if args.uvloop:
        try:
            import uvloop

            uvloop.run(run())
            return
        except ImportError:
            pass
    asyncio.run(run())


class _Discard(list[RequestRecord]):
    def append(self, item: RequestRecord) -> None:
        pass


if __name__ == "__main__":
    main()
