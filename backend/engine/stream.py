"""What annotators meet in Label Studio: the project's own labeling stream, the tab, and
what a submitted annotation keeps.

Why the project's sampling, not only the tab: Label Studio 1.23.2's "Label All Tasks"
button (its default "all tasks" mode) sends ``POST /api/dm/actions?id=next_task&tabID=T``
with the body ``{"project": "P"}`` only, so the tab's ordering never reaches the server and
the project's *sampling* decides (Sequential: by id). With ``sampling = "Uncertainty
sampling"`` (accepted through the API by the community edition) the stream
(``projects/functions/next_task.py``, ``_try_uncertainty_sampling``) keeps the unlabeled
tasks holding a prediction of ``project.model_version`` and serves the one with the
LOWEST score that no other annotator has locked. So with LABEL_STREAM=uncertainty the
backend writes the scores reversed (the label-first task lowest), orders its tab ascending
to match, and keeps the sampling and ``project.model_version`` where the stream needs them.

Two of Label Studio's own settings break that queue silently, so :class:`StreamGuard`
checks them at every chance it gets (each re-rank, every webhook, /setup) and puts them
back, saying once why: turning off "Use predictions to prelabel tasks" sets
``model_version`` to ``''`` (and choosing another model in Settings sets another one), and
the sampling may be changed in Settings. Label Studio accepts the model version back while
prelabeling stays off: the stream is then rare-first and the labeling view shows no
prediction (annotators start from an empty annotation).

``prediction.cluster`` is left empty on purpose: Uncertainty sampling first orders tasks
by how many tasks the annotator already labeled in the same cluster, so any cluster would
put one task of every group ahead of the second task of any group, common groups
included; and the bulk prediction import (the only write that scales) drops the field.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Collection, Mapping

from ..errors import LabelConfigError
from ..labelstudio.config import LabelConfig
from ..versions import is_own_version
from . import wording

log = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"
SCORE_ASCENDING = ["tasks:predictions_score"]
SCORE_DESCENDING = ["-tasks:predictions_score"]
SCORE_COLUMN = "predictions_score"
#: how often /setup (called before every /predict and every model-card view) may look
SETUP_CHECK_EVERY_S = 30.0


def tab_ordering(settings: Any) -> list[str]:
    """The tab's ordering: the label-first task on top, whichever way the scores run."""
    return list(SCORE_ASCENDING if settings.scores_ascending else SCORE_DESCENDING)


#: The tab's filter: only the tasks Label Studio does not count as labeled yet. Its *Completed*
#: column (``completed_at``) stays empty until a task ``is_labeled`` (enough annotations for its
#: overlap), the same rule its stream uses to skip a task, so finished tasks leave the tab and
#: the next ones to label stay on top. Label Studio 1.23.2 orders a tab by its first ordering
#: key only (``data_manager/managers.py``, ``apply_ordering``), so "unlabeled first, then by
#: score" cannot be an ordering; a filter the admin sees (*Filters*: "Completed is empty: yes")
#: and can remove is the way.
UNFINISHED_ONLY: dict[str, Any] = {
    "conjunction": "and",
    "items": [{"filter": "filter:tasks:completed_at", "operator": "empty", "type": "Datetime", "value": True}],
}


def tab_filters() -> dict[str, Any]:
    """The filters a new "Long-tail first" tab gets (a copy: callers may change it)."""
    return {"conjunction": UNFINISHED_ONLY["conjunction"], "items": [dict(i) for i in UNFINISHED_ONLY["items"]]}


def stale_orderings(settings: Any) -> list[list[str]]:
    """Orderings the backend itself set under the other score direction (replaced when found)."""
    return [list(SCORE_DESCENDING if settings.scores_ascending else SCORE_ASCENDING)]


def config_fields(label_config: str | None) -> set[str]:
    """The task data keys the label config's objects show (top-level keys, as Label Studio
    lists them among the Data Manager's columns)."""
    if not label_config:
        return set()
    try:
        objects = LabelConfig.parse(label_config).objects.values()
    except LabelConfigError:
        return set()
    return {obj.value_key.split("[", 1)[0].split(".", 1)[0] for obj in objects if obj.value_key}


