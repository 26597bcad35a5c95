"""Benchmarks: `python -m bench NAME [--json]`; each reports the raw rate beside its own."""
