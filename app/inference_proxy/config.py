"""Settings from the environment (the table in docs/API_REFERENCE.md). Invalid values fail
at startup with a message naming the variable, never at the first request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from .keys import KeySet, KeySetError, load_key_set

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"", "0", "false", "no", "off"})


class ConfigError(ValueError):
    """An environment variable has a value the proxy cannot run with."""


@dataclass(frozen=True, slots=True)
class Settings:
    upstream_url: str = "http://127.0.0.1:8000"
    host: str = "0.0.0.0"  # noqa: S104 - the container publishes this port
    port: int = 8080
    # repr=False: keys must never reach a log line, not even through a debug print.
    api_keys: str = field(default="", repr=False)  # a comma list or a JSON key set
    api_keys_file: str | None = None
    auth_disabled: bool = False
    default_timeout: float = 90.0
    max_timeout: float = 600.0
    max_concurrency: int = 256
    max_body_bytes: int = 10 * 1024 * 1024
    log_format: Literal["json", "text"] = "json"
    shutdown_grace: float = 30.0
    retry_window: float = 10.0
    max_header_bytes: int = 32 * 1024
    keys_reload_seconds: float = 5.0
    large_body_bytes: int = 1024 * 1024
    max_large_bodies: int = 4

    @property
    def auth_enabled(self) -> bool:
        return not self.auth_disabled

    def load_keys(self) -> KeySet | None:
        """The key set, or None when auth is off. Fails closed: no keys with auth on is an
        error, never an open endpoint (a key list of "," holds no key)."""
        try:
            keys = load_key_set(self.api_keys, self.api_keys_file)
        except KeySetError as exc:
            raise ConfigError(str(exc)) from None
        if self.auth_disabled:
            if len(keys):
                raise ConfigError(
                    "PROXY_AUTH_DISABLED is on but API keys are configured; unset one of them"
                )
            return None
        if not len(keys):
            raise ConfigError(
                "no API key: set PROXY_API_KEYS or PROXY_API_KEYS_FILE (a comma list or a "
                'JSON key set), or PROXY_AUTH_DISABLED=true to serve without keys (local only)'
            )
        return keys

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        upstream = env.get("PROXY_UPSTREAM_URL", defaults.upstream_url).rstrip("/")
        parts = urlsplit(upstream)
        # Plain HTTP only: vLLM listens on loopback or inside the VPC (pool.py).
        if parts.scheme != "http" or not parts.netloc:
            raise ConfigError(
                f"PROXY_UPSTREAM_URL={upstream!r} is not an http:// URL; "
                "use e.g. http://127.0.0.1:8000"
            )
        log_format = env.get("PROXY_LOG_FORMAT", defaults.log_format).strip().lower()
        if log_format not in {"json", "text"}:
            raise ConfigError(f"PROXY_LOG_FORMAT={log_format!r}: use 'json' or 'text'")
        settings = cls(
            upstream_url=upstream,
            host=env.get("PROXY_HOST", defaults.host),
            port=_int(env, "PROXY_PORT", defaults.port, low=0, high=65535),
            api_keys=env.get("PROXY_API_KEYS", ""),
            api_keys_file=env.get("PROXY_API_KEYS_FILE") or None,
            auth_disabled=_bool(env, "PROXY_AUTH_DISABLED"),
            default_timeout=_float(env, "PROXY_DEFAULT_TIMEOUT", defaults.default_timeout),
            max_timeout=_float(env, "PROXY_MAX_TIMEOUT", defaults.max_timeout),
            max_concurrency=_int(env, "PROXY_MAX_CONCURRENCY", defaults.max_concurrency, low=1),
            max_body_bytes=_int(env, "PROXY_MAX_BODY_BYTES", defaults.max_body_bytes, low=1),
            log_format="json" if log_format == "json" else "text",
            shutdown_grace=_float(env, "PROXY_SHUTDOWN_GRACE", defaults.shutdown_grace, low=0.0),
            retry_window=_float(env, "PROXY_RETRY_WINDOW", defaults.retry_window, low=0.0),
            max_header_bytes=_int(
                env, "PROXY_MAX_HEADER_BYTES", defaults.max_header_bytes, low=1024
            ),
            keys_reload_seconds=_float(
                env, "PROXY_KEYS_RELOAD_SECONDS", defaults.keys_reload_seconds, low=0.1
            ),
            large_body_bytes=_int(
                env, "PROXY_LARGE_BODY_BYTES", defaults.large_body_bytes, low=1024
            ),
            max_large_bodies=_int(
                env, "PROXY_MAX_LARGE_BODIES", defaults.max_large_bodies, low=1
            ),
        )
        if settings.max_timeout < settings.default_timeout:
            raise ConfigError(
                f"PROXY_MAX_TIMEOUT ({settings.max_timeout}) is below PROXY_DEFAULT_TIMEOUT "
                f"({settings.default_timeout}); the ceiling must be at least the default"
            )
        settings.load_keys()  # refuse a bad or missing key set now, not at the first request
        return settings


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise ConfigError(f"{name}={raw!r}: use true or false")


def _int(
    env: Mapping[str, str], name: str, default: int, *, low: int, high: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{name}={value} must be {bounds}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, low: float = 0.001) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not value >= low or value == float("inf"):
        raise ConfigError(f"{name}={raw} must be a finite number >= {low}")
    return value
