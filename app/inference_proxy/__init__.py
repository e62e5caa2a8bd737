"""OpenAI-compatible gateway in front of vLLM: API keys, request-aware timeouts, true
streaming and abort on client disconnect. Run with `python -m inference_proxy`."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
