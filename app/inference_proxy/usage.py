"""Token usage read from vLLM's responses as they are relayed, without parsing them:
`UsageScanner` keeps the bytes after the last `"usage":` key it saw (a JSON key, since
inside a JSON string the quotes would be escaped) and reads the counts from them at the
end. `InjectedUsageFilter` removes, from a stream, the usage event the proxy asked vLLM
for when the client did not, so the client gets exactly the stream it asked for."""

from __future__ import annotations

import re

USAGE_KEY = b'"usage":'
_KEEP = len(USAGE_KEY) - 1  # bytes of a chunk's end that may hold the start of the key
_WINDOW = 512  # a usage object (with its details) fits
_PROMPT = re.compile(rb'"(?:prompt_tokens|input_tokens)":\s*(\d+)')
_COMPLETION = re.compile(rb'"(?:completion_tokens|output_tokens)":\s*(\d+)')


class UsageScanner:
    def __init__(self) -> None:
        self._window: bytes | None = None
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        if self._window is not None and len(self._window) < _WINDOW:
            self._window += chunk[: _WINDOW - len(self._window)]
        at = chunk.rfind(USAGE_KEY)
        if at >= 0:
            self._window = chunk[at : at + _WINDOW]
        elif self._tail:
            # The key split across two chunks.
            joined = self._tail + chunk[:_WINDOW]
            at = joined.find(USAGE_KEY)
            if at >= 0:
                self._window = joined[at:]
        self._tail = chunk[-_KEEP:]

    def counts(self) -> tuple[int | None, int | None]:
        """(prompt tokens, completion tokens) of the last usage seen, None if not seen."""
        if self._window is None:
            return None, None
        prompt = _PROMPT.search(self._window)
        completion = _COMPLETION.search(self._window)
        return (
            int(prompt.group(1)) if prompt else None,
            int(completion.group(1)) if completion else None,
        )


class InjectedUsageFilter:
    """Gives the client the stream it asked for when the proxy asked vLLM for usage: drops
    the usage event (`"choices":[]` and a usage object) after handing it to the scanner,
    and puts back where vLLM would have put it the `system_fingerprint` that vLLM moves
    from the chunk carrying `finish_reason` to the usage event when usage is asked for.
    So the chunk that finishes the stream is held until the usage event comes (vLLM sends
    them back to back); everything before it passes untouched, as the same bytes object.
    An event split across two chunks is held until its end arrives (only then is it whole).
    Used for requests with one choice (n = 1) only."""

    def __init__(self, scanner: UsageScanner) -> None:
        self.scanner = scanner
        self._partial = b""
        self._held: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        if self._partial:
            chunk = self._partial + chunk
            self._partial = b""
        if (
            not self._held
            and chunk.endswith(b"\n\n")
            and USAGE_KEY not in chunk
            and _FINISHED not in chunk
        ):
            return chunk
        *events, self._partial = chunk.split(b"\n\n")
        out = []
        for event in events:
            if event.startswith(b"data: {") and USAGE_KEY in event and b'"choices":[]' in event:
                self.scanner.feed(event)
                fingerprint = _FINGERPRINT.search(event)
                out += [_stamp(held, fingerprint) for held in self._held]
                self._held = []
            elif self._held or _FINISHED in event:
                self._held.append(event + b"\n\n")
            else:
                out.append(event + b"\n\n")
        return b"".join(out)

    def flush(self) -> bytes:
        """What is left at the end of the stream (held or unfinished events), as it came."""
        rest = b"".join(self._held) + self._partial
        self._held, self._partial = [], b""
        return rest


_FINISHED = b'"finish_reason":"'
_FINGERPRINT = re.compile(rb'"system_fingerprint":"(?:[^"\\]|\\.)*"')


def _stamp(event: bytes, fingerprint: re.Match[bytes] | None) -> bytes:
    """`event` with the fingerprint as its last member, as vLLM serializes a chunk that
    finishes a stream without usage."""
    if fingerprint is None or _FINISHED not in event or b'"system_fingerprint"' in event:
        return event
    body = event.rstrip(b"\n")
    return body[:-1] + b"," + fingerprint.group(0) + b"}\n\n"