def hidden_columns(columns: list[dict], shown_data: set[str]) -> dict[str, list[str]]:
    """The tab's ``hiddenColumns``: what Label Studio's Default tab hides, the score shown.

    ``columns``: ``GET /api/dm/columns`` of the project; each carries the
    ``visibility_defaults`` its Default tab uses. Data fields that no object of the label
    config shows (``shown_data``) are hidden too, so the task text fits on a screen; when
    none of the data columns is such a field, every data column stays visible.
    """
    data_ids = {c.get("id") for c in columns if c.get("parent") == "data"}
    keep_data = data_ids & shown_data or data_ids
    out: dict[str, list[str]] = {"explore": [], "labeling": []}
    for col in columns:
        cid = col.get("id")
        if not isinstance(cid, str) or col.get("children"):
            continue  # the "data" group itself
        if col.get("parent") == "data":
            if cid not in keep_data:
                out["explore"].append(f"tasks:data.{cid}")
                out["labeling"].append(f"tasks:data.{cid}")
            continue
        if cid == SCORE_COLUMN:
            continue
        defaults = col.get("visibility_defaults") or {}
        for mode in ("explore", "labeling"):
            if defaults.get(mode) is False:
                out[mode].append(f"tasks:{cid}")
    return out


class StreamGuard:
    """Keeps a project's labeling stream rare-first: its model version, its sampling.

    ``check`` compares Label Studio's project with what the stream needs and puts back
    what differs; each finding is logged once (until it changes), counted
    (``stream_restored``) and kept for ``/metrics`` and the report page (``status``).
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.settings = engine.settings
        self._lock = threading.Lock()
        self._busy: set[int] = set()
        self._setup_checked: dict[int, float] = {}
        self._logged: dict[int, str] = {}

    # ------------------------------------------------------------------ decisions
    def wanted(self, pid: int) -> dict[str, str]:
        """What the project must say for the stream to be rare-first; empty before the first write."""
        state = self.engine.store.get_project(pid)
        if state is None or state.dirty or not state.live_version:
            return {}  # nothing written yet, or a write under way (it sets the version itself)
        want: dict[str, str] = {}
        if self.engine.store.written(pid, state.live_version):
            want["model_version"] = state.live_version
        if want and self.settings.label_stream == "uncertainty":
            want["sampling"] = UNCERTAINTY_SAMPLING
        return want

    def differs(self, pid: int, project: Mapping[str, Any] | None) -> bool:
        """Whether a project as Label Studio sent it (a webhook's ``project``) needs a check."""
        if not isinstance(project, Mapping):
            return False
        want = self.wanted(pid)
        return any(key in project and project.get(key) != value for key, value in want.items())

    # ------------------------------------------------------------------ checks
    def check(self, pid: int, first: bool = False) -> dict[str, Any]:
        """Read the project from Label Studio and put back what the stream needs (project lock held
        by the caller: a re-rank switching versions must not race with this).

        ``first``: the project's first write-back, where setting the sampling is the set-up
        itself (logged at INFO), not a repair.
        """
        want = self.wanted(pid)
        if not want:
            return {}
        client = self.engine.label_studio()
        project = client.get_project(pid)
        found = {key: project.get(key) for key in want}
        wrong = {key: found[key] for key, value in want.items() if found[key] != value}
        if not wrong:
            self._logged.pop(pid, None)
            return {}
        why = self._why(wrong)
        if "model_version" in wrong:
            client.set_model_version(pid, want["model_version"])
        if "sampling" in wrong:
            client.set_sampling(pid, want["sampling"])
        if first and list(wrong) == ["sampling"]:
            log.info("project %s: set the task sampling to %r (was %r) so that Label Studio's own stream "
                     "(\"Label All Tasks\") serves the long tail first (LABEL_STREAM=uncertainty)",
                     pid, want["sampling"], wrong["sampling"])
            return {"set": ["sampling"]}
        message = (f"project {pid}: {why}; put back " + ", ".join(f"{k} = {want[k]!r}" for k in wrong)
                   + " so that the labeling stream serves the long tail first")
        if self._logged.get(pid) != why:
            log.warning("%s", message)
            self._logged[pid] = why
        self.engine.coord.incr("stream_restored")
        self.engine.coord.set_error(f"stream:{pid}", time.strftime("%Y-%m-%d %H:%M:%S UTC ", time.gmtime())
                                    + message)
        return {"restored": sorted(wrong), "why": why}

    def _why(self, wrong: Mapping[str, Any]) -> str:
        parts = []
        if "model_version" in wrong:
            found = wrong["model_version"]
            if not found:
                parts.append("project.model_version was empty (\"Use predictions to prelabel tasks\" turned "
                             "off in Settings > Annotation sets it so)")
            else:
                parts.append(f"project.model_version was {found!r} (another model or version chosen in Settings)")
        if "sampling" in wrong:
            parts.append(f"the task sampling was {wrong['sampling']!r} (LABEL_STREAM=uncertainty keeps it at "
                         f"{UNCERTAINTY_SAMPLING!r}; LABEL_STREAM=tab leaves it to the admin)")
        return "; ".join(parts)

    def check_soon(self, pid: int, at_setup: bool = False) -> None:
        """Run :meth:`check` in a thread under the project lock (webhooks and /setup answer at once).

        ``at_setup``: Label Studio calls /setup before every /predict and whenever the model
        card is shown, so from there a project is looked at once per SETUP_CHECK_EVERY_S.
        """
        now = time.monotonic()
        with self._lock:
            if pid in self._busy:
                return
            if at_setup:
                last = self._setup_checked.get(pid)
                if last is not None and now - last < SETUP_CHECK_EVERY_S:
                    return
                self._setup_checked[pid] = now
            self._busy.add(pid)
        threading.Thread(target=self._run, args=(pid,), name=f"vlmine-stream-{pid}", daemon=True).start()

    def _run(self, pid: int) -> None:
        try:
            if self.engine.label_studio_or_none() is None or not self.wanted(pid):
                return
            with self.engine.coord.project_lock(pid):
                self.check(pid)
        except Exception as exc:  # never fails a request: the next chance tries again
            log.warning("project %s: cannot check the labeling stream's settings in Label Studio: %s", pid, exc)
        finally:
            with self._lock:
                self._busy.discard(pid)

    def status(self, pid: int) -> str | None:
        """The last time the stream's settings were put back, and why (for /metrics, the report)."""
        return self.engine.coord.errors().get(f"stream:{pid}")


_STAMP = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d):\d\d UTC ")
_SAMPLING_FOUND = re.compile(r"the task sampling was ('[^']*'|\"[^\"]*\")")


