"""The report's charts: matplotlib figures rendered to SVG strings to inline into the page.

No pyplot and no GUI backend: each figure is bound to the SVG canvas itself. Text stays text
(``svg.fonttype`` none), coordinates are rounded to two decimals and a series' marker style is
stated once per group, so the charts stay small. matplotlib's rcParams are process-wide, so
every chart is drawn inside :func:`chart_rendering`, which holds a lock around the report's
style.
"""

from __future__ import annotations

import contextlib
import html
import io
import math
import re
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

SCATTER_SAMPLE = 4000  # points of the scatter beyond front 0 and the budget
FRONT0_CAP = 10_000  # front-0 points drawn at most (only many-signal fronts get this big)
BUDGET_CAP = 1_000  # budget points beyond front 0 drawn at most
FREQ_POINTS = 1500  # points of the frequency curve at most (log-spaced ranks)

FRONT_COLOURS = ("#d62728", "#ff7f0e", "#2ca02c")  # fronts 0, 1, 2
REST_COLOUR = "#9aa5b1"
LABELED_COLOUR = "#1a7f37"  # budget tasks labeled already
TO_LABEL_COLOUR = "#d62728"  # budget tasks still to label
CURVE_COLOUR = "#1f5f99"
TAIL_COLOUR = "#fdd9a0"

_RENDER_LOCK = threading.Lock()  # matplotlib's rcParams are process-wide
_NUMBER = re.compile(r"-?\d+\.\d{3,}")
_ROUNDED_ATTR = re.compile(r'(\s(?:x|y|d|transform|points)=")([^"]*)(")')
_MARKERS = re.compile(r'<g clip-path="(url\(#[^"]+\))">\n((?:<use [^>]*/>\n)+)</g>')
_STYLE = re.compile(r' style="([^"]*)"')

_RC = {
    "svg.fonttype": "none",  # text stays text: selectable, searchable, small
    "text.parse_math": False,  # a keyword with '$' in it is not TeX
    "font.size": 10,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e7eb",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#6b7785",
    "axes.labelcolor": "#222",
    "xtick.color": "#444",
    "ytick.color": "#444",
    "legend.frameon": False,
    "svg.hashsalt": None,
}


@contextlib.contextmanager
def chart_rendering() -> Iterator[None]:
    """Draw charts inside this: matplotlib's rcParams are process-wide, so the report's style is
    applied under a lock and two requests never draw with each other's settings."""
    with _RENDER_LOCK:
        import matplotlib

        with matplotlib.rc_context(_RC):
            yield


def _figure(width: float = 6.3, height: float = 4.3):
    """A matplotlib figure bound to the SVG canvas, sized in inches."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    # no pyplot: the figure is bound to the SVG canvas itself, so no GUI backend (nor Agg) is ever
    # selected or loaded, and nothing global is touched outside chart_rendering()
    FigureCanvasSVG(fig)
    return fig


def _svg(fig: Any, title: str) -> str:
    """``fig`` as an SVG element to inline into HTML: rounded, deduplicated, sized by CSS."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.08,
                metadata={"Date": None, "Creator": None, "Title": title})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: inlined into HTML

    def rounded(m: re.Match) -> str:
        values = _NUMBER.sub(lambda n: f"{float(n.group()):.2f}".rstrip("0").rstrip("."), m.group(2))
        return m.group(1) + values + m.group(3)

    text = _ROUNDED_ATTR.sub(rounded, text)  # 2 decimals of a pixel are plenty: a third of the bytes
    text = re.sub(r">\n\s*<", ">\n<", text)
    text = _MARKERS.sub(_hoist_style, text)
    # scale with the page: keep the viewBox, let CSS size it
    text = re.sub(r'^<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 role="img" aria-label="' +
                  html.escape(title) + '"', text, count=1)
    return text


def _hoist_style(m: re.Match) -> str:
    """Markers of one series share their style: state it once on the group, not on every point."""
    uses = m.group(2)
    styles = set(_STYLE.findall(uses))
    if len(styles) != 1 or uses.count("<use ") != uses.count(" style="):
        return m.group(0)
    return f'<g clip-path="{m.group(1)}" style="{styles.pop()}">\n{_STYLE.sub("", uses)}</g>'


