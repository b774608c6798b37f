"""Rank-quality figures on hand-computed examples, and ``python -m backend evaluate --rows``."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.offline.label_eval import LabelTruth, _expected_coverage, _hypergeom_interval, auc, rare_labels

ROOT = Path(__file__).resolve().parent.parent

# 10 rows; "owl" in 1 row, "fox" in 2, "cat" in 3, "dog" in 6
LABELS = [["dog"], ["dog", "cat"], ["owl"], ["dog"], ["fox", "dog"], ["cat"], ["dog"], ["fox"], ["cat", "dog"], []]


def test_rare_labels_are_the_labels_in_fewest_rows():
    assert rare_labels(LABELS, 2) == ["owl", "fox"]
    assert rare_labels([["b"], ["a"], ["a", "c"]], 2) == ["b", "c"]  # ties by name


def test_measure_by_hand():
    truth = LabelTruth(LABELS, rare_counts=(2,))
    # rare rows (owl or fox): 2, 4, 7
    order = [2, 0, 4, 1, 3, 5, 6, 7, 8, 9]
    got = truth.measure(order, budgets=(0.2, 0.5))
    top2, top5 = got["budgets"]["0.2"], got["budgets"]["0.5"]
    assert top2["k"] == 2 and top2["rare_share@R2"] == 0.5 and top2["rare_recall@R2"] == pytest.approx(1 / 3)
    assert top2["labels_covered"] == 2  # owl, dog
    assert top5["rare_share@R2"] == pytest.approx(2 / 5) and top5["labels_covered"] == 4
    # AUC: rare rows at places 0, 2, 7 of 10; 7 others, of which 7, 6 and 2 come later: 15 of 21
    assert got["auc"]["R2"] == pytest.approx(15 / 21)


def test_auc_extremes():
    positive = np.array([True, False, True, False])
    assert auc([0, 2, 1, 3], positive) == 1.0
    assert auc([1, 3, 0, 2], positive) == 0.0
    assert auc([0, 1], np.array([True, True])) is None


def test_random_expectations_are_exact():
    n, m, k = 10, 2, 5
    # P(X = 0) = C(8,5)/C(10,5) = 56/252 > 0.025, P(X <= 1) = 196/252 < 0.975: the interval is [0, 2]
    assert _hypergeom_interval(n, m, k) == (0, 2)
    assert _hypergeom_interval(1000, 100, 100)[0] > 0
    # expected coverage against every k-subset
    counts = [sum(1 for labels in LABELS if name in labels) for name in ("owl", "fox", "cat", "dog")]
    for k in (1, 3, 6):
        subsets = list(itertools.combinations(range(10), k))
        brute = np.mean([len(set().union(*(LABELS[i] for i in s))) for s in subsets])
        assert _expected_coverage(counts, 10, k) == pytest.approx(brute)
    rnd = LabelTruth(LABELS, rare_counts=(2,)).random_baseline(budgets=(0.5,))
    assert rnd["budgets"]["0.5"]["rare_share@R2"] == pytest.approx(0.3)
    lo, hi = rnd["budgets"]["0.5"]["labels_covered_95"]
    assert lo <= rnd["budgets"]["0.5"]["labels_covered"] <= hi


def test_oracle_is_an_upper_bound():
    truth = LabelTruth(LABELS, rare_counts=(2,))
    best = truth.measure(truth.oracle(2), budgets=(0.3,))
    assert best["budgets"]["0.3"]["rare_share@R2"] == 1.0 and best["auc"]["R2"] == 1.0


def _run(args, cwd):
    return subprocess.run([sys.executable, "-m", "backend", "evaluate", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_evaluate_rows_end_to_end(tmp_path):
    """Rare things named by several rows rank first: the evaluation sees it against random."""
    common = ["a man on a street", "a woman with a dog in a park", "a car on a road", "a man with a bag"]
    rows = [{"id": i, "text": common[i % 4], "labels": ["person"] if i % 4 != 2 else ["car"]} for i in range(120)]
    for i in range(120, 126):
        rows.append({"id": i, "text": "a walrus on an ice floe", "labels": ["walrus"]})
    rows.append({"id": 200, "text": "There is no image here to provide a caption for.", "labels": []})
    rows.append({"id": 201, "text": None, "labels": ["person"]})
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    done = _run(["--rows", str(path), "--out", str(tmp_path / "ev"), "--model-dir", str(tmp_path / "m"), "-q",
                 "--rare", "1", "--budgets", "0.05"], tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["rare_labels"] == {"R1": ["walrus"]} and report["failed"] == 1
    assert report["settings"]["model_version"].startswith("vlmine-text-rules-")  # text rows: no VLM ran
    assert report["methods"]["vlmine (settings)"]["budgets"]["0.05"]["rare_share@R1"] == 1.0
    assert report["methods"]["random"]["budgets"]["0.05"]["rare_share@R1"] == pytest.approx(6 / 128)
    assert (tmp_path / "ev" / "evaluation.png").stat().st_size > 1000
    assert "vlmine (settings)" in done.stdout and "random 95%" in done.stdout
    assert "task data field 'text' is null" in (tmp_path / "ev" / "items.csv").read_text()


@pytest.mark.parametrize("rows, message", [
    ([{"id": 1, "text": "a dog"}], "no row has a 'labels' list"),
    ([{"id": 1, "text": "a dog", "labels": {"a": 1}}], "'labels' must be a list"),
])
def test_evaluate_rows_needs_labels(tmp_path, rows, message):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    done = _run(["--rows", str(path), "--out", str(tmp_path / "ev"), "--model-dir", str(tmp_path / "m")], tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "ev").exists()
