"""Benchmark servers: the same tiny app implemented on every peer."""
