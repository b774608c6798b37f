"""Every error the backend raises on purpose, under one root, each saying whether a retry can help.

A job that fails is retried (``JOB_RETRIES`` times, with back-off) only when its error is
``retryable``: a passing outage (Label Studio restarting, an image host timing out) heals
by waiting, a bad setting or a label config that names nothing to mine does not. The retry
policy of both job runners is :func:`retryable` alone, read from these classes.

Several classes also derive from the builtin their callers caught before this module
existed (``ValueError``, ``RuntimeError``), so an ``except ValueError`` written against
them keeps working.
"""

from __future__ import annotations


class VLMineError(Exception):
    """The root: a problem the backend recognised and can describe in one readable line."""

    #: whether running the same job again later may succeed
    retryable: bool = True


class SettingsError(VLMineError, ValueError):
    """A setting has a value the backend cannot use."""

    retryable = False


class LabelConfigError(VLMineError, ValueError):
    """The label config does not parse, or has nothing the backend can mine."""

    retryable = False


class NoConnection(VLMineError, RuntimeError):
    """A project-level problem the admin must fix: no Label Studio connection to write to."""

    retryable = False


class LabelStudioError(VLMineError):
    """An HTTP or transport error talking to Label Studio. Never contains the API key.

    Retryable when waiting can heal it: no answer at all (Label Studio restarting, a
    timeout under a big import), 408, 425, 429 or a 5xx. Any other 4xx is an answer that
    repeats on every try (a revoked token's 401, a 403, a deleted project's 404), so the
    job fails at once with the message instead of being retried ``JOB_RETRIES`` times.
    """

    #: the statuses below 500 that a later try may not meet again
    TRANSIENT_STATUSES = frozenset({408, 425, 429})

    def __init__(self, message: str, *, method: str = "", path: str = "", status: int | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        #: ``retryable`` given: the caller knows better than the status (a bad URL has no status
        #: and never heals; a signed storage URL's 403 heals with the next signature)
        self.retryable = (retryable if retryable is not None
                          else status is None or status >= 500 or status in self.TRANSIENT_STATUSES)


class ImageError(VLMineError):
    """An image could not be fetched or decoded; ``reason`` says why in a few words.

    It fails its own task only (the batch goes on); a sync later tries the task again.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HTTPError(VLMineError):
    """A request the server refuses: ``status`` (a 4xx) and a message for the JSON answer."""

    retryable = False

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UsageError(VLMineError):
    """An offline command got bad arguments or an unusable source: exit code 2, the message, no traceback."""

    retryable = False


class SourceError(VLMineError):
    """An offline command's source is fine but cannot be read right now (an unreachable S3...): exit code 1."""


#: builtins a job raises on a malformed payload or a programming slip: the same payload
#: fails the same way on every try, so these are not retried either
_PERMANENT_BUILTINS = (ValueError, KeyError, TypeError)


def retryable(exc: BaseException) -> bool:
    """The retry policy of both job runners: may running the failed job again succeed?"""
    if isinstance(exc, VLMineError):
        return exc.retryable
    return not isinstance(exc, _PERMANENT_BUILTINS)
