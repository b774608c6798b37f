"""``python -m backend mine SOURCE --out FILE``: rank a dataset long-tail first, offline.

The same pipeline as the server (fetch -> VLM description -> keywords -> index ->
novelty + signals -> Pareto ranking), run in this process on an :class:`Engine`
built from ``Settings.from_env()``, so every setting of the server applies
(``VLM_MODEL``, ``VLM_API_URL``, ``KEYWORD_MODE``, ``POOLING``...).

SOURCE is one of:

* a folder of images (searched recursively: jpg, jpeg, png, webp, bmp, gif), read from
  disk through ``/data/local-files/?d=`` references rooted at the folder (no copies in
  memory);
* ``s3://bucket/prefix`` (listed with boto3; ``AWS_ENDPOINT_URL`` for MinIO and friends);
* a Label Studio JSON export (a list of tasks with ``id`` and ``data``), or any JSON list
  of flat rows;
* a JSONL file of rows ``{"id", "image" or "text", optional numeric signals}``;
* detection data (:mod:`.detections`): a Label Studio export whose predictions or
  annotations hold boxes, COCO JSON with an image folder, or rows with ``boxes``. Such an
  input is mined object by object (each box described on its own, a task ranked by its
  rarest object) unless ``--no-objects`` is given.

A folder's and an S3 prefix's items get stable ids (:class:`ItemIds`): the first run numbers
them in sorted order, later runs keep each path's id and give new paths the next free ones,
so adding or removing files renumbers nothing and mines only what is new.

The state lives under ``--model-dir`` (default ``MODEL_DIR``, else ``./data``) under a
project id derived from the source, so running the same source again resumes: items
already indexed with unchanged content are skipped, and images whose description is
cached (by content hash) are not sent to the VLM again.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from ..errors import SourceError, UsageError
from ..ids import MAX_ID
from ..labelstudio.config import field_value
from ..settings import OBJECT_SIGNALS
from ..versions import digest
from . import detections

if TYPE_CHECKING:  # heavy imports stay out of argument parsing
    import numpy as np

    from ..engine.engine import Engine
    from ..engine.objects import RarestObject
    from ..mining import IndexArrays, MiningResult
    from ..settings import Settings

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
LOCAL_FILES = "/data/local-files/?d="
LOCAL_PATH = "\0\0path"  # a hidden data key: a row's plain file path, resolved (see _rewrite_local_paths)
DEFAULT_SIGNAL = "uncertainty"
NOVELTY_DECIMALS = 6  # = backend.mining.novelty.DECIMALS (not imported: the CLI starts without numpy)
SHOWN_KEYWORDS = 5
SHOWN_BOX_ERRORS = 5  # box reasons printed on stderr; the output names every one
BOX_DECIMALS = 2  # the rarest object's box, percent of the image
#: the output's own columns: a signal of one of these names would overwrite it
OUTPUT_COLUMNS = frozenset({"id", "priority", "front", "novelty", "keywords", "path", "image", "text",
                            "description", "error", "rarest_object", "object_score", "object_box",
                            "object_keywords", "object_errors", *OBJECT_SIGNALS})
PID_BASE = 1 << 50  # synthetic project ids sit far above Label Studio's

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ items
@dataclass
class Item:
    id: int
    task: dict  # what the pipeline sees: {"id", "data": {...}} (and "predictions" from an export)
    ref: dict[str, Any]  # the output columns naming the item: path, image or text
    sig: str  # changes when the item may have changed: such an item is mined again on resume
    name: str | None = None  # a folder's relative path, an S3 key, a row's own id: the id is kept per name (ItemIds)
    legacy_sig: str | None = None  # what an older version wrote for the same item: taken as sig, not re-mined
    key: Any = None  # the row's id exactly as the source gave it (a string or an integer): the output's "id"
    box_errors: list[str] = field(default_factory=list)  # boxes of a detection input that could not be read

    @property
    def shown_id(self) -> Any:
        return self.id if self.key is None else self.key


@dataclass
class ObjectInput:
    """Where a detection input's boxes are: what the object source reads and which image
    tag the regions name (the label config the command mines with uses the same name)."""

    source: str  # "predictions" or "annotations"
    model_version: str | None  # detections.DETECTOR_VERSION for converted boxes; None: any other model's
    image_tag: str = detections.IMAGE_TAG
    orphans: list[str] = field(default_factory=list)  # detections that name no listed image
    format: str = "detections"  # said on stderr: "COCO annotations", "rows with boxes"...

    def settings(self) -> dict[str, Any]:
        """The settings that mine these boxes, over the environment's: object mining on, the
        source the boxes are in, and for converted boxes exactly their model version."""
        out: dict[str, Any] = {"object_mining": True, "object_source": self.source}
        if self.model_version is not None:
            out["object_model_version"] = self.model_version
        return out


@dataclass
class Dataset:
    items: list[Item]
    kind: str  # "image" or "text"
    key: str  # field_value(task["data"], key) holds the image reference or the text
    identity: str  # what the synthetic project id is derived from
    local_root: str | None = None  # LOCAL_FILES_DOCUMENT_ROOT for local files, when needed
    field_note: str = ""
    objects: ObjectInput | None = None  # a detection input mined object by object; None: whole items only

    @property
    def label_config(self) -> str:
        """The config the engine mines with: an Image or a Text tag on the mined field, and
        for a detection input a RectangleLabels on the image (no labels listed: a new label
        in the data must not change the config)."""
        if self.objects is not None:
            tag = quoteattr(self.objects.image_tag)
            return (f"<View><Image name={tag} value={quoteattr('$' + self.key)}/>"
                    f"<RectangleLabels name={quoteattr(detections.BOX_TAG)} toName={tag}/></View>")
        tag = "Image" if self.kind == "image" else "Text"
        return f"<View><{tag} name={quoteattr(self.kind)} value={quoteattr('$' + self.key)}/></View>"

    @property
    def ref_column(self) -> str:
        return next(iter(self.items[0].ref)) if self.items else self.kind


def project_id(identity: str) -> int:
    """A stable project id for a source: the same source resumes, another one does not collide."""
    return PID_BASE + int(hashlib.sha256(identity.encode()).hexdigest()[:12], 16)


def _stat_sig(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def list_images(root: Path) -> list[str]:
    """Image files under ``root`` (hidden folders skipped), as sorted relative POSIX paths.

    Symbolic links to files are listed too, and read where they point; linked folders are
    not entered.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTS:
                found.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(found)


