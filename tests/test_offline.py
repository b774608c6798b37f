"""``python -m backend mine`` and ``python -m backend evaluate`` as real subprocesses.

A long-tail image set is generated in tmp (3 head classes x 30, 2 tail classes x 3, solid
colours with unique bytes); the FakeOpenAI stand-in describes each colour, the tail ones
with rare words, and records every request, so resuming can be checked by counting.
evaluate's backend method is checked against mine's own ranking, and a loopback server
named by LABEL_STUDIO_URL checks that the offline engine sends Label Studio nothing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path

import pytest
from PIL import Image

from tests.support.commands import clean_env, read_csv, read_jsonl, run
from tests.support.fake_openai import COLOURS, FakeOpenAI
from tests.support.recording_server import RecordingServer
from tests.support.s3 import moto_s3
from tests.support.tiny_llava import build_tiny_llava

DESCRIPTIONS = {
    "red": "a red bus on a road",
    "green": "a green tree in a park",
    "blue": "a blue car on a street",
    "yellow": "a yellow submarine beside a lighthouse",
    "purple": "a purple octopus under a glacier",
}
SIZES = {"red": 30, "green": 30, "blue": 30, "yellow": 3, "purple": 3}
TAIL = {"yellow", "purple"}
_counter = iter(range(10**6))


def png(colour: str) -> bytes:
    """A solid-colour PNG whose bytes no other call returns (one pixel encodes a counter)."""
    k = next(_counter)
    image = Image.new("RGB", (32, 32), COLOURS[colour])
    image.putpixel((k % 32, (k // 32) % 32), (k % 251, (k // 251) % 251, 7))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def make_set(root: Path, sizes: dict[str, int]) -> Path:
    for colour, n in sizes.items():
        (root / colour).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / colour / f"{i:03d}.png").write_bytes(png(colour))
    return root


def image_requests(vlm: FakeOpenAI) -> int:
    return sum(1 for r in vlm.requests if isinstance(r["body"]["messages"][-1]["content"], list))


@pytest.fixture(scope="module")
def vlm():
    with FakeOpenAI(by_colour=DESCRIPTIONS) as server:
        yield server


@pytest.fixture(scope="module")
def longtail(tmp_path_factory) -> Path:
    return make_set(tmp_path_factory.mktemp("longtail"), SIZES)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model")


# ------------------------------------------------------------------------------- mine
@pytest.mark.slow
def test_folder_to_csv_then_jsonl_resumes_without_new_vlm_requests(longtail, vlm, model_dir, tmp_path):
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(model_dir), BATCH_SIZE="16")
    before = image_requests(vlm)
    done = run("mine", longtail, "--out", tmp_path / "ranking.csv", env=env)
    assert done.returncode == 0, done.stderr
    assert image_requests(vlm) - before == 96
    assert "96 of 96 images mined, 0 failed" in done.stderr
    assert "images/s" in done.stderr and "96/96" in done.stderr  # the progress bar: done/total and rate

    rows = read_csv(tmp_path / "ranking.csv")
    assert list(rows[0]) == ["id", "priority", "front", "novelty", "keywords", "path", "description", "error"]
    assert len(rows) == 96 and sorted(int(r["id"]) for r in rows) == list(range(96))
    priorities = [float(r["priority"]) for r in rows]
    assert priorities == sorted(priorities, reverse=True) and priorities[0] == 1.0
    top = rows[:6]
    assert {r["path"].split("/")[0] for r in top} == TAIL
    assert all(r["front"] == "0" for r in top) and all(r["error"] == "" for r in rows)
    yellow = next(r for r in top if r["path"].startswith("yellow/"))
    assert yellow["description"] == DESCRIPTIONS["yellow"]
    assert set(yellow["keywords"].split("; ")) >= {"submarine", "lighthouse"}
    # a first run numbers the images in sorted path order
    paths = sorted(r["path"] for r in rows)
    assert all(paths[int(r["id"])] == r["path"] for r in rows)

    before = image_requests(vlm)
    again = run("mine", longtail, "--out", tmp_path / "ranking.jsonl", "--budget", "3", "-q", env=env)
    assert again.returncode == 0, again.stderr
    assert image_requests(vlm) == before  # resumed: nothing was described again
    assert "0 processed now, 96 already mined" in again.stderr
    lines = read_jsonl(tmp_path / "ranking.jsonl")
    assert [r["id"] for r in lines] == [int(r["id"]) for r in rows]
    assert isinstance(lines[0]["keywords"], list) and lines[0]["front"] == 0 and lines[0]["error"] is None

    printed = [line.split("\t") for line in again.stdout.strip().splitlines()]
    assert printed[0][:4] == ["rank", "id", "priority", "front"]
    assert len(printed) == 4 and [int(p[1]) for p in printed[1:]] == [int(r["id"]) for r in rows[:3]]


@pytest.mark.slow
def test_adding_and_removing_files_keeps_every_other_id_and_mines_only_the_new(vlm, tmp_path):
    folder = make_set(tmp_path / "set", {"red": 4, "green": 3})
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    assert run("mine", folder, "--out", tmp_path / "first.csv", env=env).returncode == 0
    first = {r["path"]: int(r["id"]) for r in read_csv(tmp_path / "first.csv")}
    assert sorted(first.values()) == list(range(7))

    (folder / "blue").mkdir()
    (folder / "blue" / "000.png").write_bytes(png("blue"))  # sorts before every other path
    (folder / "red" / "001.png").unlink()
    before = image_requests(vlm)
    again = run("mine", folder, "--out", tmp_path / "second.csv", env=env)
    assert again.returncode == 0, again.stderr
    assert image_requests(vlm) - before == 1  # only the new image is described
    assert "1 processed now, 6 already mined" in again.stderr
    second = {r["path"]: int(r["id"]) for r in read_csv(tmp_path / "second.csv")}
    assert "red/001.png" not in second and second["blue/000.png"] == 7  # the next id; 1 is not reused
    assert {p: t for p, t in second.items() if p != "blue/000.png"} == {
        p: t for p, t in first.items() if p != "red/001.png"}


def test_a_broken_image_gets_an_error_row_and_the_rest_is_ranked(vlm, tmp_path):
    root = make_set(tmp_path / "set", {"red": 5, "yellow": 1})
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    done = run("mine", root, "--out", tmp_path / "out.jsonl", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "6 of 7 images mined, 1 failed" in done.stderr and "image: not an image" in done.stderr
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert len(rows) == 7 and rows[0]["path"] == "yellow/000.png"
    broken = rows[-1]
    assert broken["path"] == "red/broken.png" and broken["error"] == "image: not an image"
    assert broken["priority"] == 0 and broken["front"] is None and broken["keywords"] == []
    assert all(r["error"] is None and r["priority"] > 0 for r in rows[:-1])

    for f in (root / "red").glob("0*.png"):
        f.write_bytes(b"nope")
    (root / "yellow" / "000.png").write_bytes(b"nope")
    nothing = run("mine", root, "--out", tmp_path / "none.csv", "-q", env=env)
    assert nothing.returncode == 1 and "nothing could be mined" in nothing.stderr
    assert len(read_csv(tmp_path / "none.csv")) == 7  # every item still gets its row


def test_symlinked_images_in_a_folder_are_read(vlm, tmp_path):
    """A link to an image elsewhere is listed from the folder, so it is read where it points."""
    outside = make_set(tmp_path / "outside", {"yellow": 1})
    root = make_set(tmp_path / "set", {"red": 3})
    (root / "red" / "linked.png").symlink_to(outside / "yellow" / "000.png")
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    done = run("mine", root, "--out", tmp_path / "out.jsonl", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "4 of 4 images mined, 0 failed" in done.stderr
    linked = next(r for r in read_jsonl(tmp_path / "out.jsonl") if r["path"] == "red/linked.png")
    assert linked["error"] is None and linked["description"] == DESCRIPTIONS["yellow"]


def test_a_malformed_image_url_in_a_row_fails_that_row_only(vlm, longtail, tmp_path):
    rows = [{"id": 1, "image": str(longtail / "yellow" / "000.png")}, {"id": 2, "image": "http://[bad/a.jpg"},
            {"id": 3, "image": "http://example.com:99999/a.jpg"}, {"id": 4, "image": str(longtail / "red" / "000.png")}]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    done = run("mine", source, "--out", tmp_path / "out.jsonl", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "2 of 4 images mined, 2 failed" in done.stderr
    errors = {r["id"]: r["error"] for r in read_jsonl(tmp_path / "out.jsonl")}
    assert errors == {1: None, 2: "image: invalid URL: malformed host in brackets",
                      3: "image: invalid URL: port out of range 0-65535", 4: None}


@pytest.mark.slow
def test_jsonl_text_rows_with_an_uncertainty_signal(tmp_path):
    rows = [{"id": i, "text": f"a cat sleeping on a sofa number {i}", "uncertainty": 0.1} for i in range(1, 21)]
    rows[4]["uncertainty"] = 0.95  # a common text the user's model is unsure about
    rows += [{"id": 50, "text": "a walrus riding a unicycle in a blizzard", "uncertainty": 0.2},
             {"id": 51, "text": "a walrus juggling lanterns in a blizzard"}]  # no uncertainty: ranked as the lowest
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = clean_env(MODEL_DIR=str(tmp_path / "model"))  # text needs no model
    done = run("mine", source, "--out", tmp_path / "out.csv", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "signals: novelty, uncertainty" in done.stderr
    out = read_csv(tmp_path / "out.csv")
    assert list(out[0]) == ["id", "priority", "front", "novelty", "uncertainty", "keywords", "text", "error"]
    assert len(out) == 22
    front0 = {int(r["id"]) for r in out if r["front"] == "0"}
    assert {50, 5} <= front0  # the rarest text, and the most uncertain one
    assert int(out[0]["id"]) in (50, 51, 5)
    by_id = {int(r["id"]): r for r in out}
    assert by_id[51]["uncertainty"] == "" and "walrus" in by_id[51]["keywords"]
    assert by_id[50]["text"].startswith("a walrus riding")

    bad = run("mine", source, "--out", tmp_path / "x.csv", "--signal", "confidence", env=env)
    assert bad.returncode == 2 and "no row has a numeric field 'confidence'" in bad.stderr


@pytest.mark.slow
def test_label_studio_export_and_jsonl_with_local_paths(longtail, vlm, model_dir, tmp_path):
    names = [f"red/{i:03d}.png" for i in range(8)] + ["yellow/000.png", "yellow/001.png"]
    export = [{"id": 1000 + i, "data": {"photo": f"/data/local-files/?d={name}", "caption_id": i},
               "annotations": [], "predictions": []} for i, name in enumerate(names)]
    (tmp_path / "export.json").write_text(json.dumps(export))
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(model_dir), LOCAL_FILES_DOCUMENT_ROOT=str(longtail))
    before = image_requests(vlm)
    done = run("mine", tmp_path / "export.json", "--out", tmp_path / "out.jsonl", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "field 'photo' (detected)" in done.stderr
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert sorted(r["id"] for r in rows) == [1000 + i for i in range(10)]
    assert {r["id"] for r in rows[:2]} == {1008, 1009}
    assert rows[0]["image"].startswith("/data/local-files/?d=yellow/")
    assert image_requests(vlm) == before  # the folder run described these bytes: cached by content hash

    # JSONL rows with plain paths relative to the file
    (longtail / "rows.jsonl").write_text("".join(json.dumps({"id": i, "image": n}) + "\n" for i, n in enumerate(names)))
    env.pop("LOCAL_FILES_DOCUMENT_ROOT")
    done = run("mine", longtail / "rows.jsonl", "--out", tmp_path / "rows.csv", "-q", env=env)
    assert done.returncode == 0, done.stderr
    out = read_csv(tmp_path / "rows.csv")
    assert [r["image"] for r in out[:2]] == ["yellow/000.png", "yellow/001.png"]
    assert all(r["error"] == "" for r in out)


@pytest.mark.parametrize("raw, message", [
    ("Infinity", "id inf is not a string or an integer"),
    ("NaN", "id nan is not a string or an integer"),
    ("1.5", "id 1.5 is not a string or an integer"),
    ("true", "id True is not a string or an integer"),
    ("[3]", "id [3] is not a string or an integer"),
    ('{"a": 1}', "id {'a': 1} is not a string or an integer"),
    ('"  "', "id '  ' is empty"),
    ("1e300", "is too large for a float; write it as an integer"),
])
@pytest.mark.slow
def test_a_bad_row_id_exits_2_naming_the_row(raw, message, tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text('{"id": 1, "text": "a cat"}\n{"id": %s, "text": "a dog"}\n' % raw)
    done = run("mine", source, "--out", tmp_path / "out.csv", env=clean_env(MODEL_DIR=str(tmp_path / "model")))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"{source}: row 2: " in done.stderr and message in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out.csv").exists()


@pytest.mark.slow
def test_row_ids_of_any_string_or_integer_are_kept_exactly(tmp_path):
    """Datasets outside Label Studio are keyed by file name, UUID or number: every id comes
    back exactly as given (5 and "5" are two ids), through a second, resuming run too."""
    ids = ["img_0001.jpg", "t0", 5, "5", -1, 10**20, "9" * 5000, "0b6f1e9c-3a5d-4f5e-9c1d-1d2e3f4a5b6c"]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps({"id": t, "text": f"a {w} on a sofa"}) + "\n"
                              for t, w in zip(ids, ["cat", "dog", "kite", "walrus", "seal", "owl", "fox", "yak"])))
    env = clean_env(MODEL_DIR=str(tmp_path / "m"))
    done = run("mine", source, "--out", tmp_path / "out.jsonl", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert "8 of 8 texts mined, 0 failed" in done.stderr
    first = read_jsonl(tmp_path / "out.jsonl")
    assert sorted(map(json.dumps, (r["id"] for r in first))) == sorted(map(json.dumps, ids))
    assert {json.dumps(r["id"]): r["text"] for r in first}[json.dumps("5")] == "a walrus on a sofa"
    again = run("mine", source, "--out", tmp_path / "again.jsonl", "-q", env=env)
    assert "0 processed now, 8 already mined" in again.stderr
    assert [r["id"] for r in read_jsonl(tmp_path / "again.jsonl")] == [r["id"] for r in first]


def test_row_ids_stay_exact_integers(tmp_path):
    """Ids are never passed through a float: 2**53 + 1 is not 2**53; a string of digits stays a string."""
    ids = [2**53 + 1, 2**53, "42", 2**63 - 1, 0]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps({"id": t, "text": f"a cat on a sofa, photo {k}"}) + "\n"
                              for k, t in enumerate(ids)))
    done = run("mine", source, "--out", tmp_path / "out.jsonl", "-q", env=clean_env(MODEL_DIR=str(tmp_path / "m")))
    assert done.returncode == 0, done.stderr
    assert "5 of 5 texts mined, 0 failed" in done.stderr
    out = read_jsonl(tmp_path / "out.jsonl")
    assert sorted(map(json.dumps, (r["id"] for r in out))) == sorted(map(json.dumps, [2**53 + 1, 2**53, "42", 2**63 - 1, 0]))
    by_id = {r["id"]: r["text"] for r in out}
    assert by_id[2**53 + 1] == "a cat on a sofa, photo 0" and by_id[2**53] == "a cat on a sofa, photo 1"


def test_priorities_are_written_in_full(tmp_path):
    """Rounded to 6 decimals, the priorities of 1M+ rows would collide; 3 rows show the precision."""
    source = tmp_path / "rows.jsonl"
    texts = ["a walrus juggling lanterns in a blizzard", "a cat on a sofa", "a cat on a sofa again"]
    source.write_text("".join(json.dumps({"id": i + 1, "text": t}) + "\n" for i, t in enumerate(texts)))
    env = clean_env(MODEL_DIR=str(tmp_path / "model"))
    for name in ("out.csv", "out.jsonl"):
        done = run("mine", source, "--out", tmp_path / name, "-q", env=env)
        assert done.returncode == 0, done.stderr
    assert [float(r["priority"]) for r in read_csv(tmp_path / "out.csv")] == [1.0, 2 / 3, 1 / 3]
    assert [r["priority"] for r in read_jsonl(tmp_path / "out.jsonl")] == [1.0, 2 / 3, 1 / 3]


def test_a_setting_naming_an_output_column_as_a_signal_exits_2(tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text('{"id": 1, "text": "a cat", "priority": 3}\n')
    done = run("mine", source, "--out", tmp_path / "out.csv",
               env=clean_env(MODEL_DIR=str(tmp_path / "model"), SIGNAL_FIELDS="priority"))
    assert done.returncode == 2 and "'priority', a column of the output" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out.csv").exists()


@pytest.mark.slow
def test_rows_with_paths_from_a_new_folder_mine_only_the_new_rows(vlm, tmp_path):
    """A row's file is known by its absolute path, not by its path under the rows' common folder
    (which moves when a row from another folder comes in); old-format manifests are taken over."""
    from urllib.parse import quote

    from backend.offline.sources import LOCAL_FILES, _stat_sig
    from backend.versions import digest

    base = tmp_path / "data"
    make_set(base / "a", {"red": 3, "yellow": 1})
    make_set(base / "b", {"blue": 1})
    first = [f"a/red/{i:03d}.png" for i in range(3)] + ["a/yellow/000.png"]
    source = base / "rows.jsonl"
    source.write_text("".join(json.dumps({"id": i + 1, "image": p}) + "\n" for i, p in enumerate(first)))
    model = tmp_path / "model"
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(model))
    done = run("mine", source, "--out", tmp_path / "one.csv", "-q", env=env)
    assert done.returncode == 0 and "4 processed now, 0 already mined" in done.stderr, done.stderr

    # what an older version wrote: the path under the rows' common folder (here base/a)
    manifests = [m for m in (model / "cli").glob("*.jsonl") if not m.name.endswith("-ids.jsonl")]
    assert len(manifests) == 1
    legacy = {i + 1: f"{digest(['image', LOCAL_FILES + quote(os.path.relpath(p, 'a'), safe='/')], 16)}|"
                     f"{_stat_sig(base / p)}" for i, p in enumerate(first)}
    manifests[0].write_text("".join(json.dumps([t, sig]) + "\n" for t, sig in legacy.items()))
    again = run("mine", source, "--out", tmp_path / "two.csv", "-q", env=env)
    assert again.returncode == 0 and "0 processed now, 4 already mined" in again.stderr, again.stderr

    with open(source, "a") as fh:  # the common folder becomes base: every relative path changes
        fh.write(json.dumps({"id": 5, "image": "b/blue/000.png"}) + "\n")
    before = image_requests(vlm)
    more = run("mine", source, "--out", tmp_path / "three.csv", "-q", env=env)
    assert more.returncode == 0, more.stderr
    assert "1 processed now, 4 already mined" in more.stderr and image_requests(vlm) - before == 1
    rows = read_csv(tmp_path / "three.csv")
    assert len(rows) == 5 and all(r["error"] == "" for r in rows)
    assert {r["image"] for r in rows} == set(first) | {"b/blue/000.png"}

    (base / "a" / "red" / "001.png").write_bytes(png("red"))  # a changed file is still mined again
    changed = run("mine", source, "--out", tmp_path / "four.csv", "-q", env=env)
    assert changed.returncode == 0 and "1 processed now, 4 already mined" in changed.stderr, changed.stderr


@pytest.mark.parametrize("args, message", [
    (["mine", "/no/such/folder", "--out", "x.csv"], "no such file or folder"),
    (["mine", "{set}", "--out", "x.txt"], "must end in .csv or .jsonl"),
    (["mine", "{set}"], "give --out FILE"),
    (["mine", "{set}", "--budget", "0"], "--budget must be at least 1"),
    (["mine", "{set}", "--out", "x.csv", "--bogus"], "unrecognized arguments"),
    (["mine", "{set}", "--out", "x.csv", "--signal", "priority"], "--signal priority: 'priority' is a column"),
    (["mine", "{set}", "--out", "x.csv", "--signal", "path"], "--signal path: 'path' is a column"),
    (["mine", "{set}", "--out", "x.csv", "--signal", "keywords"], "--signal keywords: 'keywords' is a column"),
    (["mine", "{set}", "--out", "x.csv", "--signal", "novelty"], "novelty is always ranked"),
    (["frobnicate"], "unknown command"),
    (["evaluate", "--images", "/no/such/folder", "--out", "x"], "not a folder"),
    (["evaluate", "--images", "{set}"], "the following arguments are required: --out"),
])
@pytest.mark.slow
def test_bad_arguments_exit_2_with_a_message(args, message, longtail, tmp_path):
    done = run(*[a.replace("{set}", str(longtail)) for a in args], env=clean_env(MODEL_DIR=str(tmp_path)))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_bad_setting_exits_2(longtail, tmp_path):
    done = run("mine", longtail, "--out", tmp_path / "x.csv", env=clean_env(MODEL_DIR=str(tmp_path), POOLING="max"))
    assert done.returncode == 2 and "POOLING must be one of" in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- evaluate
@pytest.mark.slow
def test_evaluate_reports_every_method_and_vlmine_beats_random_on_the_tail(longtail, vlm, model_dir, tmp_path):
    rng = random.Random(7)
    with open(tmp_path / "unc.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "uncertainty"])
        for colour, n in SIZES.items():
            for i in range(n):
                writer.writerow([f"{colour}/{i:03d}.png", round(rng.random(), 4)])
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(model_dir))
    out = tmp_path / "eval"
    done = run("evaluate", "--images", longtail, "--uncertainty", tmp_path / "unc.csv", "--budget", "10",
               "--many", "10", "--few", "5", "--out", out, "-q", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "evaluation.json").read_text())
    methods = report["methods"]
    assert set(methods) == {"random", "uncertainty", "vlmine_mean", "vlmine_min", "vlmine_gmean",
                            "vlmine_confirmed", "pareto_confirmed+uncertainty"}
    for m in methods.values():
        assert m["selected"] == 10
        assert {"share_many", "share_medium", "share_few", "coverage", "few_class_coverage", "tail_recall"} <= set(m)
        assert abs(m["share_many"] + m["share_medium"] + m["share_few"] - 1) < 1e-9
    assert methods["random"]["seeds"] == 5 and "tail_recall_std" in methods["random"]
    assert report["splits"]["classes"] == {"many": 3, "medium": 0, "few": 2}
    assert report["mined"] == 96 and report["budget"] == 10 and report["uncertainty"]["matched"] == 96
    for pooling in ("mean", "min", "gmean", "confirmed"):
        assert methods[f"vlmine_{pooling}"]["tail_recall"] == 1.0  # all 6 tail images within K=10
    assert methods["vlmine_gmean"]["tail_recall"] > methods["random"]["tail_recall"]
    assert (out / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    items = read_csv(out / "items.csv")
    assert len(items) == 96 and items[0]["label"] in TAIL
    assert "vlmine_gmean" in done.stdout and "tail recall" in done.stdout

    # the ImageNet-LT list format gives the same selection
    (tmp_path / "train.txt").write_text("".join(f"{c}/{i:03d}.png {k}\n" for k, (c, n) in enumerate(SIZES.items())
                                                for i in range(n)))
    listed = run("evaluate", "--list", tmp_path / "train.txt", "--root", longtail, "--budget", "10",
                 "--many", "10", "--few", "5", "--out", tmp_path / "eval2", "-q", env=env)
    assert listed.returncode == 0, listed.stderr
    again = json.loads((tmp_path / "eval2" / "evaluation.json").read_text())
    assert set(again["methods"]) == {"random", "vlmine_mean", "vlmine_min", "vlmine_gmean", "vlmine_confirmed"}
    assert again["methods"]["vlmine_gmean"] == methods["vlmine_gmean"]


@pytest.mark.slow
def test_evaluate_breaks_score_ties_at_random_not_by_the_first_class_folder(vlm, tmp_path):
    """Every image is described alike and equally uncertain, so every method's scores tie. Ids
    number the images in sorted class/file order: cut by id, K=8 would take only 'aardvark'."""
    root = tmp_path / "set"
    for cls, n in (("aardvark", 8), ("zebra", 30)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            (root / cls / f"{i:03d}.png").write_bytes(png("red"))
    (tmp_path / "unc.csv").write_text("path,uncertainty\n" + "".join(
        f"{p.relative_to(root).as_posix()},0.5\n" for p in sorted(root.rglob("*.png"))))
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    reports = []
    for out in ("eval", "eval2"):  # the second run resumes: same seeds, same tie-breaks
        done = run("evaluate", "--images", root, "--uncertainty", tmp_path / "unc.csv", "--budget", "8",
                   "--many", "20", "--few", "10", "--out", tmp_path / out, "-q", env=env)
        assert done.returncode == 0, done.stderr
        reports.append(json.loads((tmp_path / out / "evaluation.json").read_text()))
    report = reports[0]
    assert report["splits"]["classes"] == {"many": 1, "medium": 0, "few": 1}
    methods = report["methods"]
    assert set(methods) == {"random", "uncertainty", "vlmine_mean", "vlmine_min", "vlmine_gmean",
                            "vlmine_confirmed", "pareto_confirmed+uncertainty"}
    for name, m in methods.items():
        assert m["selected"] == 8, name
        assert m["coverage"] > 0.5, name  # not only the class that sorts first
        assert m["share_many"] > 0.4 and m["tail_recall"] < 0.6, name  # about 30/38 and 8/38 expected
        assert m["seeds"] == 5 and m["tail_recall_std"] is not None, name  # a mean over the seeds' tie-breaks
    assert reports[1]["methods"] == methods
    assert "ties broken at random" in done.stdout


@pytest.mark.slow
def test_evaluate_uncertainty_ids_are_the_ids_of_items_csv(vlm, tmp_path):
    """A list in its own order: items.csv ids follow sorted paths, not list lines; an uncertainty
    file keyed by those ids reaches the right images."""
    root = make_set(tmp_path / "set", {"red": 4, "blue": 3})
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    (tmp_path / "list.txt").write_text("".join(f"{rel} {rel.split('/')[0]}\n" for rel in reversed(rels)))
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    args = ["evaluate", "--list", tmp_path / "list.txt", "--root", root, "--budget", "2", "-q"]
    first = run(*args, "--out", tmp_path / "e1", env=env)
    assert first.returncode == 0, first.stderr
    ids = {r["path"]: int(r["id"]) for r in read_csv(tmp_path / "e1" / "items.csv")}
    assert sorted(ids, key=ids.get) == rels  # ids in sorted path order, the list is reversed
    unc = {rel: round(0.1 * (k + 1), 3) for k, rel in enumerate(rels)}
    (tmp_path / "unc.jsonl").write_text("".join(json.dumps({"id": ids[rel], "uncertainty": unc[rel]}) + "\n"
                                                for rel in rels))
    second = run(*args, "--uncertainty", tmp_path / "unc.jsonl", "--out", tmp_path / "e2", env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "e2" / "evaluation.json").read_text())["uncertainty"]["matched"] == 7
    assert {r["path"]: float(r["uncertainty"]) for r in read_csv(tmp_path / "e2" / "items.csv")} == unc

    (tmp_path / "none.jsonl").write_text(json.dumps({"id": 99, "uncertainty": 0.5}) + "\n")
    missing = run(*args, "--uncertainty", tmp_path / "none.jsonl", "--out", tmp_path / "e3", env=env)
    assert missing.returncode == 2 and "ids are those of items.csv" in missing.stderr


# ------------------------------------------------------- the product's engine, offline
def test_evaluate_measures_the_order_mine_writes(vlm, tmp_path):
    """The same images with the same uncertainty: evaluate's pareto method picks the first K
    of mine's ranking, in mine's order (head diversity and tie-break included)."""
    root = make_set(tmp_path / "set", {"red": 14, "blue": 14, "green": 6, "yellow": 2, "purple": 2})
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    rng = random.Random(11)
    unc = {rel: round(rng.random(), 3) for rel in rels}
    with open(tmp_path / "unc.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "uncertainty"])
        writer.writerows(unc.items())
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"))
    budget = 9
    done = run("evaluate", "--images", root, "--uncertainty", tmp_path / "unc.csv", "--budget", budget,
               "--many", "10", "--few", "5", "--out", tmp_path / "eval", "-q", env=env)
    assert done.returncode == 0, done.stderr
    picked = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["methods"][
        "pareto_confirmed+uncertainty"]["ids"]
    assert len(picked) == budget

    # the same images as rows of their own, under the ids evaluate gave them
    items = read_csv(tmp_path / "eval" / "items.csv")
    assert len(items) == len(rels)
    (tmp_path / "rows.jsonl").write_text("".join(
        json.dumps({"id": int(r["id"]), "image": str(root / r["path"]), "uncertainty": unc[r["path"]]}) + "\n"
        for r in items))
    mined = run("mine", tmp_path / "rows.jsonl", "--out", tmp_path / "ranking.csv", "-q", env=env)
    assert mined.returncode == 0, mined.stderr
    assert "signals: novelty, uncertainty" in mined.stderr
    ranking = [int(r["id"]) for r in read_csv(tmp_path / "ranking.csv")]
    assert ranking[:budget] == picked
    assert [int(r["id"]) for r in items][:budget] == picked  # evaluate's own items.csv, the same order


def test_the_offline_engine_sends_nothing_to_the_label_studio_of_the_environment(tmp_path):
    """LABEL_STUDIO_URL and a key in the environment, uncertainty from predictions: the
    uncertainty is read from the export's own predictions and Label Studio gets no request."""
    export = [{"id": 10 + i, "data": {"text": f"a cat sleeping on a sofa number {i}"},
               "annotations": [], "predictions": [{"model_version": "classifier-2", "score": 0.5 + i / 40,
                                                   "result": []}]} for i in range(12)]
    export.append({"id": 40, "data": {"text": "a walrus juggling lanterns in a blizzard"},
                   "annotations": [], "predictions": []})
    (tmp_path / "export.json").write_text(json.dumps(export))
    with RecordingServer() as label_studio:
        env = clean_env(MODEL_DIR=str(tmp_path / "model"), LABEL_STUDIO_URL=label_studio.url,
                        LABEL_STUDIO_API_KEY="offline-test-token", UNCERTAINTY_SOURCE="prediction_score")
        done = run("mine", tmp_path / "export.json", "--out", tmp_path / "out.csv", "-q", env=env)
        assert done.returncode == 0, done.stderr
        assert label_studio.requests == []
    assert "offline-test-token" not in done.stderr
    rows = {int(r["id"]): r for r in read_csv(tmp_path / "out.csv")}
    assert len(rows) == 13 and all(r["error"] == "" for r in rows.values())
    assert rows[40]["uncertainty"] == ""  # no prediction: no uncertainty
    values = [float(rows[10 + i]["uncertainty"]) for i in range(12)]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]  # higher score, less uncertain


