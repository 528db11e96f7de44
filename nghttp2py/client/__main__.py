"""``python -m nghttp2py.client URL...``: see nghttp2py.client.cli."""
import sys

from .cli import main

sys.exit(main())
