"""The report's HTML: :func:`render_page` turns a :class:`~.data.ReportData` into one
self-contained page, its CSS and its one script (sortable rarest-keywords table) inline.

Every string that comes from tasks, keywords or Label Studio goes through :func:`_escaped`;
the route's Content-Security-Policy lets only the script carrying the page's nonce run.
"""

from __future__ import annotations

import base64
import html
import time
from typing import Any

from ...engine.stream import restored_in_words
from .data import EXAMPLES_SHOWN, ObjectRow, ReportData


def _escaped(value: Any) -> str:
    """``value`` as text safe inside HTML and its quoted attributes: task text may hold markup."""
    return html.escape(str(value), quote=True)


def _count_or_unknown(value: Any) -> str:
    """A progress count with thousands separators, or "unknown" where the backend has not heard it yet."""
    return "unknown" if value is None else f"{value:,}" if isinstance(value, int) else _escaped(value)


def _task_link(data: ReportData, task_id: int) -> str:
    """``#id`` of a task, linked to it in Label Studio when its address is known."""
    if data.link_base:
        return (f'<a href="{_escaped(data.link_base + str(int(task_id)))}" target="_blank" rel="noopener noreferrer">'
                f"#{int(task_id)}</a>")
    return f"#{int(task_id)}"


_CSS = """
:root{--fg:#1d2733;--muted:#5b6773;--line:#e3e7eb;--bg:#f6f8fa;--card:#fff;--accent:#1f5f99}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
header{padding:18px 28px 10px;background:var(--card);border-bottom:1px solid var(--line)}
h1{margin:0 0 2px;font-size:20px}h2{font-size:16px;margin:0 0 8px}
.sub{color:var(--muted);font-size:12.5px}
main{padding:16px 28px 32px;max-width:1400px}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin:12px 0 4px}
.card{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:6px 14px;min-width:104px}
.card b{display:block;font-size:19px}.card span{color:var(--muted);font-size:12px}
.card.failed b{color:#b42318}
.grid{display:flex;flex-wrap:wrap;gap:16px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:0 0 16px}
.grid section{flex:1 1 560px;min-width:0}
figure{margin:0}svg{max-width:100%;height:auto;display:block}
figcaption,.note{color:var(--muted);font-size:12.5px;margin-top:6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;white-space:nowrap}
th[data-sort]{cursor:pointer;user-select:none}th[data-sort]:after{content:" \\2195";color:#b0b8c1}
td.num{text-align:right;font-variant-numeric:tabular-nums;width:3.5em}
td.kw{font-weight:600;white-space:nowrap}
img.crop{display:block;max-width:64px;max-height:64px;border:1px solid var(--line)}
.ex{display:inline-block;margin:0 14px 2px 0;max-width:100%}
.ex q{color:var(--muted);quotes:"\\201C" "\\201D"}
a{color:var(--accent)}
.empty{padding:26px;text-align:center;color:var(--muted);font-size:15px}
.err{color:#b42318}
.big{font-size:15px;margin:4px 0}
.bar{height:12px;background:var(--line);border-radius:6px;overflow:hidden;max-width:640px;margin:4px 0 10px}
.bar span{display:block;height:100%;background:#1a7f37}
.chips{display:flex;flex-wrap:wrap;gap:4px;margin:6px 0}
.chip{background:#eef1f4;color:var(--muted);border-radius:10px;padding:1px 9px;font-size:12.5px}
.chip.done{background:#dafbe1;color:#1a7f37;font-weight:600}
td.done{color:#1a7f37;font-weight:600}
"""

_JS = """
(function () {
  var table = document.getElementById("rare");
  if (table) {
    var body = table.tBodies[0];
    Array.prototype.forEach.call(table.querySelectorAll("th[data-sort]"), function (th) {
      th.tabIndex = 0;
      var sort = function () {
        var col = th.cellIndex, numeric = th.getAttribute("data-sort") === "num";
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        Array.prototype.forEach.call(table.querySelectorAll("th"), function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
          var c = numeric ? (parseFloat(x) - parseFloat(y)) : x.localeCompare(y);
          return c * dir;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { sort(); } });
    });
  }
  document.body.setAttribute("data-ready", String(document.querySelectorAll("svg").length));
})();
"""


