"""What annotators meet, in a real browser: Chromium (driven by Playwright) against the suite's
real Label Studio 1.23.2, with the backend connected to a text project of 200 tasks, 5 of
them planted rare ones.

"Label All Tasks" is pressed as an annotator presses it (its request is checked to be the
one the UI really sends), the rare tasks come first while they are labeled, the stream stays
rare-first after "Use predictions to prelabel tasks" is turned off, a submitted annotation
holds what the annotator chose and wrote (a note typed in the backend's TextArea stays, the
explanation Label Studio copied in goes), the explanation shows without an input box, the tab
shows the text without scrolling and, after labeling, only the tasks still to label, and the
task quick view shows the score as a percentage.

Screenshots are written to ``VLMINE_ARTIFACTS`` (default ``<repo>/test-artifacts``), in a
folder the test prints.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright

from backend.labelstudio.client import LabelStudioClient
from tests.support.backend_server import BackendServer, wait_for
from tests.support.text_corpus import CONFIG, PLANTED, corpus

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1600, "height": 1000}
ROOT = Path(__file__).resolve().parents[2]
#: what an annotator types into the backend's TextArea
NOTE = "annotator note: looks like a tram"


def artefacts_dir(name: str) -> Path:
    base = Path(os.environ.get("VLMINE_ARTIFACTS") or ROOT / "test-artifacts")
    out = base / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    print(f"\n[browser test] screenshots in {out}")
    return out


@pytest.fixture()
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: scripts/test.sh installs it (apt-get install chromium)")
    with sync_playwright() as p:
        # the system Chromium, no browser download (no network here)
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(page, ls) -> None:
    page.goto(ls.base_url + "/user/login/")
    page.fill("input[name=email]", ls.email)
    page.fill("input[name=password]", ls.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)


def is_next_task(request) -> bool:
    return "/api/dm/actions" in request.url and "id=next_task" in request.url


def press_label_all_tasks(page, ls, pid: int, tab: int, shots: Path, name: str) -> dict:
    """Open the tab in the Data Manager, press "Label All Tasks"; returns the task it served."""
    page.goto(f"{ls.base_url}/projects/{pid}/data?tab={tab}")
    button = page.get_by_role("button", name="Label All Tasks")
    button.wait_for(timeout=60_000)
    with page.expect_response(lambda r: is_next_task(r.request), timeout=60_000) as answer:
        button.click()
    request = answer.value.request
    # exactly what the real button sends: the tab's ordering does not travel with it
    assert request.method == "POST", request.method
    assert f"project={pid}" in request.url and f"tabID={tab}" in request.url, request.url
    assert request.post_data_json == {"project": str(pid)}, request.post_data
    task = answer.value.json()
    shown(page, task, shots / name)
    return task


def shown(page, task: dict, shot: Path) -> None:
    """The labeling view shows the served task's text; a screenshot is kept."""
    page.get_by_text(task["data"]["text"], exact=True).first.wait_for(timeout=60_000)
    page.wait_for_timeout(500)  # let the regions panel settle before the screenshot
    page.screenshot(path=str(shot))


def submit(page, choice: str, shots: Path, name: str) -> dict:
    """Choose ``choice`` and press Submit; returns the next task the stream serves."""
    # the choice's label carries its hotkey: "rare[2]"
    page.get_by_text(re.compile(rf"^{re.escape(choice)}\s*(\[\d+\])?$")).first.click()
    with page.expect_response(lambda r: is_next_task(r.request), timeout=60_000) as answer:
        page.get_by_role("button", name="Submit").first.click()
    task = answer.value.json()
    shown(page, task, shots / name)
    return task


