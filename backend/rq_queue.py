"""Where RQ finds the job function: ``backend.rq_queue.perform``.

Every job in Redis names its function by this dotted path, and jobs outlive releases
(queued, scheduled, or failed and waiting for a retry). The function lives in
``backend.jobs.rq``; this name stays so that the jobs already queued, and the jobs queued
by workers of an earlier release, keep running.
"""

from .jobs.rq import perform

__all__ = ["perform"]