def restored_in_words(status: str | None) -> str | None:
    """A :meth:`StreamGuard.status` line as an admin reads it: when, what someone changed in Label
    Studio and what the backend did about it, without setting names or Python reprs. A line
    of another shape is returned as it is."""
    if not status:
        return None
    stamp = _STAMP.match(status)
    changes = []
    if "project.model_version was empty" in status:
        changes.append("prelabeling had been turned off (Settings \u2192 Annotation \u2192 \u201cUse predictions "
                       "to prelabel tasks\u201d); the backend turned it back on")
    elif "project.model_version was " in status:
        changes.append("another model version had been chosen for prelabeling; the backend chose its own again")
    sampling = _SAMPLING_FOUND.search(status)
    if sampling:
        changes.append(f"the task sampling had been changed to \u201c{sampling.group(1)[1:-1]}\u201d; the backend "
                       f"set it back to \u201c{UNCERTAINTY_SAMPLING}\u201d")
    if not changes:
        return status
    when = f"On {stamp.group(1)} at {stamp.group(2)} UTC, " if stamp else ""
    text = "; ".join(changes)
    return (when + text[0].lower() + text[1:] if when else text[0].upper() + text[1:]) + (
        ", so that \u201cLabel All Tasks\u201d keeps serving the rarest tasks first.")


