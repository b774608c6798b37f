"""What happens to a project, independent of HTTP and queues: the :class:`Engine`.

The server, the job runners, the report and the offline commands call the engine's
methods; none of them reaches past it into the state it keeps.
"""

from .engine import Engine
from .scores_writer import PROVISIONAL
from .tasks import data_digest

__all__ = ["Engine", "PROVISIONAL", "data_digest"]
