"""The offline commands' inputs, read into a :class:`Dataset` of :class:`Item` rows.

A source is one of:

* a folder of images (searched recursively: jpg, jpeg, png, webp, bmp, gif), read from
  disk through ``/data/local-files/?d=`` references rooted at the folder (no copies in
  memory);
* ``s3://bucket/prefix`` (listed with boto3; ``AWS_ENDPOINT_URL`` for MinIO and friends);
* a Label Studio JSON export (a list of tasks with ``id`` and ``data``), or any JSON list
  of flat rows;
* a JSONL file of rows ``{"id", "image" or "text", optional numeric signals}``;
* detection data (:mod:`.detections`): a Label Studio export whose predictions or
  annotations hold boxes, COCO JSON with an image folder, or rows with ``boxes``.

Each item carries a signature of its content (path and size, S3 ETag, text digest), so a
later run mines again only what changed (:mod:`.ids`). A folder's and an S3 prefix's items
are named by their path; :mod:`.ids` numbers them.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from ..errors import SourceError, UsageError
from ..ids import MAX_ID
from ..labelstudio.config import field_value
from ..versions import digest
from . import detections

if TYPE_CHECKING:
    from ..settings import Settings

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
LOCAL_FILES = "/data/local-files/?d="
LOCAL_PATH = "\0\0path"  # a hidden data key: a row's plain file path, resolved (see _rewrite_local_paths)



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
