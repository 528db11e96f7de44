"""The request handler base class and the body-generator flags.

``BaseRequestHandler`` is a Cython extension type (the engine reads and writes
its fields in C); subclass it in Python as usual.
"""
from ._nghttp2 import DATA_DEFERRED, DATA_EOF, DATA_OK, BaseRequestHandler

__all__ = ["DATA_DEFERRED", "DATA_EOF", "DATA_OK", "BaseRequestHandler"]
