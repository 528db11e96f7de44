"""``python -m nghttp2py MODULE:APP``: see nghttp2py.cli."""
import sys

from .cli import main

sys.exit(main(prog="python -m nghttp2py"))
