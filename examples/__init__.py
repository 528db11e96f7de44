"""Runnable examples; run them as modules from the repository root, e.g.
python -m examples.hello."""
