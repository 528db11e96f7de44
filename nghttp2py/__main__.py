"""``python -m nghttp2py MODULE:Handler``: see nghttp2py.cli."""
import sys

from .cli import main

sys.exit(main())