def frequency_chart(df_desc: np.ndarray, head: list[tuple[str, int]], holders: str = "tasks") -> str:
    """Document frequency against rank, log-log; the tail (df <= 2) shaded."""
    fig = _figure()
    ax = fig.add_subplot()
    v = int(df_desc.size)
    if v == 0:
        ax.text(0.5, 0.5, "no keywords yet", ha="center", va="center", transform=ax.transAxes, color="#666")
        ax.set_axis_off()
        return _svg(fig, "keyword frequency curve")
    ranks = np.arange(1, v + 1)
    if v > FREQ_POINTS:
        keep = np.unique(np.concatenate([
            np.round(np.logspace(0, math.log10(v), FREQ_POINTS)).astype(np.int64) - 1,
            # the ends of each df level, so the steps of the tail stay sharp
            np.flatnonzero(np.diff(df_desc) != 0), np.flatnonzero(np.diff(df_desc) != 0) + 1, [v - 1]]))
        keep = keep[(keep >= 0) & (keep < v)]
        if keep.size > 3 * FREQ_POINTS:
            keep = np.unique(np.round(np.logspace(0, math.log10(v), 3 * FREQ_POINTS)).astype(np.int64) - 1)
        x, y = ranks[keep], df_desc[keep]
    else:
        x, y = ranks, df_desc
    tail = np.flatnonzero(df_desc <= 2)
    if tail.size:
        start = int(tail[0]) + 1
        ax.axvspan(max(start - 0.5, 0.8), v * 1.15, color=TAIL_COLOUR, alpha=0.55, lw=0,
                   label=f"long tail: {tail.size:,} keywords in \u2264 2 tasks")
    ax.plot(x, y, color=CURVE_COLOUR, lw=1.6, marker="o", ms=2.2 if x.size < 400 else 0, mew=0,
            label=f"{v:,} keywords")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log(ax.xaxis)
    _plain_log(ax.yaxis)
    ax.set_xlim(0.8, v * 1.15)
    ax.set_ylim(0.8, max(float(df_desc[0]) * 1.6, 2.0))
    if head:
        lines = "\n".join(f"{_shortened(name, 22)}  {count:,}" for name, count in head)
        ax.text(0.03, 0.04, "most common:\n" + lines, transform=ax.transAxes, fontsize=8.5, color="#333",
                va="bottom", ha="left", linespacing=1.35)
    ax.set_xlabel("keyword rank (most common first)")
    ax.set_ylabel(f"document frequency ({holders} holding the keyword)")
    ax.legend(loc="upper right", fontsize=8.5)
    return _svg(fig, "keyword frequency curve")


