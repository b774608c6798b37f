"""What the backend needs to know of a Label Studio label config.

Two questions only: which task field holds the thing to mine (an image or a
text), and whether there is a TextArea where predictions can show annotators
why a task ranks high. Parsing is done with defusedxml: label configs come from
project admins, but the server should not trust XML it did not write.

Tags and attributes are read as Label Studio reads them: names compared without
case (``<image>``, ``toname``) and without an XML namespace (``<View xmlns=...>``).
A field reference is a path into the task data (``$meta.url``, ``$images[0].url``),
resolved by :func:`field_value`, the one lookup every reader of the mined field uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET

from ..errors import LabelConfigError

IMAGE_TAGS = ("Image",)
TEXT_TAGS = ("Text", "HyperText", "Paragraphs")
#: control tags whose regions are boxes on an image: a detection project's (object mining)
BOX_CONTROLS = ("rectanglelabels", "polygonlabels", "rectangle", "polygon")
#: tag names the backend acts on, by their lower-case spelling
CANONICAL_TAGS = {t.lower(): t for t in IMAGE_TAGS + TEXT_TAGS + ("TextArea", "Repeater", "View")}
MAX_CONFIG_CHARS = 1_000_000
DEFAULT_INDEX_FLAG = "{{idx}}"
_PATH = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[[0-9]+\])*")
_STEP = re.compile(r"([^.\[\]]+)|\[([0-9]+)\]")


def field_value(data: Any, key: str, default: Any = None) -> Any:
    """``data[key]``, where ``key`` is a Label Studio field reference without its ``$``.

    The key is first looked up as it is (a data key may itself hold a dot); else it is
    a path as Label Studio's editor reads it: ``meta.url`` is ``data["meta"]["url"]``,
    ``images[0].url`` (or ``images.0.url``) is ``data["images"][0]["url"]``. Anything
    missing on the way gives ``default``.
    """
    if not isinstance(data, dict) or not isinstance(key, str):
        return default
    if key in data:
        return data[key]
    if not _PATH.fullmatch(key):
        return default
    value: Any = data
    for name, index in _STEP.findall(key):
        step = name or index
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return default
    return value


@dataclass(frozen=True)
class ObjectTag:
    name: str
    type: str
    value_key: str  # the task data key, without the leading "$" (see field_value)
    value_type: str | None = None  # valueType: "url" when the data holds a link to the text
    text_key: str = "text"  # Paragraphs: textKey, the key of each item's text


@dataclass(frozen=True)
class ControlTag:
    name: str
    type: str
    to_names: tuple[str, ...]
    labels: tuple[str, ...] = ()  # the values of its <Label> children (RectangleLabels and the like)


@dataclass(frozen=True)
class Source:
    """Where a task's description comes from."""

    kind: str  # "image" or "text"
    key: str  # field_value(task["data"], key)
    tag: str | None = None  # the object tag read: Text, HyperText, Paragraphs (None: plain text)
    value_type: str | None = None
    text_key: str = "text"
    # the Image tag's name (the to_name of its regions) and whether a box control draws on
    # it: object mining reads these; not compared, so a renamed tag re-mines nothing
    name: str | None = field(default=None, compare=False)
    boxes: bool = field(default=False, compare=False)


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
        labels = _control_labels(root)
        for tag, attrs, index in _walk(root):
            name = attrs.get("name")
            if not name:
                continue
            value = attrs.get("value") or ""
            value_list = attrs.get("valuelist") or ""
            to_name = attrs.get("toname")
            if index is not None:  # inside a Repeater: its first item stands for the rest
                name, value, value_list = (_first_item(v, index) for v in (name, value, value_list))
                to_name = _first_item(to_name, index) if to_name else to_name
            if not to_name and (value.startswith("$") or value_list.startswith("$")):
                # valueList="$images": several images in one object; the first is mined
                key = value[1:] if value.startswith("$") else value_list[1:] + "[0]"
                objects[name] = ObjectTag(name=name, type=tag, value_key=key,
                                          value_type=(attrs.get("valuetype") or "").lower() or None,
                                          text_key=attrs.get("textkey") or "text")
            elif to_name:
                targets = tuple(t.strip() for t in to_name.split(",") if t.strip())
                controls[name] = ControlTag(name=name, type=tag, to_names=targets, labels=labels.get(name, ()))
        return cls(objects=objects, controls=controls)

    def source(self, description_field: str | None = None, image_field: str | None = None) -> Source:
        """The field to mine: a configured caption field, else an Image, else the first Text.

        ``image_field`` chooses among the config's Image objects (by data key or by
        name) when there are several; a config without an Image ignores it, and one
        whose Images it does not name mines the first Image.
        """
        if description_field:
            return Source("text", description_field)
        images = [obj for obj in self.objects.values() if obj.type in IMAGE_TAGS]
        if images:
            chosen = images[0]
            if image_field:
                chosen = next((obj for obj in images if image_field in (obj.value_key, obj.name)
                               or obj.value_key == image_field + "[0]"), chosen)
            return Source("image", chosen.value_key, tag=chosen.type, name=chosen.name,
                          boxes=bool(self.box_controls(chosen.name)))
        for obj in self.objects.values():
            if obj.type in TEXT_TAGS:
                return Source("text", obj.value_key, tag=obj.type, value_type=obj.value_type,
                              text_key=obj.text_key)
        kinds = ", ".join(sorted({o.type for o in self.objects.values()})) or "none"
        raise LabelConfigError(
            "the label config has no Image or Text object to mine "
            f"(objects found: {kinds}); set DESCRIPTION_FIELD to mine a text field"
        )

    def box_controls(self, image_name: str) -> list[ControlTag]:
        """The RectangleLabels / PolygonLabels (and plain Rectangle / Polygon) tags drawing on
        the Image called ``image_name``: a config with one is a detection project."""
        return [c for c in self.controls.values() if c.type.lower() in BOX_CONTROLS and image_name in c.to_names]

    def highlight_control(self, image_name: str, label: str | None) -> str | None:
        """The name of a RectangleLabels on ``image_name`` that lists ``label``: the only
        control a highlighted box may be written to (Label Studio would store a region
        with a label its config lacks, and the labeling view would then fail on it)."""
        if not label:
            return None
        for control in self.box_controls(image_name):
            if control.type.lower() == "rectanglelabels" and label in control.labels:
                return control.name
        return None

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