def local_dataset(root: Path, rels: Sequence[str], identity: str) -> Dataset:
    """Local images by path relative to ``root``; ids are positions until ItemIds makes them stable."""
    items = []
    for i, rel in enumerate(rels):
        task = {"id": i, "data": {"image": LOCAL_FILES + quote(rel, safe="/")}}
        items.append(Item(i, task, {"path": rel}, f"{rel}|{_stat_sig(root / rel)}", name=rel))
    return Dataset(items, "image", "image", identity, local_root=str(root))


def s3_dataset(uri: str, endpoint_url: str | None) -> Dataset:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise UsageError(f"{uri}: an S3 source is s3://bucket/prefix")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    client = boto3.session.Session().client("s3", endpoint_url=endpoint_url or None)
    objects = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if Path(obj["Key"]).suffix.lower() in IMAGE_EXTS:
                    objects.append((obj["Key"], str(obj.get("ETag", "")), obj.get("Size")))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            raise UsageError(f"{uri}: the bucket {bucket!r} does not exist") from None
        raise SourceError(f"cannot list {uri}: S3 {code or 'error'}") from None
    except NoCredentialsError:
        raise SourceError("S3 credentials not found (AWS_ACCESS_KEY_ID / AWS_PROFILE / role)") from None
    except BotoCoreError as exc:
        raise SourceError(f"cannot list {uri}: {type(exc).__name__}") from None
    objects.sort()
    items = []
    for i, (key, etag, size) in enumerate(objects):
        ref = f"s3://{bucket}/{key}"
        items.append(Item(i, {"id": i, "data": {"image": ref}}, {"image": ref}, f"{key}|{etag}|{size}", name=key))
    return Dataset(items, "image", "image", f"s3|{endpoint_url or ''}|{bucket}/{prefix}")