def points_to_draw(front: np.ndarray, picked: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Which tasks the scatter chart draws: every front-0 task (up to FRONT0_CAP), the
    budget (up to BUDGET_CAP more), a sample of SCATTER_SAMPLE of the rest. Returns the
    mask, the groups drawn whole and a note per group sampled. Where a group is sampled,
    its budget tasks are kept first: a ring the legend promises is never sampled away."""
    rng = np.random.default_rng(seed)
    shown = np.zeros(front.size, dtype=bool)
    full, sampled = [], []
    for what, rows, cap in (("front 0", np.flatnonzero(front == 0), FRONT0_CAP),
                            ("the budget", np.flatnonzero(picked & (front != 0)), BUDGET_CAP),
                            ("the rest", np.flatnonzero(~picked & (front != 0)), SCATTER_SAMPLE)):
        if rows.size > cap:
            sampled.append(f"{cap:,} of {rows.size:,} tasks of {what}")
            first, others = rows[picked[rows]], rows[~picked[rows]]
            if first.size >= cap:
                rows = rng.choice(first, cap, replace=False)
            else:
                rows = np.concatenate([first, rng.choice(others, cap - first.size, replace=False)])
        elif rows.size:
            full.append(what)
        shown[rows] = True
    return shown, full, sampled


def scatter_chart(novelty: np.ndarray, y: np.ndarray, front: np.ndarray, position: np.ndarray, budget: int,
                  y_label: str, is_place: bool, n_signals: int, seed: int = 0,
                  labeled: np.ndarray | None = None) -> tuple[str, int, str]:
    """Novelty against ``y``, coloured by what decides the order, the first ``budget`` tasks marked.

    With two signals or more the Pareto fronts are coloured and the budget ringed. With novelty
    alone a front is just a run of equal novelty (one task each, the rest "3+"), so the dots
    are coloured by the queue instead: the budget's tasks (labeled or still to label, when
    ``labeled``, Label Studio's state by task, is known) and the rest.

    Big projects are subsampled: every front-0 task (up to FRONT0_CAP) and the budget (up
    to BUDGET_CAP more) are drawn, the rest sampled to SCATTER_SAMPLE points. Returns the
    SVG, the number of points drawn and what was sampled (empty when nothing was).
    """
    n = novelty.size
    front = np.asarray(front)
    position = np.asarray(position)
    picked = position < budget
    shown, full, sampled = points_to_draw(front, picked, seed)
    picked_shown = picked & shown
    fig = _figure()
    ax = fig.add_subplot()
    size = 3.6 if shown.sum() < 1500 else 2.4
    if n_signals < 2:
        groups = [("the rest of the queue", ~picked, REST_COLOUR, 0.55, size)]
        if labeled is None:
            groups.append((f"budget: the first {int(picked.sum()):,} to label", picked, TO_LABEL_COLOUR, 1.0,
                           size + 2.2))
        else:
            groups += [("budget, still to label", picked & ~labeled, TO_LABEL_COLOUR, 1.0, size + 2.2),
                       ("budget, labeled", picked & labeled, LABELED_COLOUR, 1.0, size + 2.2)]
    else:
        groups = [("fronts 3+", front >= 3, REST_COLOUR, 0.55, size),
                  ("front 2", front == 2, FRONT_COLOURS[2], 0.9, size + 1.6),
                  ("front 1", front == 1, FRONT_COLOURS[1], 0.95, size + 1.6),
                  ("front 0 (no task beats it)", front == 0, FRONT_COLOURS[0], 1.0, size + 2.2)]
    for label, mask, colour, alpha, ms in groups:
        sel = mask & shown
        if not sel.any():
            continue
        ax.plot(novelty[sel], y[sel], "o", ls="none", ms=ms, mew=0, color=colour, alpha=alpha,
                label=f"{label}: {int(mask.sum()):,}")
    if n_signals == 2 and not is_place:
        # front 0 as the staircase it is: nothing lies above and to the right of it
        f0 = np.flatnonzero(front == 0)
        f0 = f0[np.lexsort((-y[f0], novelty[f0]))]
        ax.step(novelty[f0], y[f0], where="post", color=FRONT_COLOURS[0], lw=0.9, alpha=0.7)
    if picked.any() and n_signals >= 2:
        if labeled is None:
            ax.plot(novelty[picked_shown], y[picked_shown], "o", ls="none", ms=size + 7, mfc="none", mec="#1d2733",
                    mew=0.8, alpha=0.9, label=f"budget: the first {int(picked.sum()):,} to label")
        else:
            for label, mask, colour, width in (("budget, still to label", picked & ~labeled, "#1d2733", 0.8),
                                               ("budget, labeled", picked & labeled, LABELED_COLOUR, 1.6)):
                if mask.any():
                    sel = mask & shown
                    ax.plot(novelty[sel], y[sel], "o", ls="none", ms=size + 7, mfc="none", mec=colour, mew=width,
                            alpha=0.9, label=f"{label}: {int(mask.sum()):,}")
    if is_place:
        ax.invert_yaxis()
        if n > 50:
            ax.set_yscale("log")
            _plain_log(ax.yaxis)
    ax.set_xlabel("novelty (\u2212log of pooled keyword frequency)")
    ax.set_ylabel(y_label)
    title = f"Novelty against {y_label}"
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8.5, markerscale=1.2)
    note = ""
    if sampled:
        note = (f"{int(shown.sum()):,} of {n:,} tasks drawn: " + (f"all of {' and '.join(full)}, " if full else "")
                + f"and a random sample of {', '.join(sampled)}")
    return _svg(fig, title.lower()), int(shown.sum()), note


def progress_chart(progress: dict[str, Any]) -> str:
    """One stacked bar: mined, failed and pending tasks (of Label Studio's total when known)."""
    mined, failed = int(progress.get("mined") or 0), int(progress.get("failed") or 0)
    pending = progress.get("pending")
    total = progress.get("total")
    parts = [("mined", mined, "#2e8540"), ("failed", failed, "#b42318")]
    if isinstance(pending, int) and pending > 0:
        parts.append(("pending", pending, "#c9d1d9"))
    whole = max(sum(v for _, v, _ in parts), 1)
    fig = _figure(12.0, 1.2)
    ax = fig.add_subplot()
    left = 0
    for name, value, colour in parts:
        if value:
            ax.barh([0], [value], left=left, height=0.62, color=colour, label=f"{name}: {value:,}")
            if value / whole > 0.07:
                ax.text(left + value / 2, 0, f"{name} {value:,}", ha="center", va="center", fontsize=9,
                        color="#fff" if name != "pending" else "#333")
            left += value
    if left == 0:
        ax.text(0.5, 0.5, "no task seen yet", ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xlim(0, whole)
    ax.set_ylim(-0.5, 0.5)
    ax.set_yticks([])
    ax.grid(False)
    ax.spines["left"].set_visible(False)
    done = 100 * (mined + failed) / whole
    of = f"{total:,} tasks in Label Studio" if isinstance(total, int) else "total unknown until a webhook says"
    ax.set_title(f"Mining progress: {done:.0f}% done ({of})", loc="left", fontsize=10.5, fontweight="bold")
    if left:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.05), fontsize=8.5)
    return _svg(fig, "mining progress")


def _plain_log(axis: Any) -> None:
    """Log-scale ticks as plain numbers (1, 10, 100, 1,000; no TeX), minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _shortened(text: str, chars: int) -> str:
    """``text`` cut to ``chars`` characters with an ellipsis: a long keyword must not crowd the chart."""
    return text if len(text) <= chars else text[: chars - 1] + "\u2026"

