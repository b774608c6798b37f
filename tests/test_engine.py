"""The engine: one ranking path for the server and the offline commands, and its boundary methods.

Nothing is mocked: text tasks are mined with the rules keyword mode (no model needed), the
server is the real Flask app driven through its test client, the offline command is the
real ``python -m backend mine`` entry point run in this process.
"""

from __future__ import annotations

import json
import math

import pytest

from backend.engine import Engine
from backend.jobs.embedded import EmbeddedQueue
from backend.jobs.runner import MINE_LANE
from backend.offline.mine import main as mine_main
from backend.server import create_app
from backend.settings import Settings
from model import VLMineModel

TEXT_CONFIG = '<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/></Choices></View>'
WORDS = ["cat", "dog", "kite", "walrus", "lantern", "sofa", "beach", "unicycle", "blizzard", "tram"]


def dataset(n: int = 40) -> list[dict]:
    """Text rows with repeats (equal novelty) and repeated losses (equal signals): ties to break."""
    rows = []
    for i in range(1, n + 1):
        words = [WORDS[i % 3], WORDS[3 + i % 4]] + ([WORDS[7 + i % 3]] if i % 5 == 0 else [])
        row = {"id": i, "text": "a " + " and a ".join(words), "meta": {"loss": round((i % 4) * 0.25, 2)}}
        if i % 7 == 0:
            del row["meta"]  # no signal: ranked as the lowest loss
        rows.append(row)
    return rows


def server_ranking(tmp_path, rows: list[dict], env: dict[str, str]) -> tuple[list[int], dict[int, float]]:
    # the offline command writes priorities label-first highest, as the server does for the tab stream
    settings = Settings.from_env({**env, "LABEL_STREAM": "tab"}, model_dir=str(tmp_path / "server"))
    engine = Engine(settings)
    queue = EmbeddedQueue(engine, engine.store)
    client = create_app(settings, VLMineModel, engine=engine, queue=queue, start_workers=False).test_client()
    tasks = [{"id": r["id"], "data": {k: v for k, v in r.items() if k != "id"}} for r in rows]
    resp = client.post("/webhook", json={"action": "TASKS_CREATED", "tasks": tasks,
                                         "project": {"id": 3, "label_config": TEXT_CONFIG}})
    assert resp.status_code == 200, resp.get_json()
    queue.run_pending(MINE_LANE)
    order, result = engine.ranker.rank(3)
    priority = {int(t): float(p) for t, p in zip(result.task_ids.tolist(), result.priority.tolist())}
    return order, priority


