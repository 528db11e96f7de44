"""nghttp2py benchmark harness (see BENCHMARKS.md)."""