# ------------------------------------------------------------------- local model, s3
@pytest.mark.slow
def test_tiny_llava_through_the_command_line_offline(tmp_path):
    model = build_tiny_llava(tmp_path / "tiny-llava")
    root = make_set(tmp_path / "set", {"red": 3, "blue": 2})
    env = clean_env(VLM_MODEL=model, MODEL_DIR=str(tmp_path / "model"), KEYWORD_MODE="rules",
                    VLM_MAX_NEW_TOKENS="8", VLM_DEVICE="cpu")
    done = run("mine", root, "--out", tmp_path / "out.jsonl", "-q", env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert len(rows) == 5 and all(r["error"] is None and r["description"] for r in rows)
    assert sum(len(r["keywords"]) for r in rows) > 0


@pytest.fixture()
def s3():
    pngs = {f"set/red/{i}.png": png("red") for i in range(6)}
    pngs.update({f"set/yellow/{i}.png": png("yellow") for i in range(2)})
    pngs.update({"set/readme.txt": b"not an image", "other/blue.png": png("blue")})
    with moto_s3({"pics": pngs}) as served:
        yield served


@pytest.mark.slow
def test_s3_prefix_source(s3, vlm, tmp_path):
    endpoint, creds = s3
    env = clean_env(VLM_API_URL=vlm.base_url, MODEL_DIR=str(tmp_path / "model"), AWS_ENDPOINT_URL=endpoint, **creds)
    done = run("mine", "s3://pics/set/", "--out", tmp_path / "out.csv", "-q", env=env)
    assert done.returncode == 0, done.stderr
    rows = read_csv(tmp_path / "out.csv")
    assert len(rows) == 8 and all(r["image"].startswith("s3://pics/set/") for r in rows)
    assert {r["image"] for r in rows[:2]} == {"s3://pics/set/yellow/0.png", "s3://pics/set/yellow/1.png"}
    assert all(r["error"] == "" for r in rows)

    missing = run("mine", "s3://nobucket/x", "--out", tmp_path / "x.csv", env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