# ---------------------------------------------------------------------- annotations
def textarea_lines(results: Any, textarea: str) -> list[str]:
    """The lines a list of results (a prediction's or an annotation's) holds in the TextArea
    ``textarea``: Label Studio keeps a TextArea's text as ``value.text``, one entry per line
    the tag shows."""
    lines: list[str] = []
    if not isinstance(results, list):
        return lines
    for r in results:
        if isinstance(r, dict) and r.get("from_name") == textarea:
            text = (r.get("value") or {}).get("text") if isinstance(r.get("value"), dict) else None
            lines.extend(t for t in ([text] if isinstance(text, str) else text or []) if isinstance(t, str))
    return lines


def without_explanation(result: Any, textarea: str, written: Collection[str]) -> list[dict] | None:
    """An annotation's result without the backend's own words, or None when it holds none.

    ``written``: the lines the backend wrote into its TextArea ``textarea`` for the task. A
    line of that TextArea equal to one of them (surrounding blanks aside) is the backend's,
    copied in by Label Studio, and goes; any other line (typed by an annotator, or one of
    the backend's that an annotator edited) stays, in its result. A result left without any
    line goes as a whole.
    """
    if not isinstance(result, list):
        return None
    theirs = {w.strip() for w in written if isinstance(w, str)}
    kept: list[dict] = []
    changed = False
    for r in result:
        if not (isinstance(r, dict) and r.get("from_name") == textarea):
            kept.append(r)
            continue
        lines = textarea_lines([r], textarea)
        own = [line for line in lines if line.strip() not in theirs]
        if len(own) == len(lines):
            kept.append(r)
            continue
        changed = True
        if own:
            kept.append({**r, "value": {**r["value"], "text": own}})
    return kept if changed else None


