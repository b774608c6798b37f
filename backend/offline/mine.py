"""``python -m backend mine SOURCE --out FILE``: rank a dataset long-tail first, offline.

The same pipeline as the server, run in this process (:mod:`.run`) on the settings of the
environment (``VLM_MODEL``, ``VLM_API_URL``, ``KEYWORD_MODE``, ``POOLING``...). SOURCE is
a folder of images, ``s3://bucket/prefix``, a Label Studio JSON export, a JSONL file of
rows, or detection data (:mod:`.sources`); a detection input is mined object by object
(each box described on its own, a task ranked by its rarest object) unless
``--no-objects`` is given.

The state lives under ``--model-dir`` (default ``MODEL_DIR``, else ``./data``) under a
project id derived from the source, so running the same source again resumes (:mod:`.ids`):
items already indexed with unchanged content are skipped, and images whose description is
cached (by content hash) are not sent to the VLM again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from ..errors import SourceError, UsageError
from .output import output_rows, print_selection, summarise, write_rows
from .run import build_engine, build_engine_settings, mine_with_progress, signal_columns
from .signal_choice import check_signal_names, signal_fields
from .sources import Dataset, load_source

SHOWN_BOX_ERRORS = 5  # box reasons printed on stderr; the output names every one


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


def command_error(exc: BaseException) -> int:
    """Print why a command stopped early and give its exit code: 2 usage, 1 source, 130 Ctrl-C."""
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    print(f"error: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, UsageError) else 1
