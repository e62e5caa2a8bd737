"""`python -m inference_proxy`: settings from the environment, one uvicorn process.

SIGTERM (uvicorn's handler) stops accepting connections, closes idle keep-alive ones and
lets in-flight requests and streams finish for PROXY_SHUTDOWN_GRACE seconds."""

from __future__ import annotations

import logging
import sys

import uvicorn

from .accesslog import configure_logging
from .app import create_app
from .config import ConfigError, Settings


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"inference_proxy: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    log = logging.getLogger("inference_proxy")
    keys = settings.load_keys()
    if keys is not None:
        named = sum(1 for key in keys if key.limits or key.models is not None)
        log.info("API key auth on: %d key(s) loaded, %d with limits or models", len(keys), named)
    else:
        log.warning(
            "API KEY AUTH IS OFF (PROXY_AUTH_DISABLED): anyone who reaches port %d can use "
            "the model",
            settings.port,
        )
    log.info(
        "forwarding to %s, listening on %s:%d", settings.upstream_url, settings.host, settings.port
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace),
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
