"""What every describer offers: images in, one text per image out."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Sequence

from ..errors import VLMineError

if TYPE_CHECKING:  # Pillow is only needed by callers that pass images
    from PIL.Image import Image


class DescriberError(VLMineError):
    """The model or endpoint could not produce text. The message is safe to show an admin:
    it never contains an API key. Retryable (the root's default): an endpoint that timed out
    or was restarting may answer the next try."""


class Describer(abc.ABC):
    """A vision-language model behind one interface.

    ``name`` is a stable identity (the hub id or local directory for a local model,
    ``endpoint:<model>`` for a served one); callers put it into cache keys and model
    versions, so two describers with the same name must give the same texts.
    """

    name: str

    @abc.abstractmethod
    def describe(self, images: Sequence["Image"], prompt: str) -> list[str]:
        """One description per image, in the order given. Implementations batch."""

    def describe_each(self, images: Sequence["Image"], prompt: str) -> list["str | DescriberError"]:
        """Like :meth:`describe`, but a failure fails only the images it concerns.

        Each entry is a description or the :class:`DescriberError` of that image. This
        default fails them all together; the implementations narrow it down (one batch
        for a local model, one request for an endpoint) and keep the rest going.
        """
        try:
            return list(self.describe(images, prompt))
        except DescriberError as exc:
            return [exc] * len(images)

    @abc.abstractmethod
    def complete(self, prompts: Sequence[str]) -> list[str]:
        """Text-only generation, one answer per prompt (the keyword pass)."""

    def complete_each(self, prompts: Sequence[str]) -> list["str | DescriberError"]:
        """Like :meth:`complete`, but a failure fails only the prompts it concerns.

        Each entry is an answer or the :class:`DescriberError` of that prompt. This default
        tries them together and, if that fails, each prompt alone; the implementations
        narrow a failure down without running the others twice.
        """
        try:
            return list(self.complete(prompts))
        except DescriberError as exc:
            if len(prompts) < 2:
                return [exc] * len(prompts)
        out: list[str | DescriberError] = []
        for prompt in prompts:
            try:
                out.append(self.complete([prompt])[0])
            except DescriberError as exc:
                out.append(exc)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
