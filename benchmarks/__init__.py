"""Benchmarks of build reuse: envgraph against the Docker builds users run today (``python -m benchmarks``)."""