def render_page(data: ReportData, nonce: str) -> str:
    """The whole page; ``nonce`` marks its one script, the only one the Content-Security-Policy lets run."""
    p = data.progress
    title = f"VLMine report \u2014 project {data.pid}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_escaped(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_escaped(title)}</h1>",
        f'<div class="sub">model version <code>{_escaped(data.version)}</code> \u00b7 generated '
        f'{_escaped(time.strftime("%Y-%m-%d %H:%M:%S %Z"))}</div>',
        _progress_html(p),
        _stream_html(p),
        "</header><main>",
    ]
    if data.n_tasks == 0:
        parts.append(f'<section class="empty">Nothing is mined yet for project {data.pid}: no task is in the keyword '
                     "index. Import tasks (the backend mines them in the background) or let Label Studio call "
                     "<code>/predict</code>, then reload this page.</section>")
    else:
        parts.append(_labeling_html(data))
        parts.append('<div class="grid">')
        parts.append(_frequency_html(data))
        parts.append(_scatter_html(data))
        parts.append("</div>")
        parts.append(_rare_html(data))
        if data.objects is not None:
            parts.append(_objects_html(data))
    parts.append(_failures_html(data))
    parts.append(f'<p class="note">Rendered in {data.seconds:.2f} s. Every chart is drawn on the server; this page '
                 "loads nothing from elsewhere.</p>")
    parts.append(f'</main><script nonce="{_escaped(nonce)}">{_JS}</script></body></html>')
    return "\n".join(parts)


def _stream_html(p: dict[str, Any]) -> str:
    """How annotators get the queue, and the last time the backend had to put Label Studio's
    settings for it back, in plain words."""
    mode = p.get("label_stream")
    if not mode:
        return ""
    how = ("Annotators who press \u201cLabel All Tasks\u201d get the rarest unlabeled task first (the project's "
           "task sampling is \u201cUncertainty sampling\u201d: lowest score first)" if mode == "uncertainty" else
           "Annotators label the \u201cLong-tail first\u201d tab from the top (highest score first; the task "
           "sampling is left to the admin)")
    out = f'<div class="sub" id="stream">{_escaped(how)}.'
    restored = restored_in_words(p.get("stream_restored"))
    if restored:
        out += f' <span id="stream-restored">{_escaped(restored)}</span>'
    return out + "</div>"


def _labeling_html(data: ReportData) -> str:
    """How far labeling has come: the budget's labeled share, the next tasks in the queue, and
    the rarest keywords an annotation covers already."""
    view = data.labeling
    head = '<section id="labeling"><h2>Labeling progress</h2>'
    if view is None:
        return (head + f'<p class="note" id="labeling-unknown">Labeling progress is read from Label Studio when this '
                f"page is rendered, and it could not be read now: {_escaped(data.labeling_note)}</p></section>")
    done, total = view.budget_labeled, view.budget
    share = 100 * done / total if total else 0.0
    asked = len(view.budget_ids)
    counted = (f" (counted over the first {asked:,} of them)" if asked < total else "")
    started = view.budget_started
    more = (f" {started:,} more have an annotation but need more of them (the project's overlap)."
            if started else "")
    bar = (f'<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="{total}" aria-valuenow="{done}">'
           f'<span style="width:{share:.1f}%"></span></div>')
    out = [head, f'<p class="big" id="budget-progress"><b>{done:,}</b> of <b>{total:,}</b> tasks of the budget '
                 f"labeled ({share:.0f}%){counted}.{more}</p>{bar}"]
    upcoming = view.next_up()
    if upcoming:
        items = ", ".join(f"{_task_link(data, t)} (place {place:,})" for place, t in upcoming)
        out.append(f'<p class="note" id="next-up">Next in the queue, not labeled yet: {items}.</p>')
    elif total:
        out.append('<p class="note" id="next-up">Every task of the budget is labeled: raise '
                   "<code>?budget=K</code> to follow the next ones.</p>")
    rare = [kw for kw in data.rare or [] if kw.holders]
    covered = [kw for kw in rare if any(view.labeled(t) for t in kw.holders)]
    chips = "".join(f'<span class="chip{" done" if kw in covered else ""}">{_escaped(kw.name)}</span>' for kw in rare)
    out.append(f'<p class="big" id="rare-covered"><b>{len(covered):,}</b> of the <b>{len(rare):,}</b> rarest '
               "keywords are covered by a labeled task.</p>"
               f'<p class="chips">{chips}</p><p class="note">Green: at least one task holding the keyword is '
               "labeled; grey: none yet. Read from Label Studio now: <i>labeled</i> as Label Studio counts it "
               "(as many annotations as the project's overlap asks).</p>")
    out.append("</section>")
    return "".join(out)


