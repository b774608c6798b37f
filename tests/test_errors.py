"""One root for the backend's errors, and the retry policy read from them."""

from __future__ import annotations

import pytest

from backend import errors
from backend.errors import VLMineError, retryable


def _all_error_classes():
    return [c for c in vars(errors).values()
            if isinstance(c, type) and issubclass(c, BaseException) and c.__module__ == errors.__name__]


def test_every_error_of_the_backend_has_the_one_root():
    classes = _all_error_classes()
    assert len(classes) >= 9
    assert all(issubclass(c, VLMineError) for c in classes)


@pytest.mark.parametrize("exc, expected", [
    (errors.SettingsError("x"), False),
    (errors.LabelConfigError("x"), False),
    (errors.NoConnection("x"), False),
    (errors.HTTPError(400, "x"), False),
    (errors.UsageError("x"), False),
    (errors.LabelStudioError("x", status=502), True),
    (errors.LabelStudioError("x"), True),  # no answer: Label Studio down or restarting
    (errors.LabelStudioError("x", status=429), True),
    (errors.LabelStudioError("x", status=408), True),
    (errors.LabelStudioError("x", status=401), False),  # a revoked token stays revoked
    (errors.LabelStudioError("x", status=403), False),
    (errors.LabelStudioError("x", status=404), False),
    (errors.ImageError("x"), True),
    (errors.SourceError("x"), True),
    (ConnectionError("x"), True),
    (TimeoutError("x"), True),
    (KeyError("tasks"), False),  # a malformed payload fails the same way on every try
    (ValueError("x"), False),
])
def test_retryability_is_read_from_the_error_type(exc, expected):
    assert retryable(exc) is expected


def test_errors_stay_catchable_as_the_builtins_they_were():
    with pytest.raises(ValueError):
        raise errors.SettingsError("bad")
    with pytest.raises(ValueError):
        raise errors.LabelConfigError("bad")
    with pytest.raises(RuntimeError):
        raise errors.EngineError("no connection")


def test_a_subclass_can_change_its_mind():
    class Flaky(errors.LabelConfigError):
        retryable = True

    assert retryable(Flaky("x"))