# -------------------------------------------------------------------- tables (JSON/JSONL)
def _read_json(path: Path) -> Any:
    """A JSONL file as its list of rows, a JSON file as it is (a list, or a dict: COCO, or
    an export wrapped as ``{"tasks": [...]}``)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{path}:{n}: not JSON ({exc.msg})") from None
        return records
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None


def _records(data: Any, path: Path) -> list[Any]:
    """The rows of a table source: a list, or the ``tasks`` of ``{"tasks": [...]}``."""
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        data = data["tasks"]
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a list of tasks (a Label Studio JSON export), COCO JSON "
                         "(with images) or JSONL rows")
    return data


def looks_like_image(value: str) -> bool:
    value = value.strip()
    low = value.lower()
    if not value or len(value) > 4096 or "\n" in value:
        return False
    if low.startswith(("data:image/", "s3://", "gs://", "azure-blob://", "/data/upload/", "/data/local-files")):
        return True
    return Path(low.split("?", 1)[0].split("#", 1)[0]).suffix in IMAGE_EXTS


def _mostly_images(values: Sequence[str]) -> bool:
    return bool(values) and sum(looks_like_image(v) for v in values) * 2 >= len(values)


def detect_field(datas: Sequence[dict], wanted: str | None) -> tuple[str, str, str]:
    """(kind, key, how it was chosen) of the field to mine."""
    strings: dict[str, list[str]] = {}
    for data in datas:
        for k, v in data.items():
            if isinstance(v, str) and v.strip():
                strings.setdefault(k, []).append(v)
    if wanted:
        values = [field_value(data, wanted) for data in datas]
        if all(v is None for v in values):
            shown = ", ".join(sorted({k for d in datas for k in d})[:20]) or "none"
            raise UsageError(f"--field {wanted}: no row has that field (fields: {shown})")
        wanted_strings = [v for v in values if isinstance(v, str) and v.strip()]
        return ("image" if _mostly_images(wanted_strings) else "text"), wanted, "--field"
    images = [k for k, vs in strings.items() if _mostly_images(vs)]
    if images:
        key = "image" if "image" in images else max(images, key=lambda k: len(strings[k]))
        return "image", key, "detected"
    if "text" in strings:
        return "text", "text", "detected"
    if strings:
        key = max(strings, key=lambda k: (len(strings[k]), sum(map(len, strings[k]))))
        return "text", key, "guessed; name another with --field"
    raise UsageError("no field holds an image reference or a text; name it with --field")


def row_key(raw: Any, where: str) -> Any:
    """A row's id as given, checked: any string or integer (a whole float too) is kept exactly.

    Datasets kept outside Label Studio are keyed by file name, UUID or number alike; the
    output shows the id as the row gave it. ``true``, ``1.5``, ``NaN``, a list or an empty
    string are usage errors naming the row.
    """
    shown = repr(raw) if len(repr(raw)) <= 40 else repr(raw)[:37] + "..."
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise UsageError(f"{where}: id {shown} is not a string or an integer")
    if isinstance(raw, float):
        if not raw.is_integer():
            raise UsageError(f"{where}: id {shown} is not a string or an integer")
        if abs(raw) > 2**53:  # a float this large may already be a neighbour of the id written
            raise UsageError(f"{where}: id {shown} is too large for a float; write it as an integer")
    if isinstance(raw, str) and not raw.strip():
        raise UsageError(f"{where}: id {shown} is empty")
    return raw


def task_id_of(key: Any) -> int | None:
    """The task id a row key is used as when it is a whole number from 0 to MAX_ID (an int, a
    whole float, a string of digits), as earlier versions numbered rows; else None."""
    if isinstance(key, str):
        text = key.strip()
        if not re.fullmatch(r"[+]?[0-9]+", text):
            return None
        digits = text.lstrip("+").lstrip("0") or "0"
        if len(digits) > len(str(MAX_ID)):  # no int() of a huge string
            return None
        value = int(digits)
    else:
        value = int(key)
    return value if 0 <= value <= MAX_ID else None


def _key_name(key: Any) -> str:
    """The ItemIds name of a row key: 5 and "5" are different keys."""
    return "id:" + json.dumps(key)


def table_dataset(records: list[Any], path: Path, wanted: str | None, env_root: str | None,
                  base: Path | None = None, identity: str | None = None) -> Dataset:
    """Rows or Label Studio tasks as a dataset. Plain file paths are relative to ``base``
    (default: the file's folder). A task's ``predictions`` and ``annotations`` stay on it
    (signals and objects read them); a row's ``boxes`` become a prediction of
    :data:`detections.DETECTOR_VERSION`, each box that cannot be read failing alone."""
    if not records:
        raise UsageError(f"{path}: no rows")
    base = path.parent if base is None else base
    rows = []
    box_rows: dict[int, tuple[str, Any]] = {}  # row index -> ("boxes", its boxes) or ("regions", JSON-MIN fields)
    for n, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise UsageError(f"{path}: row {n + 1} is not a JSON object")
        if isinstance(rec.get("data"), dict):  # a Label Studio task
            extra = {k: rec[k] for k in ("predictions", "annotations") if isinstance(rec.get(k), list)}
            rows.append((rec.get("id"), dict(rec["data"]), extra))
        else:
            regions = detections.min_export_regions(rec)
            if detections.row_has_boxes(rec):
                box_rows[n] = ("boxes", rec["boxes"])
            elif regions:
                box_rows[n] = ("regions", regions)
            moved = {"id", "boxes"} if detections.row_has_boxes(rec) else {"id", *regions}
            rows.append((rec.get("id"), {k: v for k, v in rec.items() if k not in moved}, {}))
    has_id = [r[0] is not None for r in rows]
    if any(has_id) and not all(has_id):
        raise UsageError(f"{path}: row {has_id.index(False) + 1} has no id (others do)")
    keys = [None if raw is None else row_key(raw, f"{path}: row {n + 1}") for n, (raw, _, _) in enumerate(rows)]
    numbers = [n if k is None else task_id_of(k) for n, k in enumerate(keys)]
    # whole numbers are the task ids themselves (as before: a resumed run finds its state);
    # any other key (a file name, a UUID) gets a stable id of its own (ItemIds)
    by_name = any(t is None for t in numbers)
    ids = list(range(len(rows))) if by_name else numbers
    seen = [_key_name(k) for k in keys] if by_name else ids
    dupes = [t for t, c in Counter(seen).items() if c > 1]
    if dupes:
        shown = keys[seen.index(dupes[0])] if by_name else dupes[0]
        raise UsageError(f"{path}: duplicate ids, e.g. {shown!r}" if by_name else f"{path}: duplicate ids, e.g. {shown}")
    kind, key, how = detect_field([r[1] for r in rows], wanted)
    box_errors = _convert_row_boxes(rows, box_rows, key, base, path) if box_rows else {}
    local_root = _rewrite_local_paths(rows, key, base, env_root) if kind == "image" else None
    items = []
    for n, (tid, given, (_, data, extra)) in enumerate(zip(ids, keys, rows)):
        shown = data.pop(f"\0{key}", field_value(data, key))
        local = data.pop(LOCAL_PATH, None)
        value = field_value(data, key)
        sig = digest([kind, value], 16)
        legacy = None
        if local is not None:
            # a plain path: by where the file is, not by its path under the rows' common folder,
            # which moves when a row from elsewhere is added (and would re-mine every row)
            stat = _stat_sig(Path(local))
            sig, legacy = f"{digest([kind, 'file', local], 16)}|{stat}", f"{sig}|{stat}"
        elif isinstance(value, str) and value.startswith(LOCAL_FILES) and local_root:
            sig += "|" + _stat_sig(Path(local_root) / _unquote_local(value))
        items.append(Item(tid, {"id": tid, "data": data, **extra}, {kind: shown}, sig, legacy_sig=legacy,
                          name=_key_name(given) if by_name else None, key=given, box_errors=box_errors.get(n, [])))
    dataset = Dataset(items, kind, key, identity or f"{kind}|{key}|{path.resolve()}", local_root=local_root,
                      field_note=f"field {key!r} ({how})")
    if box_rows:
        kinds = {kind for kind, _ in box_rows.values()}
        dataset.objects = ObjectInput("predictions", detections.DETECTOR_VERSION,
                                      format="rows with boxes" if "boxes" in kinds else
                                      "a Label Studio JSON-MIN export with regions")
    return dataset


def _convert_row_boxes(rows: list, box_rows: dict[int, tuple[str, Any]], key: str, base: Path, path: Path
                       ) -> dict[int, list[str]]:
    """Each row's ``boxes`` (or JSON-MIN region fields) as a prediction on its task (rows
    are ``(id, data, extra)``); returns the reasons of the boxes that failed, by row index.
    Pixel boxes take the image's size from the row (width/height) or, for a local file,
    from its header."""
    errors: dict[int, list[str]] = {}
    for n, (kind, boxes) in box_rows.items():
        _, data, extra = rows[n]
        if kind == "regions":
            results, failed = detections.convert_min_regions(boxes, f"{path.name}: row {n + 1}")
            extra["predictions"] = [detections.prediction(results)]
            if failed:
                errors[n] = failed
            continue
        stated = detections.row_image_size(data)

        def size_of(data: dict = data, stated: Any = stated) -> tuple[int, int] | None:
            if stated is not None:
                return stated
            local = detections.local_image(field_value(data, key), base)
            return detections.image_size(local) if local is not None else None

        results, failed = detections.convert_row_boxes(boxes, f"{path.name}: row {n + 1}", size_of)
        extra["predictions"] = [detections.prediction(results)]
        if failed:
            errors[n] = failed
    return errors


def _unquote_local(ref: str) -> str:
    from urllib.parse import unquote

    return unquote(ref[len(LOCAL_FILES):])


def _rewrite_local_paths(rows: list, key: str, base: Path, env_root: str | None) -> str | None:
    """Plain file paths in the rows become /data/local-files/ references under one root.

    The root is ``LOCAL_FILES_DOCUMENT_ROOT`` when set, else the deepest folder holding
    them all. The original value is kept (under a hidden key) for the output, and the
    resolved path (under LOCAL_PATH) for the item's signature. The reference is written
    under ``key`` as a flat data key, which :func:`field_value` reads before a nested path.
    """
    local: list[tuple[dict, Path]] = []
    for _, data, _ in rows:
        p = detections.local_image(field_value(data, key), base)
        if p is not None:
            local.append((data, p.resolve()))
    if not local:
        return None
    root = env_root or os.path.commonpath([str(p.parent) for _, p in local])
    for data, p in local:
        data[f"\0{key}"] = field_value(data, key)
        data[LOCAL_PATH] = str(p)
        data[key] = LOCAL_FILES + quote(os.path.relpath(p, root).replace(os.sep, "/"), safe="/")
    return str(root)


def load_source(spec: str, wanted: str | None, settings: "Settings", images: str | None = None,
                coco: str | None = None, objects: bool = True) -> Dataset:
    """The dataset a SOURCE names; the format of a .json/.jsonl file is read from its content.

    Detection data (COCO JSON, rows with ``boxes``, an export whose predictions or
    annotations hold boxes) is mined object by object; ``objects=False`` (``--no-objects``)
    mines its images whole, as any other source. ``images`` is the folder COCO file names
    are relative to (default: the JSON file's folder); ``coco`` names the COCO annotation
    file whose ``images`` and ``categories`` a bare detection-results list refers to.
    """
    if spec.lower().startswith("s3://"):
        if images or coco:
            raise UsageError("--images and --coco go with a COCO JSON source")
        return s3_dataset(spec, settings.aws_endpoint_url)
    if "://" in spec:
        raise UsageError(f"{spec}: a source is a folder, an s3:// prefix, a .json export or a .jsonl file")
    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(f"{spec}: no such file or folder")
    if path.is_dir():
        if images or coco:
            raise UsageError("--images and --coco go with a COCO JSON source, not a folder")
        root = path.resolve()
        return local_dataset(root, list_images(root), f"folder|{root}")
    if path.suffix.lower() not in (".json", ".jsonl", ".ndjson"):
        raise UsageError(f"{spec}: not a folder, a .json export or a .jsonl file")
    data = _read_json(path)
    if detections.is_coco(data) or detections.is_coco_results(data):
        if wanted:
            raise UsageError(f"--field {wanted}: a COCO file's images are its file names; --field is for rows")
        dataset = coco_dataset(data, path, images, coco, settings.local_files_document_root)
    else:
        if images or coco:
            raise UsageError(f"--images and --coco go with a COCO JSON source; {spec} is not one "
                             "(COCO JSON has a list of images, or is a list of detections with image_id and bbox)")
        dataset = table_dataset(_records(data, path), path, wanted, settings.local_files_document_root)
        if dataset.objects is None and dataset.kind == "image":
            source = detections.export_object_source([it.task for it in dataset.items], settings.model_version_prefix,
                                                     preferred=settings.object_source)
            if source is not None:
                tag = detections.export_image_tag([it.task for it in dataset.items], source)
                dataset.objects = ObjectInput(source, None, image_tag=tag or detections.IMAGE_TAG,
                                              format=f"a Label Studio export with boxes in its {source}")
    if dataset.objects is not None:
        if not objects or dataset.kind != "image":
            dataset.objects = None
        else:
            _sign_boxes(dataset, settings)
    if dataset.objects is None or dataset.objects.source != "annotations":
        for item in dataset.items:  # read only as boxes: not kept in memory otherwise
            item.task.pop("annotations", None)
    return dataset


def coco_dataset(data: Any, path: Path, images: str | None, coco: str | None, env_root: str | None) -> Dataset:
    """COCO JSON (annotations or detections with their images) or a bare detection-results
    list, read as tasks whose predictions hold the boxes (see :mod:`.detections`)."""
    folder = Path(images).expanduser() if images else path.parent
    if not folder.is_dir():
        raise UsageError(f"--images {images}: no such folder")
    where = path.name
    note = ""
    if detections.is_coco(data):
        if coco:
            raise UsageError(f"--coco names the images of a detection-results list; {path.name} has its own")
        anns = data.get("annotations") or []
        if not isinstance(anns, list):
            raise UsageError(f"{where}: annotations must be a list")
        listed = detections.coco_images(data, where)
        categories = detections.coco_categories(data, where)
        kind = "COCO " + ("detections" if any(isinstance(a, dict) and "score" in a for a in anns) else "annotations")
    else:
        anns = data
        if coco:
            info_path = Path(coco).expanduser()
            info = _read_json(info_path) if info_path.is_file() else None
            if not detections.is_coco(info):
                raise UsageError(f"--coco {coco}: not a COCO JSON file with a list of images")
            listed = detections.coco_images(info, info_path.name)
            categories = detections.coco_categories(info, info_path.name)
        else:
            listed, skipped = detections.images_by_file_name(list_images(folder.resolve()))
            categories = {}
            note = (f"; images named by their COCO id in {folder}"
                    + (f" (left out, not named by an id: {skipped} files)" if skipped else ""))
        kind = "COCO detection results"
    if listed and not any((folder / name).is_file() for _, name, _ in listed):
        # a missing image fails alone; none found at all is the wrong folder
        raise UsageError(f"{where}: none of its images is in {folder} (e.g. {listed[0][1]}); "
                         "name their folder with --images")
    converted = detections.convert_coco(anns, listed, categories, where, folder)
    if not converted.tasks:
        raise UsageError(f"{where}: no images" + (f" (no image in {folder} is named by its COCO id; "
                                                 "name the annotation file with --coco)" if not coco and not detections.is_coco(data) else ""))
    dataset = table_dataset([t.task for t in converted.tasks], path, detections.IMAGE_KEY, env_root,
                            base=folder, identity=f"coco|{path.resolve()}|{folder.resolve()}")
    if dataset.kind != "image":
        raise UsageError(f"{where}: the file names of the images are not images (jpg, png...)")
    for item, task in zip(dataset.items, converted.tasks):
        item.box_errors = task.errors
    dataset.field_note = f"images in {folder}"
    dataset.objects = ObjectInput("predictions", detections.DETECTOR_VERSION, orphans=converted.orphans,
                                  format=kind + note)
    return dataset


def _sign_boxes(dataset: Dataset, settings: "Settings") -> None:
    """Mined items whose boxes changed are mined again: the boxes read join each item's
    signature (by the objects package's own digest of what it reads). Every task gets the
    entry its boxes are read from, empty when the input gave none."""
    from dataclasses import replace

    from ..objects.regions import objects_digest

    assert dataset.objects is not None
    source = replace(settings, **dataset.objects.settings()).object_source_rule()
    for item in dataset.items:
        # the file is all there is: a task without the entry has no boxes (the engine would
        # otherwise ask Label Studio for them, as it does for a webhook's tasks)
        item.task.setdefault(dataset.objects.source, [])
        item.sig = f"{item.sig}|boxes:{objects_digest(item.task, source)[:16]}"
        if item.legacy_sig is not None:
            item.legacy_sig = None  # detection inputs are new: no older manifest to honour


# -------------------------------------------------------------------------- signals
def check_signal_names(names: Sequence[str]) -> None:
    """``--signal`` names that would clash with the output: a usage error."""
    for name in names:
        if name == "novelty":
            raise UsageError("--signal novelty: novelty is always ranked; name another field")
        if name in OUTPUT_COLUMNS:
            raise UsageError(f"--signal {name}: {name!r} is a column of the output ("
                             f"{', '.join(sorted(OUTPUT_COLUMNS))}); name another field")


def signal_fields(dataset: Dataset, asked: Sequence[str], settings: "Settings") -> list[str]:
    """The row fields ranked beside the settings' signals (SIGNAL_FIELDS, UNCERTAINTY_FIELD):
    each ``--signal``, else ``uncertainty`` when the rows have it. Every name is a path into
    the row (``meta.loss``), read as the server reads SIGNAL_FIELDS (``engine.signals``)."""
    from ..engine.signals import field_names
    from ..fields import field_number

    datas = [it.task["data"] for it in dataset.items]

    def has_numbers(name: str) -> bool:
        return any(not math.isnan(field_number(d, name)) for d in datas)

    check_signal_names(asked)
    fields = list(dict.fromkeys(asked))
    for name in fields:
        if not has_numbers(name):
            raise UsageError(f"--signal {name}: no row has a numeric field {name!r}")
    if not asked and has_numbers(DEFAULT_SIGNAL):
        fields.append(DEFAULT_SIGNAL)
    for name in field_names(settings):
        if name in OUTPUT_COLUMNS - {"novelty"}:
            raise UsageError(f"setting: SIGNAL_FIELDS / UNCERTAINTY_FIELD name {name!r}, a column of the "
                             "output; unset it for this command")
    return [name for name in fields if name not in field_names(settings)]


def signal_columns(dataset: Dataset, fields: Sequence[str], settings: "Settings") -> dict[str, "np.ndarray"]:
    """Signal name -> each item's value as ranked (NaN = missing), read by the engine's readers:
    the output's signal columns, for failed items too."""
    import numpy as np

    from ..engine import signals
    from ..fields import field_number

    out: dict[str, np.ndarray] = {}
    for name in dict.fromkeys([*fields, *signals.field_names(settings)]):
        out[signals.signal_name(settings, name)] = np.array(
            [field_number(it.task["data"], name) for it in dataset.items], dtype=float)
    if signals.uses_predictions(settings):
        out[signals.UNCERTAINTY] = np.array(
            [signals.prediction_uncertainty(it.task, settings) for it in dataset.items], dtype=float)
    out.pop("novelty", None)
    return out


# --------------------------------------------------------------------------- resuming
def _read_pairs(path: Path, convert: Callable[[Any, Any], tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """The ``[a, b]`` lines of an append-only JSONL file, through ``convert``; none if it is missing."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    a, b = json.loads(line)
                    yield convert(a, b)
                except (ValueError, TypeError):
                    continue  # a line cut short by an interrupted run
    except FileNotFoundError:
        return


def _append_pairs(path: Path, pairs: Iterable[tuple[Any, Any]]) -> int:
    """Append ``[a, b]`` lines; returns how many."""
    lines = [json.dumps([a, b]) + "\n" for a, b in pairs]
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.writelines(lines)
    return len(lines)


class Manifest:
    """What each mined id was (path and size, S3 ETag, text digest): an append-only JSONL
    beside the store, so an id whose item changed is mined again on resume."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[int, str] = {}
        self._lines = 0
        for tid, sig in _read_pairs(path, lambda t, s: (int(t), s)):
            self.entries[tid] = sig
            self._lines += 1

    def compact(self, keep: set[int]) -> None:
        stale = set(self.entries) - keep
        if not stale and self._lines <= 2 * max(len(self.entries), 1000):
            return
        for tid in stale:
            del self.entries[tid]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps([t, s]) + "\n" for t, s in self.entries.items())
        os.replace(tmp, self.path)
        self._lines = len(self.entries)

    def add(self, pairs: Iterable[tuple[int, str]]) -> None:
        pairs = list(pairs)
        self.entries.update(pairs)
        self._lines += _append_pairs(self.path, pairs)


class ItemIds:
    """Stable ids by item name (a folder's relative path, an S3 key), in an append-only JSONL.

    A name keeps the id it got first; a new name gets the next free id (new names in
    sorted order), so the first run numbers a sorted listing 0..n-1 and later runs number
    nothing twice. Ids of names that left the source are never reused.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ids: dict[str, int] = dict(_read_pairs(path, lambda name, tid: (str(name), int(tid))))

    def assign(self, names: Sequence[str]) -> list[int]:
        new = sorted(set(names) - set(self.ids))
        if new:
            start = max(self.ids.values(), default=-1) + 1
            fresh = {name: start + k for k, name in enumerate(new)}
            _append_pairs(self.path, fresh.items())
            self.ids.update(fresh)
        return [self.ids[name] for name in names]


def ids_file(engine: "Engine", pid: int) -> Path:
    """Where a project's ItemIds live."""
    return engine.settings.data_dir / "cli" / f"{pid}-ids.jsonl"


def stabilise_ids(dataset: Dataset, path: Path) -> None:
    """Give named items (folder, S3) their stable ids from ``path`` (see ItemIds)."""
    named = [it for it in dataset.items if it.name is not None]
    if not named:
        return
    for item, tid in zip(named, ItemIds(path).assign([it.name for it in named])):
        item.id = tid
        item.task["id"] = tid


# ---------------------------------------------------------------------------- mining
@dataclass
class Outcome:
    dataset: Dataset
    pid: int
    arrays: "IndexArrays"  # the project's keyword index, as ranked (the evaluation harness reads it)
    result: "MiningResult | None"
    signals: dict[str, "np.ndarray"]  # aligned with dataset.items, NaN = missing
    errors: dict[int, str]
    descriptions: dict[int, str]
    keywords: dict[int, list[str]]  # rarest first
    df: dict[str, int]
    mined_now: int = 0
    skipped: int = 0
    order: list[int] = field(default_factory=list)  # mined item ids, label-first first
    rarest: dict[int, "RarestObject"] = field(default_factory=dict)  # detection inputs: each task's rarest object
    object_errors: dict[int, list[str]] = field(default_factory=dict)  # boxes refused when mined, by task

    @property
    def ok(self) -> int:
        return len(self.order)


def build_engine(model_dir: str | None, dataset: Dataset | None = None, **overrides: Any) -> "Engine":
    from ..engine.engine import Engine
    from ..errors import SettingsError
    from ..settings import Settings

    if model_dir:
        overrides["model_dir"] = model_dir
    if dataset is not None and dataset.local_root:
        overrides["local_files_document_root"] = dataset.local_root
    if dataset is not None and dataset.objects is not None:
        overrides.update(dataset.objects.settings())
    try:
        settings = Settings.from_env(invert_priority=False, label_stream="tab", **overrides)
    except SettingsError as exc:
        raise UsageError(f"setting: {exc}") from None
    return Engine(settings)


def run_mining(engine: "Engine", dataset: Dataset, fields: Sequence[str] = (), progress: bool = True) -> Outcome:
    """Mine what is not mined yet (in BATCH_SIZE batches, with a progress bar), then rank.

    Everything but the reading of the source goes through the engine, as on the server:
    forgetting what left the source, mining, the signals (``fields``: row fields ranked
    beside the settings' own, see :func:`signal_fields`), the ranking and its tie-breaks,
    and the rarest-first keyword order.
    """
    pid = project_id(dataset.identity)
    stabilise_ids(dataset, ids_file(engine, pid))
    engine.project(pid, dataset.label_config)
    engine.set_total(pid, len(dataset.items))
    ids = [it.id for it in dataset.items]
    current = set(ids)
    manifest = Manifest(engine.settings.data_dir / "cli" / f"{pid}-{engine.mining_hash}.jsonl")
    engine.forget_absent(pid, current)  # items that left the source count in no document frequency
    manifest.compact(current)
    indexed = engine.indexed(pid, ids)
    # manifests written before a signature changed format: rewrite the entry, do not re-mine
    manifest.add((it.id, it.sig) for it in dataset.items
                 if it.legacy_sig is not None and it.id in indexed and manifest.entries.get(it.id) == it.legacy_sig)
    todo = [it for it in dataset.items if it.id not in indexed or manifest.entries.get(it.id) != it.sig]
    skipped = len(ids) - len(todo)
    failed = 0
    if todo:
        bar = _progress(len(ids), skipped, dataset.kind, enabled=progress)
        try:
            size = engine.settings.batch_size
            for start in range(0, len(todo), size):
                batch = todo[start:start + size]
                mined = engine.mine_tasks(pid, [it.task for it in batch])
                by_id = {it.id: it for it in batch}
                manifest.add((m.task_id, by_id[m.task_id].sig) for m in mined if m.ok)
                failed += sum(1 for m in mined if not m.ok)
                bar.update(len(batch), failed)
        finally:
            bar.close()

    tasks = [it.task for it in dataset.items]
    # the values the rows hold now: a row re-scored since it was mined is not mined again
    engine.record_field_signals(pid, tasks, fields)
    order, result = engine.ranking(pid, fresh_tasks=tasks, extra_fields=fields)
    records = engine.task_records(pid, ids)
    indexed = engine.indexed(pid, ids)
    errors = {t: (records[t].error if t in records and records[t].error else "not mined")
              for t in ids if t not in indexed}
    descriptions = {t: r.description for t, r in records.items() if r.description and t in indexed}
    keywords, df = engine.rarest_keywords(pid, sorted(indexed))
    outcome = Outcome(dataset, pid, engine.index_arrays(pid), result, signal_columns(dataset, fields, engine.settings),
                      errors, descriptions, keywords, df, mined_now=len(todo), skipped=skipped,
                      order=[t for t in order if t in current])
    if dataset.objects is not None:
        # the rarest object as the annotator's explanation names it (one owner: the engine)
        outcome.rarest = engine.rarest_objects(pid, sorted(indexed), records)
        outcome.object_errors = engine.object_errors(pid, ids)
    return outcome


class _progress:
    """done/total, rate and failures on stderr (tqdm)."""

    def __init__(self, total: int, initial: int, kind: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit=" " + kind + "s", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True, smoothing=0.1, desc="mining")
        self.bar.set_postfix(failed=0, refresh=False)

    def update(self, n: int, failed: int) -> None:
        self.bar.set_postfix(failed=failed, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------- output
def output_rows(outcome: Outcome) -> list[dict[str, Any]]:
    """One row per item, label-first first; failed items last, with priority 0 and no front."""
    ds = outcome.dataset
    pos = {it.id: i for i, it in enumerate(ds.items)}
    res = outcome.result
    row_of = {int(t): i for i, t in enumerate(res.task_ids.tolist())} if res is not None else {}
    rows = []
    for tid in outcome.order + sorted(outcome.errors):
        item = ds.items[pos[tid]]
        r = row_of.get(tid) if tid not in outcome.errors else None
        row: dict[str, Any] = {
            "id": item.shown_id,
            "priority": float(res.priority[r]) if r is not None else 0.0,  # in full: 1e6+ rows differ below 1e-6
            "front": int(res.front[r]) if r is not None else None,
            # novelty is ranked at this precision (mining.novelty.DECIMALS): equal shown, equal ranked
            "novelty": round(float(res.novelty[r]), NOVELTY_DECIMALS) if r is not None else None,
        }
        for name, values in outcome.signals.items():
            value = float(values[pos[tid]])
            row[name] = None if math.isnan(value) else value
        row["keywords"] = outcome.keywords.get(tid, []) if r is not None else []
        row.update(item.ref)
        if ds.kind == "image":
            row["description"] = outcome.descriptions.get(tid)
        row["error"] = outcome.errors.get(tid)
        if ds.objects is not None:
            row.update(object_columns(outcome, item, tid, r))
        rows.append(row)
    return rows


def object_columns(outcome: Outcome, item: Item, tid: int, r: int | None) -> dict[str, Any]:
    """A detection input's columns: the task's rarest object (the detector's label and
    score, its box in percent ``[x, y, width, height]``, its keywords rarest first), the
    object signals as ranked, and every box that failed (unreadable in the input, or
    refused when mined) with its reason. Empty for a task whose image failed or that has
    no mined object."""
    rare = outcome.rarest.get(tid) if r is not None else None
    res = outcome.result
    out: dict[str, Any] = {"rarest_object": None, "object_score": None, "object_box": None, "object_keywords": []}
    if rare is not None:
        box = rare.box
        out.update(rarest_object=rare.label, object_score=rare.score,
                   object_box=[round(v * 100, BOX_DECIMALS) for v in (box.left, box.top, box.width, box.height)],
                   object_keywords=[k for k, _ in rare.keywords])
    for name in OBJECT_SIGNALS:
        values = res.signals.get(name) if res is not None and r is not None else None
        out[name] = None if values is None or math.isnan(float(values[r])) else float(values[r])
    out["object_errors"] = list(item.box_errors) + outcome.object_errors.get(tid, [])
    return out


def write_evaluation(out: Path, rows: list[dict[str, Any]], report: dict[str, Any],
                     plot: Any, table: str) -> None:
    """Write what an evaluation leaves in ``out`` (items.csv, evaluation.json, evaluation.png)
    and print its table: the image and the labelled-rows evaluations write the same set."""
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out / "items.csv", rows)
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(report, out / "evaluation.png")
    print(table)
    print(f"wrote {out / 'evaluation.json'}, {out / 'evaluation.png'}, {out / 'items.csv'}", file=sys.stderr)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        if path.suffix.lower() == ".csv":
            columns = list(rows[0]) if rows else ["id", "priority", "front", "novelty", "keywords", "error"]
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("; ".join(map(str, v)) if isinstance(v, list) else "" if v is None else v)
                                 for k, v in row.items()})
        else:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def print_selection(outcome: Outcome, rows: list[dict[str, Any]], budget: int, out=None) -> None:
    out = out or sys.stdout
    ref = outcome.dataset.ref_column
    objects = outcome.dataset.objects is not None
    tid_of = {it.shown_id: it.id for it in outcome.dataset.items} if objects else {}
    print("rank\tid\tpriority\tfront\t" + ("rarest object\t" if objects else "") + "rarest keywords\t" + ref,
          file=out)
    for n, row in enumerate([r for r in rows if r["error"] is None][:budget], 1):
        kws = ", ".join(f"{k} ({outcome.df.get(k, 0)})" for k in row["keywords"][:SHOWN_KEYWORDS])
        shown = str(row.get(ref) or "").replace("\n", " ").replace("\t", " ")
        rare = (rarest_object_text(outcome.rarest.get(tid_of.get(row["id"], -1)), row) + "\t") if objects else ""
        print(f"{n}\t{row['id']}\t{row['priority']:.4f}\t{row['front']}\t{rare}{kws}\t{shown[:120]}", file=out)


def rarest_object_text(rare: "RarestObject | None", row: dict[str, Any]) -> str:
    """``trailer (0.80) at [37.5, 8.33, 18.75, 25.0]: hitch (3), horse (3)``: a printed row's
    rarest object, its keywords with their counts in the object scope (objects, and the
    scenes while OBJECT_WITH_SCENE counts them)."""
    if rare is None or row.get("object_box") is None:
        return "-"
    score = rare.score
    label = (rare.label or "a box") + (f" ({score:.2f})" if isinstance(score, (int, float)) else "")
    kws = ", ".join(f"{k} ({n})" for k, n in rare.keywords[:SHOWN_KEYWORDS])
    return f"{label} at {row['object_box']}: {kws}".replace("\t", " ")


def summarise(outcome: Outcome, err=None) -> bool:
    """Print how many items were mined and the commonest failures; False (with an error line)
    when nothing could be mined, which every offline command treats as a failed run."""
    err = err or sys.stderr
    total = len(outcome.dataset.items)
    print(f"{outcome.ok} of {total} {outcome.dataset.kind}s mined, {len(outcome.errors)} failed "
          f"({outcome.mined_now} processed now, {outcome.skipped} already mined)", file=err)
    for reason, n in Counter(outcome.errors.values()).most_common(5):
        print(f"  failed: {n} x {reason}", file=err)
    if not outcome.ok:
        print("error: nothing could be mined", file=err)
    return bool(outcome.ok)


# ------------------------------------------------------------------------------ main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m backend mine",
        description="Rank a dataset long-tail first with the backend's pipeline and settings (VLM_MODEL, "
                    "VLM_API_URL, KEYWORD_MODE, POOLING... from the environment). Re-running the same source "
                    "resumes.",
        epilog="examples:\n"
               "  python -m backend mine photos/ --out ranking.csv --budget 50\n"
               "  VLM_API_URL=http://gpu:8000/v1 python -m backend mine s3://bucket/images/ --out ranking.jsonl\n"
               "  python -m backend mine export.json --field image --out ranking.csv\n"
               "  python -m backend mine rows.jsonl --signal uncertainty --out ranking.csv\n"
               "  python -m backend mine instances_val2017.json --images val2017/ --out ranking.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a folder of images, s3://bucket/prefix, a Label Studio JSON export or a .jsonl file; "
                                   "detection data (COCO JSON, rows with boxes, an export with boxes) is mined box by box")
    p.add_argument("--out", help="where to write the ranking: .csv or .jsonl")
    p.add_argument("--field", help="the data field to mine (default: detected from the rows)")
    p.add_argument("--images", metavar="DIR",
                   help="COCO JSON: the folder its file names are relative to (default: the JSON file's folder)")
    p.add_argument("--coco", metavar="FILE",
                   help="a bare COCO detection-results list: the COCO annotation file naming its images and "
                        "categories (default: images named by their id in --images, as COCO names them)")
    p.add_argument("--no-objects", action="store_true",
                   help="detection data (boxes in an export, COCO, rows with boxes): mine whole images only, "
                        "not each box")
    p.add_argument("--signal", action="append", default=[], metavar="NAME",
                   help="a numeric row field ranked beside novelty, larger = label sooner (repeatable; "
                        "default: 'uncertainty' when the rows have it)")
    p.add_argument("--budget", type=int, metavar="K", help="print the K items to label first")
    p.add_argument("--model-dir", help="state and description cache (default: MODEL_DIR, else ./data)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log the pipeline's progress")
    return p


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        if args.out is None and args.budget is None:
            raise UsageError("give --out FILE (.csv or .jsonl), --budget K, or both")
        if args.out is not None and Path(args.out).suffix.lower() not in (".csv", ".jsonl"):
            raise UsageError(f"--out {args.out}: the file name must end in .csv or .jsonl")
        if args.budget is not None and args.budget < 1:
            raise UsageError("--budget must be at least 1")
        check_signal_names(args.signal)
        probe = build_engine_settings(args.model_dir)
        dataset = load_source(args.source, args.field, probe, images=args.images, coco=args.coco,
                              objects=not args.no_objects)
        if not dataset.items:
            print(f"error: {args.source}: no {dataset.kind}s found", file=sys.stderr)
            return 1
        fields = signal_fields(dataset, args.signal, probe)
        engine = build_engine(args.model_dir, dataset)
        names = list(signal_columns(dataset, fields, engine.settings))
        # which model describes the images (VLM_MODEL, or the default for this machine)
        described = f"; described by {engine.settings.vlm_name}" if dataset.kind == "image" else ""
        print(f"{len(dataset.items)} {dataset.kind}s from {args.source}"
              + (f", {dataset.field_note}" if dataset.field_note else "") + described
              + (f"; signals: novelty, {', '.join(names)}" if names else "; signal: novelty"), file=sys.stderr)
        if dataset.objects is not None:
            say_objects(dataset)
        outcome = mine_with_progress(engine, dataset, fields, quiet=args.quiet)
    except (UsageError, SourceError, KeyboardInterrupt) as exc:
        return command_error(exc)
    rows = output_rows(outcome)
    if args.out:
        write_rows(Path(args.out), rows)
        print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    if not summarise(outcome):
        return 1
    if args.budget:
        print_selection(outcome, rows, args.budget)
    return 0


