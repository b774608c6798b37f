"""``python -m backend {serve,worker,mine,evaluate}``: the ``vlmine`` command without installing
the package (see ``backend/commands.py``)."""

import sys

from .commands import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python -m backend"))