def offline_ranking(tmp_path, rows: list[dict], env: dict[str, str], monkeypatch) -> list[dict]:
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "ranking.jsonl"
    assert mine_main([str(source), "--out", str(out), "--model-dir", str(tmp_path / "offline"), "-q"]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("env", [
    {"SIGNAL_FIELDS": "meta.loss"},
    {"SIGNAL_FIELDS": "meta.loss", "POOLING": "min", "NOVELTY_TRANSFORM": "inverse"},
    {"UNCERTAINTY_SOURCE": "field", "UNCERTAINTY_FIELD": "meta.loss"},
])
def test_the_server_and_the_offline_command_rank_a_dataset_identically(env, tmp_path, monkeypatch):
    for key in ("SIGNAL_FIELDS", "UNCERTAINTY_SOURCE", "UNCERTAINTY_FIELD", "POOLING", "NOVELTY_TRANSFORM",
                "MODEL_DIR", "REDIS_URL"):
        monkeypatch.delenv(key, raising=False)
    rows = dataset()
    order, priority = server_ranking(tmp_path, rows, env)
    out = offline_ranking(tmp_path, rows, env, monkeypatch)
    assert [r["id"] for r in out] == order
    assert [r["priority"] for r in out] == [priority[t] for t in order]  # exactly, not approximately
    # the path was read: the signal has values (NaN for the rows without meta), not all missing
    name = "uncertainty" if "UNCERTAINTY_FIELD" in env else "meta.loss"
    losses = {r["id"]: r[name] for r in out}
    assert losses[4] == 0.0 and losses[6] == 0.5 and losses[7] is None
    # equal novelty and signal for several rows: the tie-breaks were compared too
    assert len({(r["novelty"], r[name]) for r in out}) < len(out)


def test_offline_uncertainty_leaves_out_the_predictions_of_model_version_prefix(tmp_path, monkeypatch):
    """An export's own predictions (MODEL_VERSION_PREFIX=acme) never count as another model's."""
    for key in ("SIGNAL_FIELDS", "UNCERTAINTY_SOURCE", "MODEL_VERSION_PREFIX", "MODEL_DIR", "REDIS_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("UNCERTAINTY_SOURCE", "prediction_score")
    monkeypatch.setenv("MODEL_VERSION_PREFIX", "acme")
    tasks = [{"id": 1, "data": {"text": "a cat on a sofa"}, "predictions": [
                 {"id": 10, "model_version": "acme-x-1", "score": 0.99, "created_at": "2026-01-03T00:00:00Z"},
                 {"id": 11, "model_version": "yolo", "score": 0.3, "created_at": "2026-01-01T00:00:00Z"}]},
             {"id": 2, "data": {"text": "a dog on a sofa"}, "predictions": [
                 {"id": 12, "model_version": "vlmine-llava-1", "score": 0.6, "created_at": "2026-01-01T00:00:00Z"}]},
             {"id": 3, "data": {"text": "a walrus on a tram"}, "predictions": [
                 {"id": 13, "model_version": "acme-x-1", "score": 0.2, "created_at": "2026-01-01T00:00:00Z"}]}]
    source = tmp_path / "export.json"
    source.write_text(json.dumps(tasks))
    out = tmp_path / "out.jsonl"
    assert mine_main([str(source), "--out", str(out), "--model-dir", str(tmp_path / "m"), "-q"]) == 0
    got = {r["id"]: r["uncertainty"] for r in map(json.loads, out.read_text().splitlines())}
    assert got[1] == pytest.approx(0.7)  # yolo's score; acme's own newer one left out
    assert got[2] == pytest.approx(0.4)  # another backend named vlmine-...: not ours under this prefix
    assert got[3] is None


@pytest.fixture()
def engine(tmp_path):
    e = Engine(Settings.from_env({}, model_dir=str(tmp_path), signal_fields=["meta.loss"]))
    e.project(5, TEXT_CONFIG)
    e.tasks.mine(5, [{"id": 1, "data": {"text": "a cat and a kite", "meta": {"loss": 0.5}}},
                     {"id": 2, "data": {"text": "a cat and a walrus"}},
                     {"id": 3, "data": {"text": "a cat and a dog", "meta": {"loss": True}}}])
    return e


def test_mining_records_field_signals_read_by_path(engine):
    records = engine.view(5).task_records([1, 2, 3])
    assert records[1].signals == {"meta.loss": 0.5}
    assert records[2].signals == {} and records[3].signals == {}  # missing, and a JSON true is no number


def test_record_field_signals_keeps_what_the_data_holds_now(engine):
    assert engine.tasks.record_field_signals(5, [{"id": 1, "data": {"meta": {"loss": 0.5}}},
                                           {"id": 2, "data": {"meta": {"loss": 0.9}}}]) == 1
    assert engine.view(5).task_records([2])[2].signals == {"meta.loss": 0.9}
    _, result = engine.ranker.rank(5)
    values = dict(zip(result.task_ids.tolist(), result.signals["meta.loss"].tolist()))
    assert values[2] == 0.9 and values[1] == 0.5


def test_forget_absent_drops_what_left_the_listing(engine):
    assert engine.tasks.forget_absent(5, [1, 3]) == [2]
    assert engine.tasks.indexed(5, [1, 2, 3]) == {1, 3}
    assert engine.view(5).task_records([2]) == {}
    assert engine.tasks.forget_absent(5, [1, 3]) == []


def test_rarest_keywords_come_with_their_frequencies_and_the_common_word_last(engine):
    """"cat" is in every task, so it lifts none: it comes last, whatever the pooling."""
    keywords, df = engine.explainer.rarest_keywords(5, [1, 2])
    assert df["cat"] == 3 and df["kite"] == 1
    assert keywords[1][-1] == "cat" and keywords[2][-1] == "cat"


def test_the_boundary_methods_answer_without_reaching_into_the_state(engine):
    assert engine.overview().projects() == [5]
    assert engine.view(5).state().label_config == TEXT_CONFIG
    assert engine.view(6).state() is None and engine.overview().projects() == [5]  # asking creates nothing
    assert engine.unreachable() is None  # no Redis to lose
    engine.record_error("job:mine", "project 5: boom")
    assert engine.overview().errors() == {"job:mine": "project 5: boom"}
    assert engine.overview().counters()["tasks_mined"] == 3
    assert engine.view(5).index_arrays().n_tasks == 3
    assert not math.isnan(engine.ranker.rank(5)[1].priority[0])


def test_the_explanation_names_first_what_lifts_the_task(engine):
    """A word one task holds lifts a task less than a confirmed rare one under the default
    pooling, so the explanation lists the confirmed word first; with gmean, whose novelty the
    rarest word moves most, the rarest comes first."""
    df = {"fabric": 1, "trailer": 40, "street": 3000}
    order = engine.explainer.keyword_order({7: ["street", "fabric", "trailer"]}, df, 4000)
    assert order[7] == ["trailer", "fabric", "street"]


def test_under_gmean_the_explanation_names_the_rarest_first(tmp_path):
    engine = Engine(Settings.from_env({}, model_dir=str(tmp_path), pooling="gmean"))
    df = {"fabric": 1, "trailer": 40, "street": 3000}
    assert engine.explainer.keyword_order({7: ["street", "fabric", "trailer"]}, df, 4000)[7] == ["fabric", "trailer", "street"]


def test_explanations_say_what_their_numbers_count():
    from backend.engine import wording

    assert wording.keywords_line(["microwave", "bicycle", "hat"], {"microwave": 2, "bicycle": 4, "hat": 1}) == (
        "Rarest keywords: microwave: 2 tasks, bicycle: 4 tasks, hat: 1 task")
    assert wording.object_keywords([("hitch", 4), ("trailer", 9)], 124, 40) == (
        "hitch: 4 of 124 objects and 40 scenes, trailer: 9 of them")
    assert wording.object_keywords([("horse trailer", 1)], 1, 0) == "horse trailer: 1 of 1 object"
    assert wording.counted(1200, "task") == "1,200 tasks"
    # every line the backend writes starts like one; an annotator's note does not
    assert all(wording.may_be_written(line) for line in (
        wording.keywords_line(["tram"], {"tram": 1}), wording.description_line("a tram"), "Rarest object: car"))
    assert not wording.may_be_written("annotator note: looks like a tram")


@pytest.mark.parametrize("stream", ["uncertainty", "tab"])
def test_write_plans_keep_the_head_exact_in_either_score_direction(tmp_path, stream):
    """ScoresWriter.write_plan applies EXACT_HEAD and PLACE_TOLERANCE from the label-first end, whichever
    way the scores run: after one task far down moves by a few places, only the head is exact
    and that task keeps its score; the label-first task holds the stream's first score."""
    engine = Engine(Settings.from_env({"MODEL_DIR": str(tmp_path), "LABEL_STREAM": stream, "EXACT_HEAD": "5",
                                       "PLACE_TOLERANCE": "0.1"}))
    order = list(range(1, 201))
    written = {t: (s, None) for t, s in engine.writer.write_plan(order, {}).imports.items()}
    moved = order[:150] + [order[155]] + order[150:155] + order[156:]  # place 155 -> 150
    moved[0], moved[1] = moved[1], moved[0]  # and a swap at the very head
    plan = engine.writer.write_plan(moved, written)
    assert not plan.bump and plan.served[:5] == moved[:5]
    assert 156 not in plan.patches and set(plan.patches) & {1, 2}
    after = {t: s for t, (s, _) in written.items()} | plan.patches
    first = min if stream == "uncertainty" else max
    assert first(after, key=after.get) == moved[0]


def test_a_bump_needs_more_patches_than_the_limit_and_the_share(tmp_path):
    engine = Engine(Settings.from_env({"MODEL_DIR": str(tmp_path), "PATCH_LIMIT": "200", "BUMP_SHARE": "0.1"}))
    assert engine.writer.patch_budget(1000) == 200
    assert engine.writer.patch_budget(20_000) == 2000
    engine = Engine(Settings.from_env({"MODEL_DIR": str(tmp_path / "b"), "PATCH_LIMIT": "0", "BUMP_SHARE": "0"}))
    assert engine.writer.patch_budget(20_000) == 0
