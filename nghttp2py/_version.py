"""The package version, kept in one place.

setuptools reads it from this file without importing the package (pyproject.toml,
``[tool.setuptools.dynamic]``), so it must stay a plain string literal.
"""
__version__ = "0.1.0"
