"""``python -m backend.worker``: the RQ worker command (see ``backend.jobs.worker``).

The command keeps its name: docker-compose files and service units start it.
"""

import sys

from .jobs.worker import main

if __name__ == "__main__":
    sys.exit(main())
