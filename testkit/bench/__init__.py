"""Shared parts of the benchmarks in tools/bench/: load generation over raw HTTP/1.1
(`load.py`) and process accounting and percentiles (`stats.py`)."""
