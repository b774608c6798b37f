"""GET /report: the long tail as one self-contained HTML page.

Unit level with Flask's test client (the project is built through /predict, as
Label Studio builds it; the labeling progress against a real Label Studio), then a browser
test: the backend as a real server beside a real Label Studio, Debian's headless Chromium
renders the page (scripts/test.sh installs it), the rendered DOM must hold three non-empty
charts, the labeling progress before and after annotations, and Chromium's log no
JavaScript error.
VLMINE_UPDATE_SCREENSHOT=1 writes the two-signal screenshot to docs/report.png.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import random
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from backend.engine.engine import Engine
from backend.jobs.embedded import EmbeddedQueue
from backend.labelstudio.client import LabelStudioClient
from backend.server.app import create_app
from backend.server.report.data import NEXT_SHOWN
from backend.settings import Settings
from model import VLMineModel
from tests.support.backend_server import BackendServer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ('<View><Text name="text" value="$text"/><TextArea name="vlmine" toName="text"/>'
          '<Choices name="label" toName="text"><Choice value="common"/><Choice value="rare"/></Choices></View>')
XSS = "<script>alert(1)</script>"

SUBJECTS = ["cat", "dog", "man", "woman", "car", "bus", "bicycle", "truck", "child", "horse", "boat", "train",
            "bird", "cow", "sheep", "motorcycle", "umbrella", "skateboard", "kite", "surfboard", "elephant",
            "zebra", "pizza", "laptop", "clock", "vase", "teddy", "toaster", "tractor", "canoe", "scooter",
            "wheelchair", "goat", "donkey", "pelican", "tram", "forklift", "unicycle"]
VERBS = ["standing", "sitting", "parked", "lying", "waiting", "resting"]
PLACES = ["street", "park", "road", "sofa", "kitchen", "beach", "field", "table", "station", "river", "bridge",
          "garden", "market", "harbour", "forest", "desert", "rooftop", "tunnel", "glacier", "volcano", "vineyard",
          "lagoon", "quarry", "monastery", "lighthouse"]
THINGS = ["ball", "bag", "hat", "dog", "umbrella", "bottle", "phone", "book", "cup", "chair", "suitcase", "frisbee",
          "backpack", "guitar", "camera", "newspaper", "bench", "ladder", "basket", "helmet", "lantern", "flag",
          "bucket", "kettle", "violin", "parasol", "wheelbarrow", "telescope", "accordion", "harp", "globe", "anchor",
          "typewriter", "birdcage", "hourglass", "compass", "easel", "saxophone", "trophy", "sundial", "cauldron",
          "periscope", "metronome", "chandelier", "abacus", "gramophone", "barometer", "quill", "harpoon", "sextant"]
PLANTED = [
    "a giraffe wearing a tuxedo beside a lighthouse",
    "a hovercraft crossing a frozen glacier",
    "an astronaut holding a trombone in a cornfield",
    "a flamingo inside a yellow submarine",
    "a camel riding an escalator in a mall",
    "a penguin steering a gondola through a canal",
    "a walrus asleep on a trampoline",
    "an octopus juggling pineapples on a pier",
    "a llama wearing a sombrero at a rodeo",
    "a rhinoceros pulling a rickshaw past a pagoda",
]


def zipf_choice(rng: random.Random, items: list[str], s: float = 1.25) -> str:
    weights = [1.0 / (i + 1) ** s for i in range(len(items))]
    return rng.choices(items, weights)[0]


def long_tail_corpus(n: int, seed: int = 3) -> list[dict]:
    """Captions with Zipf-distributed nouns, planted oddities, a numeric uncertainty field."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        text = f"a {zipf_choice(rng, SUBJECTS)} {rng.choice(VERBS)} near the {zipf_choice(rng, PLACES)}"
        if rng.random() < 0.55:
            text += f" with a {zipf_choice(rng, THINGS, 1.1)}"
        tasks.append({"text": text, "uncertainty": round(rng.betavariate(2, 4), 4)})
    for text in PLANTED:
        tasks.insert(rng.randrange(len(tasks)), {"text": text, "uncertainty": round(rng.uniform(0.05, 0.95), 4)})
    return [{"id": i + 1, "data": data, "predictions": []} for i, data in enumerate(tasks)]


