"""API keys: the key set (a comma list or a JSON document of named keys with limits and
model lists), how a request's key is found, and loading it from PROXY_API_KEYS and
PROXY_API_KEYS_FILE. Keys are held only as SHA-256 digests; no message names a key.

JSON document (every field but `key` optional)::

    {"keys": [{"name": "alice", "key": "sk-...", "max_concurrency": 4,
               "requests_per_minute": 60, "tokens_per_minute": 20000,
               "models": ["Qwen/Qwen2.5-7B-Instruct"]}]}

A comma list (in a file also one per line, `#` starts a comment) names each key
`key-` + the first 8 hex digits of its SHA-256, with no limits and every model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIMIT_FIELDS = ("max_concurrency", "requests_per_minute", "tokens_per_minute")
KEY_FIELDS = frozenset({"name", "key", "models", *LIMIT_FIELDS})
# Names go into metric labels and log lines: short, plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class KeySetError(ValueError):
    """A key set that cannot be used; the message names the entry and field, never a key."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per key; None means no limit of that kind."""

    max_concurrency: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, name) is not None for name in LIMIT_FIELDS)


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    digest: bytes = field(repr=False)
    limits: Limits = Limits()
    models: frozenset[str] | None = None  # None: every model

    def allows_model(self, model: str | None) -> bool:
        return self.models is None or model in self.models


class KeySet:
    """The keys in force. A lookup hashes the presented token and finds its digest in a
    dict: the time taken does not depend on how many keys there are, and what it could
    leak is about digests, from which no key can be recovered."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_digest = {key.digest: key for key in keys}

    def __len__(self) -> int:
        return len(self._by_digest)

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self._by_digest.values())

    def authenticate(self, authorization: bytes | None) -> ApiKey | None:
        token = bearer_token(authorization)
        if token is None:
            return None
        return self._by_digest.get(hashlib.sha256(token).digest())


def bearer_token(authorization: bytes | None) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    token = token.strip()
    return token or None


def key_id(key: str) -> str:
    """The stable, non-secret name of a key given without one."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def parse_keys(text: str, source: str) -> list[ApiKey]:
    """The keys in `text`: a JSON document when it starts with `{` (or `[`, a mistake
    worth naming), else a comma list."""
    if text.lstrip().startswith(("{", "[")):
        return _parse_document(text, source)
    keys = []
    for line in text.splitlines():
        for raw in line.split("#", 1)[0].split(","):
            key = raw.strip()
            if key:
                _check_key(key, f"{source}: a key in the list")
                keys.append(ApiKey(key_id(key), _digest(key)))
    return keys


def load_key_set(inline: str, path: str | None) -> KeySet:
    """Keys from PROXY_API_KEYS (`inline`) and the file at `path`, merged. A key given
    twice the same way (a comma list repeated) counts once; a name or key used by two
    different entries is an error."""
    keys = parse_keys(inline, "PROXY_API_KEYS")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise KeySetError(f"PROXY_API_KEYS_FILE={path!r} cannot be read: {reason}") from exc
        keys += parse_keys(text, f"PROXY_API_KEYS_FILE={path!r}")
    by_digest: dict[bytes, ApiKey] = {}
    by_name: dict[str, ApiKey] = {}
    for key in keys:
        earlier = by_digest.get(key.digest)
        if earlier == key:
            continue
        if earlier is not None:
            raise KeySetError(
                f"keys {earlier.name!r} and {key.name!r} are the same key; give each its own"
            )
        if key.name in by_name:
            raise KeySetError(f"two keys are named {key.name!r}; names must be unique")
        by_digest[key.digest] = by_name[key.name] = key
    return KeySet(by_digest.values())


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _check_key(key: str, where: str) -> None:
    if any(ch.isspace() for ch in key) or not key.isprintable():
        raise KeySetError(f"{where} contains whitespace or control characters")


def _parse_document(text: str, source: str) -> list[ApiKey]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position only: the decoder's message could quote a key.
        raise KeySetError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise KeySetError(f"{source} is not valid JSON (nested too deep)") from None
    if not isinstance(document, dict) or set(document) != {"keys"}:
        raise KeySetError(f'{source}: the JSON document must be {{"keys": [...]}} and nothing else')
    entries = document["keys"]
    if not isinstance(entries, list):
        raise KeySetError(f'{source}: "keys" must be a list of objects')
    return [_parse_entry(entry, f"{source}: keys[{i}]") for i, entry in enumerate(entries)]


def _parse_entry(entry: Any, where: str) -> ApiKey:
    if not isinstance(entry, dict):
        raise KeySetError(f"{where} must be an object")
    unknown = sorted(set(entry) - KEY_FIELDS)
    if unknown:
        raise KeySetError(
            f"{where} has unknown field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(KEY_FIELDS))}"
        )
    key = entry.get("key")
    if not isinstance(key, str) or not key:
        raise KeySetError(f'{where}: "key" is required, a non-empty string')
    _check_key(key, f'{where}: "key"')
    name = entry.get("name")
    if name is None:
        name = key_id(key)
    elif not isinstance(name, str) or not _NAME.fullmatch(name):
        raise KeySetError(
            f'{where}: "name" must be 1-64 of A-Z a-z 0-9 . _ @ - starting with a letter or digit'
        )
    where = f"{where} ({name})"
    limits = {}
    for limit in LIMIT_FIELDS:
        value = entry.get(limit)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise KeySetError(f'{where}: "{limit}" must be a positive integer or absent')
        limits[limit] = value
    models = entry.get("models")
    if models is not None and (
        not isinstance(models, list)
        or not models
        or not all(isinstance(m, str) and m for m in models)
    ):
        raise KeySetError(
            f'{where}: "models" must be a non-empty list of model names, or absent for all'
        )
    return ApiKey(
        name=name,
        digest=_digest(key),
        limits=Limits(**limits),
        models=None if models is None else frozenset(models),
    )