def test_label_all_tasks_serves_the_long_tail_first_in_chromium(label_studio, browser, tmp_path):
    ls = label_studio
    shots = artefacts_dir("label-all-tasks")
    backend = BackendServer(
        {"MODEL_DIR": str(tmp_path / "model"), "LABEL_STUDIO_URL": ls.base_url,
         "LABEL_STUDIO_API_KEY": ls.token, "RERANK_DELAY": "0.5"},
        tmp_path / "backend.log",
    )
    try:
        client = LabelStudioClient(ls.base_url, ls.token)
        pid = ls.api("POST", "/api/projects", json={"title": "browser e2e", "label_config": CONFIG}).json()["id"]
        ls.api("POST", "/api/ml", json={"project": pid, "url": backend.url, "title": "VLMine"})
        texts, planted_idx = corpus(195)
        ls.api("POST", f"/api/projects/{pid}/import", json=[{"text": t} for t in texts])
        ids = sorted(t["id"] for t in client.iter_tasks(pid))
        assert len(ids) == 200
        planted = {ids[i] for i in planted_idx}

        def metrics() -> dict:
            return requests.get(backend.url + "/metrics", timeout=5).json()

        def ready() -> bool:
            m = metrics()
            if m["jobs"]["counts"].get("queued") or m["jobs"]["counts"].get("running"):
                return False
            version = m["projects"][str(pid)]["version"]
            project = client.get_project(pid)
            held = {p["task"] for p in client.list_predictions(pid, version)}
            return held == set(ids) and project["model_version"] == version

        wait_for(ready, 240, "every task to hold a prediction of the live version", backend)
        version = metrics()["projects"][str(pid)]["version"]
        project = client.get_project(pid)
        assert project["sampling"] == "Uncertainty sampling"
        tab = next(v for v in ls.api("GET", "/api/dm/views", params={"project": pid}).json()
                   if v["data"].get("title") == "Long-tail first")

        page = browser.new_page(viewport=VIEWPORT)
        log_in(page, ls)

        # --- the tab: the planted tasks on top, their text and the score on screen without scrolling
        page.goto(f"{ls.base_url}/projects/{pid}/data?tab={tab['id']}")
        for text in PLANTED:
            cell = page.get_by_text(text, exact=True).first
            cell.wait_for(timeout=60_000)
            box = cell.bounding_box()
            assert box is not None
            assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"], (text, box)
            assert box["y"] + box["height"] <= VIEWPORT["height"], (text, box)
        header = page.get_by_text("Prediction score", exact=True).first
        score_box = header.bounding_box()
        assert score_box is not None and score_box["x"] + score_box["width"] <= VIEWPORT["width"], score_box
        assert page.get_by_text("Inner ID", exact=True).count() == 0  # housekeeping hidden, as in Default
        page.screenshot(path=str(shots / "01-tab.png"))

        # --- what the admin sees in Settings (sampling) after the backend set it
        page.goto(f"{ls.base_url}/projects/{pid}/settings")
        save = page.get_by_role("button", name="Save")
        save.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "02-settings.png"), full_page=True)
        # the community edition shows Uncertainty sampling as an Enterprise option: saving the
        # page must not leave the stream by id (Label Studio keeps it, or the backend puts it back)
        with page.expect_request(lambda r: r.method == "PATCH" and f"/api/projects/{pid}" in r.url) as saved:
            save.click()
        print(f"[browser test] General settings' Save sends: {saved.value.post_data}")
        page.wait_for_timeout(1000)
        wait_for(lambda: client.get_project(pid)["sampling"] == "Uncertainty sampling", 30,
                 "the sampling to be Uncertainty sampling after the settings page was saved", backend)

        # --- "Use predictions to prelabel tasks" turned off: Label Studio empties project.model_version
        # (the settings page sends this PATCH; the server blanks the version whenever it carries false)
        ls.api("PATCH", f"/api/projects/{pid}", json={"show_collab_predictions": False})
        wait_for(lambda: client.get_project(pid)["model_version"] == version, 30,
                 "the backend to put project.model_version back after prelabeling was turned off", backend)
        m = metrics()
        assert m["counters"].get("stream_restored", 0) >= 1
        assert "model_version was empty" in (m["projects"][str(pid)]["stream_restored"] or "")
        assert client.get_project(pid)["show_collab_predictions"] is False  # the admin's choice is kept

        # the stream is still rare-first, and nothing is prefilled: the backend's TextArea shows its
        # empty input, and an annotator types a note there
        first = press_label_all_tasks(page, ls, pid, tab["id"], shots, "03-first-task-prelabeling-off.png")
        assert first["id"] in planted, (first["id"], first["data"])
        assert page.get_by_text("Rarest keywords", exact=False).count() == 0
        note_box = page.locator("[data-testid=textarea-input]")
        assert note_box.count() == 1
        note_box.first.fill(NOTE)
        note_box.first.press("Enter")  # adds the line; maxSubmissions="1" then hides the input
        page.get_by_text(NOTE, exact=False).first.wait_for(timeout=30_000)
        assert page.locator("[data-testid=textarea-input]").count() == 0
        page.screenshot(path=str(shots / "03b-note-typed.png"))
        second = submit(page, "rare", shots, "04-second-task.png")
        assert second["id"] in planted and second["id"] != first["id"]

        # --- prelabeling back on: the explanation is shown, and stays out of the annotation
        ls.api("PATCH", f"/api/projects/{pid}", json={"show_collab_predictions": True})
        wait_for(lambda: client.get_project(pid)["model_version"] == version, 30,
                 "project.model_version to be the live version", backend)
        again = press_label_all_tasks(page, ls, pid, tab["id"], shots, "05-second-task-prelabeled.png")
        assert again["id"] == second["id"]  # locked for this annotator until labeled
        page.get_by_text("Rarest keywords", exact=False).first.wait_for(timeout=30_000)
        # the explanation reads without a key, and no input box sits above it (maxSubmissions="1")
        assert page.get_by_text(re.compile(r"Rarest keywords: .*: 1 task")).count() >= 1
        assert page.locator("[data-testid=textarea-input]").count() == 0
        third = submit(page, "rare", shots, "06-third-task.png")
        assert third["id"] in planted and third["id"] not in (first["id"], second["id"])

        # the annotation holds what the annotator chose and wrote: the copied explanation was
        # removed, the typed note stays
        def annotation_of(task_id: int) -> list[dict]:
            rows = ls.api("GET", f"/api/tasks/{task_id}/annotations/").json()
            return rows[0]["result"] if len(rows) == 1 else []

        wait_for(lambda: annotation_of(second["id"]) and all(r["from_name"] != "vlmine"
                                                             for r in annotation_of(second["id"])),
                 30, "the backend's explanation to leave the submitted annotation", backend)
        assert [(r["from_name"], r["value"]) for r in annotation_of(second["id"])] == [
            ("label", {"choices": ["rare"]})]
        assert sorted((r["from_name"], r["value"].get("choices") or r["value"].get("text"))
                      for r in annotation_of(first["id"])) == [("label", ["rare"]), ("vlmine", [NOTE])]
        assert metrics()["counters"].get("explanations_removed", 0) >= 1  # Label Studio had copied it in

        # --- the tab after labeling: the labeled tasks left it, the rare ones still to label are on top
        labeled = {first["id"], second["id"]}
        in_tab = [t["id"] for t in client.tasks_in_view(tab["id"])]
        assert len(in_tab) == len(ids) - len(labeled) and not labeled & set(in_tab)
        assert set(in_tab[:len(planted) - len(labeled)]) == planted - labeled, in_tab[:5]
        page.goto(f"{ls.base_url}/projects/{pid}/data?tab={tab['id']}")
        by_id = {t: texts[i] for i, t in enumerate(ids)}
        for task in planted - labeled:
            page.get_by_text(by_id[task], exact=True).first.wait_for(timeout=60_000)
        for task in labeled:
            assert page.get_by_text(by_id[task], exact=True).count() == 0, by_id[task]
        page.screenshot(path=str(shots / "07-tab-after-labeling.png"))
        # the filter that hides them is the admin's to see and remove
        page.get_by_role("button", name=re.compile("^Filters")).first.click()
        page.get_by_text("Completed", exact=True).first.wait_for(timeout=30_000)
        page.screenshot(path=str(shots / "08-tab-filter.png"))
        page.keyboard.press("Escape")

        # --- the task quick view shows the score as a percentage: a place in the queue
        top = client.tasks_in_view(tab["id"], limit=1)[0]
        # two decimals of the percentage; a score such as 1/32 (3.125%) sits on the half, which
        # the page's JavaScript rounds up and Python's formatting down, so either is accepted
        hundredths = float(top["predictions_score"]) * 10_000
        percentages = sorted({f"{math.floor(hundredths + 1e-6) / 100:.2f}", f"{math.ceil(hundredths - 1e-6) / 100:.2f}"})
        shown_score = re.compile("(" + "|".join(re.escape(v) for v in percentages) + ")%")
        page.get_by_text(by_id[top["id"]], exact=True).first.click()
        page.get_by_text(shown_score).first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "09-quick-view-score.png"))
        print(f"[browser test] the quick view shows task {top['id']}'s score "
              f"{top['predictions_score']} as one of {percentages!r} percent")

        # the report page says how the stream works and what was put back
        report = requests.get(backend.url + f"/report?project={pid}", timeout=60).text
        assert "Uncertainty sampling" in report
        assert "prelabeling had been turned off" in report and "turned it back on" in report
        assert ls.token not in backend.log_text()
    finally:
        backend.stop()