# ------------------------------------------------------------------------------ unit level
def make_app(tmp_path: Path, **overrides):
    settings = Settings.from_env({}, model_dir=str(tmp_path), rerank_delay=0.0, **overrides)
    engine = Engine(settings)
    queue = EmbeddedQueue(engine)
    app = create_app(settings, VLMineModel, engine=engine, queue=queue, start_workers=False)
    return app.test_client(), engine


def build_project(client, pid: int = 5) -> list[dict]:
    texts = ["a cat on the sofa", "a dog in the park", "a man riding a bicycle along the street"] * 12
    texts += ["a giraffe wearing a tuxedo", "a hovercraft beside a glacier", f"a zeppelin {XSS} over the harbour"]
    tasks = [{"id": i + 1, "data": {"text": t}, "predictions": []} for i, t in enumerate(texts)]
    tasks.append({"id": 100, "data": {"image": "s3://bucket/missing.jpg"}, "predictions": []})  # no text: fails
    resp = client.post("/predict", json={"tasks": tasks, "project": f"{pid}.1795911544", "label_config": CONFIG})
    assert resp.status_code == 200, resp.get_json()
    # any webhook carries the project's task count: 50 tasks in Label Studio, 40 seen so far
    resp = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": pid, "task_number": 50}})
    assert resp.status_code == 200, resp.get_json()
    return tasks


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Project 5, built once for the tests that only read it."""
    client, engine = make_app(tmp_path_factory.mktemp("report"))
    build_project(client)
    return client, engine


def card(page: str, key: str) -> str:
    m = re.search(rf'data-key="{key}"><b>([^<]*)</b>', page)
    assert m, f"no {key} card"
    return m.group(1)


def test_report_page_shows_the_long_tail(built):
    client, _ = built
    resp = client.get("/report?project=5")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert page.count("<svg") == 3
    # no second signal: novelty against the place in the queue
    assert 'aria-label="novelty against place in the queue"' in page
    # text stays text (svg.fonttype none), and no TeX leaks into tick labels
    assert "<text" in page and "mathdefault" not in page
    # the rarest keywords, with their df
    for word in ("giraffe", "tuxedo", "hovercraft", "glacier", "zeppelin"):
        assert f'data-v="{word}">{word}</td><td class="num" data-v="1">1</td>' in page, word
    # progress: 39 mined, 1 failed, 50 - 40 pending, and the failure's reason
    assert (card(page, "total"), card(page, "mined"), card(page, "failed"), card(page, "pending")) == (
        "50", "39", "1", "10")
    assert "task data has no text field" in page and "#100" in page
    # no Label Studio address known: plain ids, no links
    assert "/data?task=" not in page
    # self-contained: nothing from elsewhere
    assert not re.search(r'\s(?:src|href)="(?:https?:)?//', page)
    assert "@import" not in page and not re.search(r"url\((?!#)", page)  # only clip-path="url(#id)"


def test_report_escapes_task_text(built):
    client, _ = built
    resp = client.get("/report?project=5")
    page = resp.get_data(as_text=True)
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the page's own, and it carries the CSP nonce
    nonce = re.search(r"script-src 'nonce-([^']+)'", resp.headers["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in page
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


def test_links_to_label_studio_when_its_address_is_known(tmp_path):
    client, _ = make_app(tmp_path, label_studio_url="http://ls.example:8080/")
    build_project(client)
    page = client.get("/report?project=5").get_data(as_text=True)
    assert 'href="http://ls.example:8080/projects/5/data?task=37"' in page  # the giraffe


def test_links_carry_no_password_of_the_label_studio_url(tmp_path):
    client, _ = make_app(tmp_path, label_studio_url="https://admin:ls-pass-93@ls.example:8443/studio")
    build_project(client)
    page = client.get("/report?project=5").get_data(as_text=True)
    assert 'href="https://ls.example:8443/studio/projects/5/data?task=37"' in page
    assert "ls-pass-93" not in page and "admin:" not in page


def test_links_use_the_connection_label_studio_sent_in_setup(tmp_path):
    client, _ = make_app(tmp_path)
    build_project(client)
    resp = client.post("/setup", json={"project": "5.1795911544", "hostname": "http://studio.local:8080",
                                       "access_token": "abc123"})
    assert resp.status_code == 200, resp.get_json()
    page = client.get("/report?project=5").get_data(as_text=True)
    assert 'href="http://studio.local:8080/projects/5/data?task=38"' in page  # the hovercraft
    assert "abc123" not in page


def test_many_signals_draw_novelty_against_uncertainty(tmp_path):
    client, _ = make_app(tmp_path, uncertainty_source="field", uncertainty_field="u", signal_fields=["views"])
    rng = random.Random(2)
    tasks = [{"id": i + 1, "data": {"text": t, "u": rng.random(), "views": rng.randrange(100)}}
             for i, t in enumerate(["a cat on the sofa", "a dog in the park", "a kite over the beach"] * 5)]
    assert client.post("/predict", json={"tasks": tasks, "project": 4, "label_config": CONFIG}).status_code == 200
    page = client.get("/report?project=4").get_data(as_text=True)
    assert page.count("<svg") == 3 and 'aria-label="novelty against uncertainty"' in page
    assert "computed over all 3 signals (novelty, views, uncertainty)" in page


@pytest.mark.slow
def test_budget_marks_the_first_tasks(built):
    client, _ = built
    default = client.get("/report?project=5").get_data(as_text=True)
    assert "the first 2 to label" in default  # 5% of 39, rounded up
    page = client.get("/report?project=5&budget=7").get_data(as_text=True)
    assert "the first 7 to label" in page and "the first 7 tasks of the queue" in page
    assert "the first 39 to label" in client.get("/report?project=5&budget=1000").get_data(as_text=True)
    assert "the first 39 to label" in client.get("/report?project=5&budget=999999999999").get_data(as_text=True)
    assert "the first 3 to label" in client.get("/report?project=5&budget=" + "0" * 5000 + "3").get_data(as_text=True)


@pytest.mark.parametrize("query, status, fragment", [
    ("", 400, "'project' is required"),
    ("?project=", 400, "'project' is required"),
    ("?project=abc", 400, "'project'"),
    ("?project=0", 400, "positive"),
    ("?project=-3", 400, "'project'"),
    ("?project=999", 404, "unknown"),
    ("?project=5&budget=-1", 400, "'budget'"),
    ("?project=5&budget=lots", 400, "'budget'"),
    ("?project=99999999999999999999", 400, "at most 9223372036854775807"),
    ("?project=9223372036854775808", 400, "at most 9223372036854775807"),
    ("?project=" + "9" * 5000, 400, "at most"),
    ("?project=%C2%B2", 400, "'project'"),
    ("?project=5&budget=%C2%B2", 400, "whole number"),
    ("?project=5&budget=%D9%A3", 400, "whole number"),  # an Arabic-Indic three
    ("?project=5&budget=" + "9" * 5000, 400, "at most"),
    ("?project=5&budget=1" + "0" * 12, 400, "at most"),
])
def test_bad_parameters_get_json_errors(built, query, status, fragment):
    client, _ = built
    resp = client.get("/report" + query)
    assert resp.status_code == status
    assert resp.is_json and fragment in resp.get_json()["error"]


def test_a_project_with_nothing_mined_yet(tmp_path):
    client, _ = make_app(tmp_path)
    # Label Studio announced the project (20 tasks), and the one task sent so far failed
    client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 8, "task_number": 20}})
    resp = client.get("/report?project=8")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Nothing is mined yet" in page
    assert page.count("<svg") == 1  # the progress chart only
    client.post("/predict", json={"tasks": [{"id": 1, "data": {"other": "x"}}], "project": 8, "label_config": CONFIG})
    page = client.get("/report?project=8").get_data(as_text=True)
    assert "Nothing is mined yet" in page and "task data has no text field" in page
    assert card(page, "failed") == "1" and card(page, "pending") == "19"


def test_without_label_studio_the_progress_view_says_why(built):
    client, _ = built
    page = client.get("/report?project=5").get_data(as_text=True)
    assert 'id="labeling-unknown"' in page and "no Label Studio connection" in page
    assert 'id="budget-progress"' not in page
    assert "<th data-sort=\"num\">labeled</th>" not in page  # no column it cannot fill
    # one signal: the legend names the budget, not Pareto fronts
    assert "budget: the first 2 to label: 2" in page and "the rest of the queue: 37" in page
    assert "front 0" not in page and "fronts 3+" not in page
    assert "no Pareto fronts to tell apart" in page


def test_an_unreachable_label_studio_leaves_the_rest_of_the_page(tmp_path):
    from tests.support.ports import free_port

    client, _ = make_app(tmp_path, label_studio_url=f"http://127.0.0.1:{free_port()}",
                         label_studio_api_key="ls-key-5150")
    build_project(client)
    resp = client.get("/report?project=5")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'id="labeling-unknown"' in page and "could not be read now" in page and "ConnectError" in page
    assert "giraffe" in page and page.count("<svg") == 3
    assert "ls-key-5150" not in page


def annotate(ls, task_id: int, choice: str = "rare") -> None:
    result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}]
    ls.api("POST", f"/api/tasks/{task_id}/annotations/", json={"result": result})


@pytest.mark.e2e
def test_labeling_progress_is_read_from_label_studio(label_studio, tmp_path):
    """The budget's labeled share, the next tasks, the rarest keywords covered and the one-signal
    chart coloured by the queue, all as Label Studio has them now; the stream line in plain
    words (real Label Studio)."""
    from tests.support.label_studio import create_project

    ls = label_studio
    texts = ["a cat on the sofa", "a dog in the park", "a man riding a bicycle along the street"] * 12
    texts += ["a giraffe wearing a tuxedo", "a hovercraft beside a glacier", "a zeppelin over the harbour"]
    pid, tids = create_project(ls, "report progress", CONFIG, [{"text": t} for t in texts])
    client, engine = make_app(tmp_path, label_studio_url=ls.base_url, label_studio_api_key=ls.token)
    tasks = [{"id": t, "data": {"text": x}} for t, x in zip(tids, texts)]
    assert client.post("/predict", json={"tasks": tasks, "project": pid, "label_config": CONFIG}).status_code == 200
    order, _ = engine.ranker.rank(pid)
    budget = order[:6]

    page = client.get(f"/report?project={pid}&budget=6").get_data(as_text=True)
    assert "<b>0</b> of <b>6</b> tasks of the budget labeled (0%)" in page
    next_up = [int(t) for t in re.findall(r"#(\d+)</a> \(place", page)]
    assert next_up == budget
    assert "<b>0</b> of the <b>13</b> rarest keywords are covered" in page

    giraffe = tids[texts.index("a giraffe wearing a tuxedo")]
    zeppelin = tids[texts.index("a zeppelin over the harbour")]
    # two budget tasks and the giraffe, never the zeppelin: its row must read "0 of 1" below
    labeled = {*[t for t in budget if t not in (giraffe, zeppelin)][:2], giraffe}
    for task in labeled:
        annotate(ls, task)
    page = client.get(f"/report?project={pid}&budget=6").get_data(as_text=True)
    done = len(labeled & set(budget))
    assert f"<b>{done}</b> of <b>6</b> tasks of the budget labeled ({100 * done / 6:.0f}%)" in page
    assert [int(t) for t in re.findall(r"#(\d+)</a> \(place", page)] == [t for t in budget if t not in labeled]
    # the keywords of the labeled tasks are the ones covered
    keywords, _ = engine.explainer.rarest_keywords(pid, sorted(labeled))
    covered = {k for t in labeled for k in keywords[t]}
    assert f"<b>{len(covered)}</b> of the <b>13</b> rarest keywords are covered" in page
    chips = {name: bool(mark) for mark, name in re.findall(r'<span class="chip( done)?">([^<]+)</span>', page)}
    assert {name for name, done_ in chips.items() if done_} == covered and "giraffe" in covered
    assert len(chips) == 13
    # the rare table: how many of each keyword's tasks are labeled
    assert re.search(r'data-v="giraffe">giraffe</td><td class="num" data-v="1">1</td>'
                     r'<td class="num done" data-v="1">1 of 1</td>', page)
    assert re.search(r'data-v="zeppelin">zeppelin</td><td class="num" data-v="1">1</td>'
                     r'<td class="num" data-v="0">0 of 1</td>', page)
    # one signal: the chart is coloured by the queue and Label Studio's labeled state
    assert f"budget, labeled: {done}" in page and f"budget, still to label: {6 - done}" in page
    assert "front 0" not in page

    # prelabeling turned off and the sampling changed: put back, and said in plain words
    engine.rerank(pid)
    ls.api("PATCH", f"/api/projects/{pid}", json={"show_collab_predictions": False,
                                                   "sampling": "Sequential sampling"})
    assert engine.rerank(pid)["stream_restored"] == ["model_version", "sampling"]
    page = client.get(f"/report?project={pid}").get_data(as_text=True)
    said = html.unescape(page.split('id="stream-restored">')[1].split("</span>")[0])
    assert re.fullmatch(r"On \d{4}-\d\d-\d\d at \d\d:\d\d UTC, prelabeling had been turned off \(Settings \u2192 "
                        r"Annotation \u2192 \u201cUse predictions to prelabel tasks\u201d\); the backend turned it back "
                        r"on; the task sampling had been changed to \u201cSequential sampling\u201d; the backend set it "
                        r"back to \u201cUncertainty sampling\u201d, so that \u201cLabel All Tasks\u201d keeps serving "
                        r"the rarest tasks first\.", said), said
    assert "project.model_version" not in page and "put back" not in page
    # another model's version chosen for prelabeling (Label Studio offers only versions it holds): said so
    ls.api("POST", "/api/predictions/", json={"task": tids[0], "result": [], "score": 0.5, "model_version": "yolo-v8"})
    ls.api("PATCH", f"/api/projects/{pid}", json={"model_version": "yolo-v8"})
    assert engine.rerank(pid)["stream_restored"] == ["model_version"]
    page = client.get(f"/report?project={pid}").get_data(as_text=True)
    said = html.unescape(page.split('id="stream-restored">')[1].split("</span>")[0])
    assert "another model version had been chosen for prelabeling; the backend chose its own again" in said
    assert "sampling" not in said and "yolo" not in said


def test_report_is_behind_basic_auth(tmp_path):
    client, _ = make_app(tmp_path, basic_auth_user="ann", basic_auth_pass="s3cret")
    good = {"Authorization": "Basic " + base64.b64encode(b"ann:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"ann:nope").decode()}
    resp = client.post("/predict", headers=good, json={"tasks": [{"id": 1, "data": {"text": "a kite"}}],
                                                       "project": 3, "label_config": CONFIG})
    assert resp.status_code == 200
    for headers in ({}, bad):
        resp = client.get("/report?project=3", headers=headers)
        assert resp.status_code == 401 and resp.is_json
        assert "Basic" in resp.headers["WWW-Authenticate"]
    assert client.get("/report?project=3", headers=good).status_code == 200


def test_big_projects_are_subsampled_and_charts_stay_small():
    from backend.server.report import charts

    rng = np.random.default_rng(1)
    n = 60_000
    novelty, uncertainty = rng.gamma(2.0, 1.0, n), rng.random(n)
    front = np.minimum(rng.geometric(0.02, n) - 1, 40)
    position = rng.permutation(n)
    with charts.chart_rendering():
        svg, shown, note = charts.scatter_chart(novelty, uncertainty, front, position, budget=3000,
                                                y_label="uncertainty", is_place=False, n_signals=2)
        front0 = int((front == 0).sum())
        assert shown == front0 + charts.BUDGET_CAP + charts.SCATTER_SAMPLE < n
        assert note.startswith(f"{shown:,} of 60,000 tasks drawn: all of front 0, and a random sample of 1,000 of ")
        assert len(svg) < 450_000, len(svg)
        # a small project is drawn whole
        svg, shown, note = charts.scatter_chart(novelty[:900], uncertainty[:900], front[:900],
                                                np.argsort(np.argsort(position[:900])), budget=45,
                                                y_label="uncertainty", is_place=False, n_signals=2)
        assert (shown, note) == (900, "")
        # a huge vocabulary: the frequency curve keeps few points
        df = np.sort(np.maximum(1, (200_000 / np.arange(1, 300_001)).astype(np.int64)))[::-1]
        curve = charts.frequency_chart(df, [("person", int(df[0]))])
        assert len(curve) < 200_000, len(curve)
        assert "person" in curve


# ------------------------------------------------------------------------------ browser
CHROMIUM = "/usr/bin/chromium"
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught")


def chromium(args: list[str], url: str, profile: Path, timeout: float = 90) -> tuple[str, str]:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.fail("headless Chromium is missing: scripts/test.sh installs it (apt-get install chromium)")
    cmd = [CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"), "--headless", "--no-sandbox",
           "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr",
           "--v=0", *args, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr


def js_problems(log: str) -> list[str]:
    """Console output and uncaught errors in Chromium's log: the report page logs nothing."""
    return [line for line in log.splitlines() if CONSOLE.search(line)]


