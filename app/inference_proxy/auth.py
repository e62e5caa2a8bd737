"""API keys: `Authorization: Bearer <key>`, compared in constant time against every key."""

from __future__ import annotations

import hashlib
import hmac


class KeyChecker:
    """Holds only SHA-256 digests of the keys, so every comparison has the same length and
    a timing difference can leak neither a key's prefix nor its length; all keys are
    compared on every call, so the time does not tell which key matched either."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._digests = tuple(hashlib.sha256(k.encode()).digest() for k in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, authorization: bytes | None) -> bool:
        if not self._digests:
            return True
        token = bearer_token(authorization)
        if token is None:
            return False
        presented = hashlib.sha256(token).digest()
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(presented, digest)
        return matched


def bearer_token(authorization: bytes | None) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    token = token.strip()
    return token or None