def say_objects(dataset: Dataset, err=None) -> None:
    """On stderr: that a detection input is mined object by object, and every box that could
    not be read (each reason once per row; the first few in full)."""
    err = err or sys.stderr
    objects = dataset.objects
    assert objects is not None
    failed = [e for it in dataset.items for e in it.box_errors] + objects.orphans
    print(f"objects: {objects.format}; each box is mined on its own (--no-objects: whole images only)"
          + (f"; {len(failed)} boxes could not be read" if failed else ""), file=err)
    for reason in failed[:SHOWN_BOX_ERRORS]:
        print(f"  box: {reason}", file=err)
    if len(failed) > SHOWN_BOX_ERRORS:
        print(f"  ... and {len(failed) - SHOWN_BOX_ERRORS} more (the output's object_errors column names each)",
              file=err)


def mine_with_progress(engine: "Engine", dataset: Dataset, fields: Sequence[str], quiet: bool) -> Outcome:
    """``run_mining`` with its progress bar, log lines printed above the bar."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        return run_mining(engine, dataset, fields, progress=not quiet)


def command_error(exc: BaseException) -> int:
    """Print why a command stopped early and give its exit code: 2 usage, 1 source, 130 Ctrl-C."""
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    print(f"error: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, UsageError) else 1


def build_engine_settings(model_dir: str | None) -> "Settings":
    """The settings as the environment gives them (for reading the source before the engine exists)."""
    from ..errors import SettingsError
    from ..settings import Settings

    try:
        return Settings.from_env(**({"model_dir": model_dir} if model_dir else {}))
    except SettingsError as exc:
        raise UsageError(f"setting: {exc}") from None
