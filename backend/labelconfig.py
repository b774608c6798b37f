"""What the backend needs to know of a Label Studio label config.

Two questions only: which task field holds the thing to mine (an image or a
text), and whether there is a TextArea where predictions can show annotators
why a task ranks high. Parsing is done with defusedxml: label configs come from
project admins, but the server should not trust XML it did not write.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET

IMAGE_TAGS = ("Image",)
TEXT_TAGS = ("Text", "HyperText", "Paragraphs")
MAX_CONFIG_CHARS = 1_000_000


class LabelConfigError(ValueError):
    """The label config does not parse, or has nothing the backend can mine."""


@dataclass(frozen=True)
class ObjectTag:
    name: str
    type: str
    value_key: str  # the task data key, without the leading "$"


@dataclass(frozen=True)
class ControlTag:
    name: str
    type: str
    to_names: tuple[str, ...]


@dataclass(frozen=True)
class Source:
    """Where a task's description comes from."""

    kind: str  # "image" or "text"
    key: str  # task["data"][key]


@dataclass(frozen=True)
class LabelConfig:
    objects: dict[str, ObjectTag]
    controls: dict[str, ControlTag]

    @classmethod
    def parse(cls, xml: str) -> "LabelConfig":
        if not isinstance(xml, str) or not xml.strip():
            raise LabelConfigError("the label config is empty")
        if len(xml) > MAX_CONFIG_CHARS:
            raise LabelConfigError(f"the label config is longer than {MAX_CONFIG_CHARS} characters")
        try:
            root = SafeET.fromstring(xml)
        except Exception as exc:  # ParseError and defusedxml's refusals
            raise LabelConfigError(f"the label config is not valid XML: {exc}") from None
        objects: dict[str, ObjectTag] = {}
        controls: dict[str, ControlTag] = {}
        for el in _walk(root):
            name = el.attrib.get("name")
            if not name:
                continue
            value = el.attrib.get("value")
            to_name = el.attrib.get("toName")
            if value and value.startswith("$") and not to_name:
                objects[name] = ObjectTag(name=name, type=el.tag, value_key=value[1:])
            elif to_name:
                targets = tuple(t.strip() for t in to_name.split(",") if t.strip())
                controls[name] = ControlTag(name=name, type=el.tag, to_names=targets)
        return cls(objects=objects, controls=controls)

    def source(self, description_field: str | None = None, image_field: str | None = None) -> Source:
        """The field to mine: a configured caption field, else the first Image, else the first Text.

        ``image_field`` names the task data key of the image when the config
        has several Image objects (or none, for data keys the config does not
        show).
        """
        if description_field:
            return Source("text", description_field)
        if image_field:
            return Source("image", image_field)
        for obj in self.objects.values():
            if obj.type in IMAGE_TAGS:
                return Source("image", obj.value_key)
        for obj in self.objects.values():
            if obj.type in TEXT_TAGS:
                return Source("text", obj.value_key)
        kinds = ", ".join(sorted({o.type for o in self.objects.values()})) or "none"
        raise LabelConfigError(
            "the label config has no Image or Text object to mine "
            f"(objects found: {kinds}); set DESCRIPTION_FIELD to mine a text field"
        )

    def textarea(self, name: str) -> tuple[str, str] | None:
        """(from_name, to_name) of the TextArea called ``name``, if the config has a usable one.

        Label Studio stores predictions with any from_name/to_name and then
        breaks the labeling UI, so a result is only built for names checked here.
        """
        control = self.controls.get(name)
        if control is None or control.type != "TextArea":
            return None
        for target in control.to_names:
            if target in self.objects:
                return control.name, target
        return None


def _walk(root: Element):
    stack = [root]
    while stack:
        el = stack.pop()
        yield el
        stack.extend(reversed(list(el)))