def _progress_html(p: dict[str, Any]) -> str:
    """The header's cards: tasks in Label Studio, mined, failed, pending and indexed, at a glance."""
    total, mined, failed, pending = p.get("total"), p.get("mined") or 0, p.get("failed") or 0, p.get("pending")
    cards = [("total", total, "tasks in Label Studio"), ("mined", mined, "mined"), ("failed", failed, "failed"),
             ("pending", pending, "pending"), ("indexed", p.get("indexed"), "in the keyword index")]
    out = ['<div class="cards" id="progress">']
    for key, value, label in cards:
        out.append(f'<div class="card {key}" data-key="{key}"><b>{_count_or_unknown(value)}</b>'
                   f"<span>{_escaped(label)}</span></div>")
    out.append("</div>")
    return "".join(out)


def _frequency_html(data: ReportData) -> str:
    """The keyword frequency curve, with how many keywords sit in a single task (the long tail)."""
    share = 100 * data.singletons / data.vocab if data.vocab else 0
    return (f'<section id="frequency"><h2>The long tail of keywords</h2><figure>{data.freq_svg}'
            f"<figcaption>Each keyword's document frequency (how many of the {data.n_tasks:,} mined tasks hold it) "
            f"against its rank, both on log scales. {data.singletons:,} of {data.vocab:,} keywords "
            f"({share:.0f}%) occur in a single task: the flat stretch at the bottom right. Tasks made of such "
            "keywords get the highest novelty.</figcaption></figure></section>")


def _scatter_html(data: ReportData) -> str:
    """The novelty scatter and a caption saying what decides the queue's order and what the colours mean."""
    others = data.other_signals or []
    if others:
        what = (f"Each dot is a task: its novelty against its <b>{_escaped(data.y_label)}</b>, the second signal "
                "of the ranking. ")
        if len(others) > 1:
            what += (f"The fronts are computed over all {len(others) + 1} signals "
                     f"({_escaped(', '.join(['novelty', *others]))}); two are drawn. ")
    note = ""
    if data.sample_note:
        note = (f'<p class="note" id="subsampled">Subsampled for size: {_escaped(data.sample_note)}. The counts in the '
                "legend are of all tasks.</p>")
    budget = (f"the first {data.budget:,} tasks of the queue (<code>?budget=K</code>, default 5% of the tasks)")
    if others:
        colours = ("Front 0 (red) holds the tasks no other task beats (as good on every signal, better by a margin "
                   "on one), then front 1 (orange), "
                   f"front 2 (green), the rest grey. The ringed dots are the budget: {budget}"
                   + ("; a green ring marks one labeled already (as Label Studio counts it now)."
                      if data.labeling is not None else "."))
    else:
        what = ("Each dot is a task: its novelty against its place in the labeling queue (1 = label first). "
                "Novelty is the only signal (set <code>UNCERTAINTY_SOURCE</code> to add one), so the queue follows "
                "novelty (its head re-ordered to show distinct rare keywords first) and there are no Pareto fronts "
                "to tell apart. ")
        colours = (f"The coloured dots are the budget: {budget}"
                   + ("; red still to label, green labeled (as Label Studio counts it now)"
                      if data.labeling is not None else "") + ". Grey: the rest of the queue.")
    return (f'<section id="scatter"><h2>What gets labeled first</h2><figure>{data.scatter_svg}'
            f"<figcaption>{what}{colours}</figcaption></figure>{note}</section>")


