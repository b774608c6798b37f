"""One root for the backend's errors, and the retry policy read from them."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import backend
from backend import errors
from backend.errors import VLMineError, retryable
from backend.objects.geometry import BoxError
from backend.vlm.base import DescriberError


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
    (DescriberError("endpoint timed out"), True),  # an endpoint restarting answers later
    (BoxError("box outside the image"), False),  # the same box fails on every try
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
        raise errors.NoConnection("no connection")
    with pytest.raises(ValueError):
        raise BoxError("box outside the image")


def test_every_error_class_in_the_package_derives_from_the_root():
    """Not only errors.py's: a describer's or a box's error is caught and retried by the same rules."""
    found = []
    for info in pkgutil.walk_packages(backend.__path__, "backend."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        found += [c for c in vars(module).values()
                  if isinstance(c, type) and issubclass(c, BaseException) and c.__module__ == info.name]
    assert {DescriberError, BoxError} <= set(found)
    # a private class (``_GiveUp``) is control flow inside its module and never leaves it
    assert [c.__qualname__ for c in found if not issubclass(c, VLMineError) and not c.__name__.startswith("_")] == []


def test_a_subclass_can_change_its_mind():
    class Flaky(errors.LabelConfigError):
        retryable = True

    assert retryable(Flaky("x"))