def _control_labels(root: Element) -> dict[str, tuple[str, ...]]:
    """Control name -> the ``value`` of each of its ``<Label>`` children, for the box controls."""
    out: dict[str, tuple[str, ...]] = {}
    for el in root.iter():
        if _local(el.tag).lower() not in BOX_CONTROLS:
            continue
        name = next((v for k, v in el.attrib.items() if _local(k).lower() == "name"), None)
        if name:
            out[name] = tuple(v for child in el if _local(child.tag).lower() == "label"
                              for k, v in child.attrib.items() if _local(k).lower() == "value")
    return out


def _local(name: Any) -> str:
    """A tag or attribute name without its ``{namespace}`` prefix."""
    return name.rsplit("}", 1)[-1] if isinstance(name, str) else ""


def _first_item(text: str, index_flag: str) -> str:
    return text.replace(index_flag, "0")


def _walk(root: Element) -> Iterator[tuple[str, dict[str, str], str | None]]:
    """(tag, attributes, Repeater index flag or None) of every element, in document order.

    The tag is spelled as the backend knows it (``image`` -> ``Image``), attribute
    names are lower case; both lose any namespace.
    """
    stack: list[tuple[Element, str | None]] = [(root, None)]
    while stack:
        el, index = stack.pop()
        local = _local(el.tag)
        tag = CANONICAL_TAGS.get(local.lower(), local)
        attrs = {_local(k).lower(): v for k, v in el.attrib.items()}
        yield tag, attrs, index
        if tag == "Repeater":
            index = attrs.get("indexflag") or DEFAULT_INDEX_FLAG
        stack.extend((child, index) for child in reversed(list(el)))