def _rare_html(data: ReportData) -> str:
    """The rarest keywords as a sortable table, with example tasks and, when known, their labeling state."""
    rows = []
    view = data.labeling
    for i, kw in enumerate(data.rare or [], 1):
        ex = "".join(f'<span class="ex">{_task_link(data, t)}' + (" \u2713" if view and view.labeled(t) else "")
                     + (f" <q>{_escaped(s)}</q>" if s else "") + "</span>" for t, s in kw.examples)
        labeled = ""
        if view is not None:
            n = sum(view.labeled(t) for t in kw.holders)
            of = f"{n:,} of {len(kw.holders):,}" + ("+" if len(kw.holders) < kw.df else "")
            labeled = f'<td class="num{" done" if n else ""}" data-v="{n}">{of}</td>'
        rows.append(f'<tr><td class="num" data-v="{i}">{i}</td><td class="kw" data-v="{_escaped(kw.name)}">'
                    f'{_escaped(kw.name)}</td><td class="num" data-v="{kw.df}">{kw.df:,}</td>{labeled}'
                    f'<td data-v="{i}">{ex}</td></tr>')
    labeled_head = '<th data-sort="num">labeled</th>' if view is not None else ""
    links = ("Task ids open the task in Label Studio." if data.link_base else
             "Set <code>LABEL_STUDIO_URL</code> (or connect the project from Label Studio) to link the task ids.")
    return (f'<section id="rarest"><h2>The rarest keywords</h2>'
            f'<p class="note">The {len(data.rare or [])} keywords held by the fewest tasks (ties: keywords of tasks '
            f"earlier in the queue first), with up to {EXAMPLES_SHOWN} example tasks each, earliest in the queue "
            f"first. {links}"
            + (" <i>labeled</i>: how many of the tasks holding it are labeled (\u2713 on an example: labeled)."
               if view is not None else "")
            + " Click a column header to sort.</p>"
            '<table id="rare"><thead><tr><th data-sort="num">#</th><th data-sort="text">keyword</th>'
            f'<th data-sort="num">df</th>{labeled_head}<th>example tasks</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></section>")


def _box_svg(row: ObjectRow) -> str:
    """Where the object sits: the image's frame (its aspect when known) and the box in it.
    Drawn from the recorded box, so the page downloads no image."""
    w, h = row.size if row.size and row.size[0] > 0 and row.size[1] > 0 else (4, 3)
    width, height = 96.0, 96.0 * h / w
    if height > 96.0:
        width, height = 96.0 * w / h, 96.0
    left, top, bw, bh = row.box
    return (f'<svg class="where" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.1f} {height:.1f}" '
            f'role="img" aria-label="box at {_escaped(_box_words(row.box))}">'
            f'<rect x="0.5" y="0.5" width="{width - 1:.1f}" height="{height - 1:.1f}" fill="#eef1f4" stroke="#9aa5b1"/>'
            f'<rect x="{left * width:.1f}" y="{top * height:.1f}" width="{max(bw * width, 1.5):.1f}" '
            f'height="{max(bh * height, 1.5):.1f}" fill="#d6272833" stroke="#d62728" stroke-width="1.5"/></svg>')


def _crop_img(row: ObjectRow) -> str:
    """The object's crop as stored when it was mined, inlined as a data URI (no request)."""
    assert row.thumbnail is not None
    data = base64.b64encode(row.thumbnail).decode("ascii")
    return (f'<img class="crop" src="data:image/jpeg;base64,{data}" '
            f'alt="crop of {_escaped(row.label or "an unlabelled box")} in task {row.task_id}">')


def _box_words(box: tuple[float, float, float, float]) -> str:
    """Where a box sits, in words (percent of the image), for readers and screen readers alike."""
    left, top, width, height = box
    return f"x {100 * left:.0f}%, y {100 * top:.0f}%, {100 * width:.0f}% \u00d7 {100 * height:.0f}%"


def _objects_html(data: ReportData) -> str:
    """The object view: the object keywords' frequency curve and the tasks whose rarest object is rarest."""
    view = data.objects
    assert view is not None
    share = 100 * view.singletons / view.vocab if view.vocab else 0
    rows = []
    for row in view.rarest:
        words = ", ".join(f"{_escaped(k)} ({n:,})" for k, n in row.keywords[:6]) or "no keywords"
        score = f"{row.score:.2f}" if isinstance(row.score, (int, float)) else "\u2014"
        rows.append(f'<tr><td class="num">{row.place:,}</td><td>{_task_link(data, row.task_id)}</td>'
                    f'<td class="kw">{_escaped(row.label or "no label")}</td><td class="num">{score}</td>'
                    f"<td>{words}</td><td>{_crop_img(row) if row.thumbnail else ''}</td>"
                    f"<td>{_box_svg(row)}<div class=\"note\">{_escaped(_box_words(row.box))}</div></td></tr>")
    table = ('<table id="rare-objects"><thead><tr><th>place</th><th>task</th><th>detector label</th><th>score</th>'
             '<th>keywords (objects holding each)</th><th>crop</th><th>where</th></tr></thead><tbody>'
             + "".join(rows) + "</tbody></table>")
    among = (f"{view.n_objects - view.n_scenes:,} objects and {view.n_scenes:,} scenes (whole images)"
             if view.n_scenes else f"{view.n_objects:,} objects")
    return (f'<section id="objects"><h2>Objects: the long tail of what the detector found</h2><div class="grid">'
            f'<figure style="flex:1 1 480px;min-width:0">{view.freq_svg}<figcaption>Each object keyword\'s '
            f"document frequency (how many of the {among} hold it) against its "
            f"rank. {view.singletons:,} of {view.vocab:,} object keywords ({share:.0f}%) describe a single object."
            f'</figcaption></figure><div style="flex:1 1 560px;min-width:0"><p class="note">The {len(view.rarest)} '
            "tasks whose rarest object is rarest, with that object: the detector's label and score, the keywords "
            "the VLM gave its crop, the crop itself (a thumbnail kept when it was mined; none when the "
            "rarest object changed since or its image was never decoded here) and where its box sits in the image "
            "(drawn from the box, no image is loaded)."
            f"</p>{table}</div></div></section>")


def _failures_html(data: ReportData) -> str:
    """The mining progress bar and the last failures with their reasons, so a broken task is found."""
    failed = data.progress.get("failed") or 0
    if not data.failures:
        body = '<p class="note">No task failed.</p>'
    else:
        rows = "".join(f'<tr><td class="num">{_task_link(data, t)}</td>'
                       f'<td class="err">{_escaped(e or "unknown error")}</td></tr>' for t, e in data.failures)
        body = (f'<p class="note">The last {len(data.failures)} of {failed:,} failed tasks, newest first. A failed '
                "task is put at the end of the queue (the score Label Studio serves last) and its reason stays here "
                "until it is mined again."
                f'</p><table id="failures"><thead><tr><th>task</th><th>reason</th></tr></thead><tbody>{rows}'
                "</tbody></table>")
    chart = f"<figure>{data.progress_svg}</figure>" if data.progress_svg else ""
    return f'<section id="failed"><h2>Mining progress and failures</h2>{chart}{body}</section>'