class Charts(HTMLParser):
    """Each <svg> of the DOM and how many drawn elements (path, use, circle, rect, text) it holds."""

    DRAWN = {"path", "use", "circle", "rect", "text", "polyline", "line"}

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[dict] = []
        self.depth = 0
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.body = dict(attrs)
        if tag == "svg":
            if self.depth == 0:
                self.charts.append({"label": dict(attrs).get("aria-label"), "drawn": 0})
            self.depth += 1
        elif self.depth and tag in self.DRAWN:
            self.charts[-1]["drawn"] += 1

    def handle_startendtag(self, tag, attrs):
        if self.depth and tag in self.DRAWN:
            self.charts[-1]["drawn"] += 1

    def handle_endtag(self, tag):
        if tag == "svg" and self.depth:
            self.depth -= 1


def test_chromium_log_shows_javascript_errors(tmp_path):
    """The detector itself: a page with a console error and an uncaught one is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>console.error('bad');"
                    "notDefinedAnywhere();</script></body></html>")
    dom, log = chromium(["--dump-dom"], page.as_uri(), tmp_path / "profile")
    assert "<p>x</p>" in dom
    problems = js_problems(log)
    assert any("'bad'" in p or '"bad"' in p for p in problems), log[-2000:]
    assert any("Uncaught ReferenceError" in p for p in problems), log[-2000:]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.mark.e2e
@pytest.mark.parametrize("signals", ["novelty", "novelty+uncertainty"])
def test_report_renders_in_chromium(signals, label_studio, tmp_path):
    """The page as an admin meets it, with a real Label Studio behind the backend: charts drawn,
    no script error, labeling progress before and after annotators label the next tasks it
    lists, and the stream line in plain words after prelabeling was turned off."""
    from tests.support.label_studio import create_project

    ls = label_studio
    corpus = long_tail_corpus(420)
    pid, tids = create_project(ls, f"report in chromium ({signals})", CONFIG, [t["data"] for t in corpus])
    env = {"MODEL_DIR": str(tmp_path / "model"), "LABEL_STUDIO_URL": ls.base_url, "LABEL_STUDIO_API_KEY": ls.token,
           "LOG_LEVEL": "WARNING", "RERANK_DELAY": "0", "REDIS_URL": ""}
    if signals == "novelty+uncertainty":
        env.update(UNCERTAINTY_SOURCE="field", UNCERTAINTY_FIELD="uncertainty")
    backend = BackendServer(env, tmp_path / "backend.log")
    try:
        tasks = [{"id": t, "data": row["data"]} for t, row in zip(tids, corpus)]
        tasks += [{"id": 10**6 + i, "data": {"image": f"s3://photos/missing-{i}.jpg"}} for i in range(3)]
        for i in range(0, len(tasks), 100):
            resp = requests.post(backend.url + "/predict", timeout=120,
                                 json={"tasks": tasks[i:i + 100], "project": pid, "label_config": CONFIG})
            assert resp.status_code == 200, resp.text
        requests.post(backend.url + "/webhook", timeout=30, json={
            "action": "ANNOTATION_CREATED", "project": {"id": pid, "task_number": len(tasks) + 57}})
        url = f"{backend.url}/report?project={pid}"

        dom, log = chromium(["--dump-dom"], url, tmp_path / "profile")
        assert not js_problems(log), "\n".join(js_problems(log))
        parser = Charts()
        parser.feed(dom)
        second = "uncertainty" if signals == "novelty+uncertainty" else "place in the queue"
        assert [c["label"] for c in parser.charts] == [
            "keyword frequency curve", f"novelty against {second}", "mining progress"]
        assert all(c["drawn"] >= 10 for c in parser.charts), parser.charts
        assert parser.body.get("data-ready") == "3", "the page's script did not run"
        assert "giraffe" in dom and "tuxedo" in dom
        assert f'href="{ls.base_url}/projects/{pid}/data?task=' in dom
        budget = int(re.search(r"<b>0</b> of <b>(\d+)</b> tasks of the budget labeled", dom).group(1))
        assert budget == math.ceil(0.05 * len(corpus))
        next_up = [int(t) for t in re.findall(r"#(\d+)</a> \(place", dom)]
        assert len(next_up) == NEXT_SHOWN
        if signals == "novelty":
            assert f"budget, still to label: {budget}" in dom and "front 0" not in dom
        else:
            assert "front 0 (no task beats it)" in dom

        # annotators label the first three it lists
        for task in next_up[:3]:
            annotate(ls, task, "rare")
        # prelabeling turned off once the backend has written its priorities; Label Studio's next
        # /setup call (opening the model settings, or the labeling view) has the backend put it back
        client = LabelStudioClient(ls.base_url, ls.token)
        wait_until(lambda: str(client.get_project(pid).get("model_version") or "").startswith("vlmine-text-"),
                   120, "the first write-back")
        live = client.get_project(pid)["model_version"]
        ls.api("PATCH", f"/api/projects/{pid}", json={"show_collab_predictions": False})
        assert requests.post(backend.url + "/setup", timeout=30, json={
            "project": f"{pid}.1", "schema": CONFIG}).status_code == 200
        wait_until(lambda: client.get_project(pid).get("model_version") == live, 60, "the stream's repair")

        dom, log = chromium(["--dump-dom"], url, tmp_path / "profile")
        assert not js_problems(log), "\n".join(js_problems(log))
        assert f"<b>3</b> of <b>{budget}</b> tasks of the budget labeled" in dom
        assert "budget, labeled: 3" in dom and f"budget, still to label: {budget - 3}" in dom
        still = [int(t) for t in re.findall(r"#(\d+)</a> \(place", dom)]
        assert still[:NEXT_SHOWN - 3] == next_up[3:] and not set(still) & set(next_up[:3])
        assert "prelabeling had been turned off" in html.unescape(dom)
        assert "the backend turned it back on" in dom and "project.model_version" not in dom

        # the README's picture shows the two-signal page
        update = os.environ.get("VLMINE_UPDATE_SCREENSHOT") == "1" and signals == "novelty+uncertainty"
        shot = ROOT / "docs" / "report.png" if update else tmp_path / "report.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        _, log = chromium([f"--screenshot={shot}", "--window-size=1280,2600", "--hide-scrollbars"], url,
                          tmp_path / "profile2")
        assert not js_problems(log), "\n".join(js_problems(log))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    finally:
        backend.stop()


def test_budget_tasks_in_a_sampled_front_0_are_all_drawn():
    from backend.server.report import charts

    n = charts.FRONT0_CAP + 5_000
    front = np.zeros(n, dtype=np.int64)  # one huge front 0: it is sampled
    picked = np.zeros(n, dtype=bool)
    picked[np.random.default_rng(2).choice(n, 500, replace=False)] = True  # the budget, inside front 0
    shown, full, sampled = charts.points_to_draw(front, picked)
    assert int(shown.sum()) == charts.FRONT0_CAP and sampled and not full
    assert shown[picked].all()  # every ring the legend promises is there


@pytest.mark.slow
def test_object_view_names_the_rarest_objects_without_loading_an_image(tmp_path):
    """With object mining on, the page gains the object scope's long tail and the tasks whose
    rarest object is rarest: the planted trailers, with label, score, keywords and where the
    box sits, drawn from the recorded box (the page still loads nothing)."""
    from tests.support.fake_openai import FakeOpenAI
    from tests.support.image_server import ImageServer
    from tests.support.street_scenes import OBJECT_CONFIG, STREET_DESCRIPTIONS, detector_prediction, street_scene

    rare = {4, 11, 17}
    scenes = {t: street_scene(500 + t, rare=t in rare) for t in range(1, 21)}
    images = ImageServer({f"/s{t}.png": s.png for t, s in scenes.items()})
    try:
        with FakeOpenAI(by_colour=STREET_DESCRIPTIONS) as vlm:
            client, engine = make_app(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                      keyword_mode="rules", image_allow_private_networks=True, object_mining=True)
            tasks = [{"id": t, "data": {"image": f"{images.url}/s{t}.png"},
                      "predictions": [detector_prediction(s)]} for t, s in scenes.items()]
            resp = client.post("/predict", json={"tasks": tasks, "project": "8.1795911544",
                                                 "label_config": OBJECT_CONFIG})
            assert resp.status_code == 200, resp.get_json()
            requests_before, fetched_before = vlm.calls, len(images.requests)
            page = client.get("/report?project=8").get_data(as_text=True)
            assert vlm.calls == requests_before  # the report describes nothing again
            assert images.requests[fetched_before:] == []  # nor downloads an image: the crops were kept
    finally:
        images.stop()
    section = page[page.index('<section id="objects">'):]
    section = section[:section.index("</section>")]
    # 20 scenes x 3 cars + 3 trailers are the mined objects; the whole images are counted apart
    assert "how many of the 63 objects and 20 scenes (whole images) hold it" in section, section[:600]
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>#(\d+)</td><td class=\"kw\">([^<]*)</td>"
                      r"<td class=\"num\">([^<]*)</td><td>([^<]*)</td>", section)
    # each row carries its object's crop, kept as a thumbnail when it was mined: red trailers, blue cars
    found = re.findall(r'<img class="crop" src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)" '
                       r'alt="crop of [a-z]+ in task (\d+)">', section)
    crops = {task: data for data, task in found}
    assert len(found) == len(rows) and set(crops) == {t for _, t, *_ in rows}, section[:2000]
    for _, task, label, _, _ in rows:
        image = Image.open(io.BytesIO(base64.b64decode(crops[task])))
        assert image.format == "JPEG" and max(image.size) == 64
        w, h = image.size
        middle = list(image.convert("RGB").crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4)).getdata())
        r, g, b = (sum(p[i] for p in middle) / len(middle) for i in range(3))
        assert (r > 150 and g < 90 and b < 90) if label == "trailer" else (b > 150 and r < 90), (task, r, g, b)
    assert {int(t) for _, t, *_ in rows[:3]} == rare, rows
    for place, task, label, score, words in rows[:3]:
        assert label == "trailer" and score == "0.90" and "hitch (3)" in words and int(place) <= 3
        box = scenes[int(task)].patch.percent()  # 96 x 72 pixels of 640 x 480: 15% x 15%
        assert f"x {box['x']:.0f}%, y {box['y']:.0f}%, 15% \u00d7 15%" in section
        assert f'<rect x="{box["x"] / 100 * 96:.1f}" y="{box["y"] / 100 * 72:.1f}" width="14.4" height="10.8"' in section
    assert all(label == "car" for _, _, label, _, _ in rows[3:])
    assert section.count('<svg class="where"') == len(rows)
    assert not re.search(r'\s(?:src|href)="(?:https?:)?//', page)

    # a thumbnail kept for another slot than the task's rarest object now is not shown (the sketch stays)
    task = int(rows[0][1])
    slot, jpeg = engine.view(8).thumbnails([task])[task]
    engine.store.put_thumbnails(8, {task: (slot + 1, jpeg)})
    again = client.get("/report?project=8").get_data(as_text=True)
    assert f'alt="crop of trailer in task {task}"' not in again
    assert again.count('<img class="crop"') == len(rows) - 1 and again.count('<svg class="where"') == len(rows)


@pytest.mark.slow
def test_no_object_view_without_object_mining(built):
    client, _ = built
    page = client.get("/report?project=5").get_data(as_text=True)
    assert 'id="objects"' not in page and 'id="rare-objects"' not in page