class ExplanationRemover:
    """Takes the backend's explanation out of submitted annotations (unless KEEP_EXPLANATIONS),
    and leaves every word an annotator wrote.

    With "Use predictions to prelabel tasks" on, Label Studio copies the prediction (the
    TextArea text naming the rarest keywords) into the annotator's annotation and submits
    it with it: every export would carry the backend's text as if an annotator had written
    it. So for each annotation it hears of (ANNOTATION_CREATED / ANNOTATION_UPDATED, in a
    thread, as the webhook must be answered at once; and after each sync, by a job on the
    write lane, for the ones it missed) the backend compares its TextArea's lines with what
    it wrote for that task: the explanations its own predictions of the task hold in Label
    Studio, and the one it would write now. Lines equal to one of them are removed; text an
    annotator typed there, or a line of the explanation they edited, stays.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.settings = engine.settings

    def enabled(self) -> bool:
        return not self.settings.keep_explanations

    def holds_textarea(self, annotation: Any) -> bool:
        """Whether an annotation (as a webhook or an export sent it) has a line in the backend's
        TextArea that starts like one the backend writes, so that it is worth comparing with
        what the backend wrote (an annotation holding only an annotator's note there is left
        unread at every sync)."""
        if not self.enabled() or not isinstance(annotation, Mapping):
            return False
        return any(wording.may_be_written(line)
                   for line in textarea_lines(annotation.get("result"), self.settings.textarea_name))

    def submit(self, pid: int, annotation: Mapping[str, Any]) -> bool:
        """Queue the check of one annotation of project ``pid`` (from a webhook); whether it
        holds the backend's TextArea (and so was queued)."""
        aid = annotation.get("id") if isinstance(annotation, Mapping) else None
        if not self.holds_textarea(annotation) or not isinstance(aid, int) or isinstance(aid, bool):
            return False
        threading.Thread(target=self._run_one, args=(int(pid), aid), name=f"vlmine-annotation-{aid}",
                         daemon=True).start()
        return True

    def written(self, pid: int, task_ids: Collection[int], predictions: list[dict]) -> dict[int, set[str]]:
        """task -> the lines the backend wrote into its TextArea for it: those of its own
        predictions in ``predictions`` (Label Studio's, any version this backend wrote) and
        those it would write now (the counts may have moved since, or the prediction the
        annotator saw was replaced by a newer version)."""
        name = self.settings.textarea_name
        prefix = self.settings.model_version_prefix
        out: dict[int, set[str]] = {int(t): set() for t in task_ids}
        for p in predictions:
            task = p.get("task")
            if isinstance(task, int) and task in out and is_own_version(p.get("model_version"), prefix):
                out[task].update(textarea_lines(p.get("result"), name))
        try:
            config = self.engine.config(self.engine.project(pid))
            for task, results in self.engine.explainer.explanations(pid, config, sorted(out)).items():
                out[task].update(textarea_lines(results, name))
        except Exception as exc:  # what Label Studio holds still decides
            log.warning("project %s: cannot rebuild the explanations to compare annotations with: %s", pid, exc)
        return out

    def sweep(self, pid: int) -> int:
        """Clean every annotation of the project that still holds the explanation: the ones whose
        webhook was lost while the backend was down. Reads the annotated tasks in one export
        request (the task listing carries annotation ids only) and, when some annotation holds
        the backend's TextArea, the project's predictions in one more; runs in the caller's
        thread (the ``sweep_annotations`` job that every sync queues on the write lane, as it
        PATCHes annotations); returns how many annotations were cleaned."""
        if not self.enabled():
            return 0
        try:
            if not self.engine.config(self.engine.project(pid)).textarea(self.settings.textarea_name):
                return 0
            client = self.engine.label_studio()
            holding = [(int(task["id"]), annotation) for task in client.annotated_tasks(pid)
                       for annotation in task.get("annotations") or []
                       if self.holds_textarea(annotation) and isinstance(annotation.get("id"), int)]
            if not holding:
                return 0
            written = self.written(pid, {t for t, _ in holding}, client.prediction_results(project_id=pid))
        except Exception as exc:  # logged and given up: the next sync queues another sweep
            log.warning("project %s: cannot read the annotations to take the backend's explanation out: %s",
                        pid, exc)
            return 0
        done = 0
        for task, annotation in holding:
            if without_explanation(annotation.get("result"), self.settings.textarea_name, written[task]) is not None:
                done += self._clean(annotation["id"], written[task])
        return done

    def _run_one(self, pid: int, aid: int) -> int:
        try:
            # read it again: the annotator may have updated it since the webhook was sent
            annotation = self.engine.label_studio().get_annotation(aid)
            task = annotation.get("task")
            if not isinstance(task, int) or not self.holds_textarea(annotation):
                return 0
            predictions = self.engine.label_studio().prediction_results(task_id=task)
            return self._clean(aid, self.written(pid, [task], predictions)[task], annotation)
        except Exception as exc:
            log.warning("annotation %s: cannot remove the backend's explanation from it: %s", aid, exc)
        return 0

    def _clean(self, aid: int, written: set[str], annotation: Mapping[str, Any] | None = None) -> int:
        """Write annotation ``aid`` back without the backend's lines; 1 when it held some."""
        try:
            client = self.engine.label_studio()
            if annotation is None:
                annotation = client.get_annotation(aid)  # the newest, as the annotator left it
            name = self.settings.textarea_name
            kept = without_explanation(annotation.get("result"), name, written)
            if kept is None:
                return 0
            client.update_annotation_result(aid, kept)
            self.engine.coord.incr("explanations_removed")
            left = len(textarea_lines(kept, name))
            log.info("annotation %s: removed the backend's %r text (KEEP_EXPLANATIONS=false)%s", aid, name,
                     f"; kept the {left} line(s) an annotator wrote there" if left else "")
            return 1
        except Exception as exc:
            log.warning("annotation %s: cannot remove the backend's explanation from it: %s", aid, exc)
        return 0
