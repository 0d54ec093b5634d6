"""Benchmarks and the fleet simulator (see docs/performance.md)."""
