"""Per-object keyword documents and object novelty on the real SQLite and Redis indexes."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from backend.mining import KeywordNormaliser, prioritise, novelty
from backend.mining.keyword_index import KeywordIndex
from backend.objects import (
    OBJECT_SLOTS,
    SCENE_SLOT,
    TaskObjectKeywords,
    forget_tasks,
    index_objects,
    object_doc_id,
    object_novelty,
    object_scope,
    split_doc_ids,
    task_keywords,
    task_uncertainty,
    tasks_uncertainty,
)
from backend.state.redis_index import RedisIndex
from backend.state.sqlite_index import SQLiteIndex

from tests.support.mining_data import keyword_arrays

IMAGE_SCOPE = "p7:abc123"


@pytest.fixture(params=["sqlite", "redis"])
def index(request, tmp_path):
    if request.param == "sqlite":
        idx: KeywordIndex = SQLiteIndex(tmp_path / "index.sqlite3")
        yield idx
        idx.close()
        return
    client = request.getfixturevalue("redis_server").client()  # the test run's own Redis
    prefix = f"vlmine-objects-{uuid.uuid4().hex[:10]}"
    idx = RedisIndex(client, prefix=prefix)
    yield idx
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def street(task_id: int, rare: bool = False) -> TaskObjectKeywords:
    """A street scene: three ordinary cars and a person, plus a horse trailer in the rare ones."""
    objects = [["car", "wheel"], ["car", "wheel"], ["car"], ["person", "jacket"]]
    if rare:
        objects.insert(1, ["horse trailer", "hitch"])
    return TaskObjectKeywords(objects=objects, scene=["street", "car", "building"])


def test_object_scope_is_one_rule_apart_from_image_scopes(index):
    scope = object_scope(IMAGE_SCOPE)
    assert scope != IMAGE_SCOPE and scope.startswith(IMAGE_SCOPE)
    index.upsert_many(IMAGE_SCOPE, {1: ["street", "car"]})
    index_objects(index, scope, {1: street(1)})
    # whole-image keywords count images; object keywords count objects (3 cars in one image)
    assert index.document_frequencies(IMAGE_SCOPE, ["car"]) == {"car": 1}
    assert index.document_frequencies(scope, ["car"]) == {"car": 4}  # 3 objects + the scene
    assert index.task_count(IMAGE_SCOPE) == 1 and index.task_count(scope) == 5


def test_doc_ids_group_by_task():
    assert object_doc_id(3, 0) == 3 * OBJECT_SLOTS
    tasks, slots = split_doc_ids(np.array([object_doc_id(3, 2), object_doc_id(9, SCENE_SLOT)]))
    assert tasks.tolist() == [3, 9] and slots.tolist() == [2, SCENE_SLOT]
    with pytest.raises(ValueError):
        object_doc_id(3, OBJECT_SLOTS)
    with pytest.raises(ValueError):
        TaskObjectKeywords(objects=[["x"]] * OBJECT_SLOTS)


def test_task_with_a_rare_object_tops_object_novelty_where_whole_images_do_not(index):
    scope = object_scope(IMAGE_SCOPE)
    rare = {4, 11}
    tasks = {t: street(t, rare=t in rare) for t in range(1, 21)}
    index_objects(index, scope, tasks)
    # whole-image keywords of the same scenes: the trailer is one phrase among many and
    # the scene keywords are the same everywhere, so images cannot tell the tasks apart
    index.upsert_many(IMAGE_SCOPE, {t: ["street", "car", "building", "person"] for t in tasks})
    image_nov = novelty(index.arrays(IMAGE_SCOPE))
    assert np.ptp(image_nov) == 0

    result = object_novelty(index.arrays(scope))
    assert result.task_ids.tolist() == list(range(1, 21))
    top = result.task_ids[np.argsort(-result.novelty, kind="stable")[:2]]
    assert set(top.tolist()) == rare
    # the rarest object is named by its slot: the trailer sits in slot 1
    assert result.rarest_slot[result.task_ids.tolist().index(4)] == 1
    # ranked with the rest of the mining core as one more signal
    image_arrays = index.arrays(IMAGE_SCOPE)
    ranked = prioritise(image_arrays, {"object_novelty": result.aligned(image_arrays.task_ids)})
    head = ranked.task_ids[ranked.order[:2]]
    assert set(head.tolist()) == rare


def test_max_pooling_finds_the_one_rare_object_mean_dilutes_it(index):
    scope = object_scope(IMAGE_SCOPE)
    # task 1: one rare object among many cars; task 2: two objects, both fairly unusual
    tasks = {t: TaskObjectKeywords(objects=[["car"], ["car"]]) for t in range(10, 30)}
    tasks[1] = TaskObjectKeywords(objects=[["unicycle"]] + [["car"]] * 8)
    tasks[2] = TaskObjectKeywords(objects=[["scooter"], ["bicycle"]])
    tasks[3] = TaskObjectKeywords(objects=[["scooter"], ["bicycle"]])
    index_objects(index, scope, tasks)
    by_max = object_novelty(index.arrays(scope), pooling="max", keyword_pooling="min")
    by_mean = object_novelty(index.arrays(scope), pooling="mean", keyword_pooling="min")
    ids = by_max.task_ids.tolist()
    assert by_max.novelty[ids.index(1)] > by_max.novelty[ids.index(2)]
    assert by_mean.novelty[ids.index(1)] < by_mean.novelty[ids.index(2)]
    assert by_mean.novelty[ids.index(1)] == pytest.approx(np.mean(by_max.doc_novelty[:9]), abs=1e-6)
    with pytest.raises(ValueError):
        object_novelty(index.arrays(scope), pooling="median")


def test_remining_replaces_a_tasks_objects_and_forgetting_removes_them(index):
    scope = object_scope(IMAGE_SCOPE)
    index_objects(index, scope, {1: street(1, rare=True), 2: street(2)})
    before = index.document_frequencies(scope)
    index_objects(index, scope, {1: street(1, rare=True)})  # mined twice: nothing changes
    assert index.document_frequencies(scope) == before
    # the predictions changed: fewer objects, one failed, no scene any more
    index_objects(index, scope, {1: TaskObjectKeywords(objects=[["car"], None, ["mattress"]])})
    assert index.get(scope, object_doc_id(1, 1)) is None
    assert index.get(scope, object_doc_id(1, SCENE_SLOT)) is None
    assert index.get(scope, object_doc_id(1, 2)) == ["mattress"]
    assert index.document_frequencies(scope, ["horse trailer", "mattress"]) == {"horse trailer": 0, "mattress": 1}
    assert index.task_count(scope) == 2 + 5  # task 1: two objects; task 2: four and its scene
    assert forget_tasks(index, scope, [1]) == 2
    assert set(split_doc_ids(index.arrays(scope).task_ids)[0].tolist()) == {2}


def test_object_novelty_aligns_with_image_tasks_missing_objects_as_nan(index):
    scope = object_scope(IMAGE_SCOPE)
    index_objects(index, scope, {2: street(2), 5: street(5, rare=True)})
    result = object_novelty(index.arrays(scope))
    aligned = result.aligned([1, 2, 5, 9])
    assert np.isnan(aligned[0]) and np.isnan(aligned[3])
    assert aligned[2] > aligned[1]
    empty = object_novelty(index.arrays(object_scope("p8:none")))
    assert empty.task_ids.size == 0 and np.isnan(empty.aligned([1])).all()


def test_uncertainty_is_the_least_confident_object():
    assert task_uncertainty([0.9, 0.4, None]) == pytest.approx(0.6)
    assert np.isnan(task_uncertainty([None]))
    values = tasks_uncertainty([[0.95], [], [0.2, 0.99]])
    assert values[0] == pytest.approx(0.05) and np.isnan(values[1]) and values[2] == pytest.approx(0.8)


def test_keywords_from_crop_descriptions_index_per_object(index):
    """The normaliser's keywords of crop descriptions, counted per object."""
    kn = KeywordNormaliser()
    descriptions = {1: ["A red car with a dented door.", "A horse trailer hitched to a pickup."],
                    2: ["A silver car.", "A blue car parked."]}
    scope = object_scope(IMAGE_SCOPE)
    index_objects(index, scope, {t: TaskObjectKeywords(objects=[kn.from_text(d) for d in ds])
                                 for t, ds in descriptions.items()})
    df = index.document_frequencies(scope)
    assert df["car"] == 3
    assert df.get("trailer", 0) + df.get("horse trailer", 0) >= 1


def test_task_keywords_unites_a_tasks_objects_and_scene():
    # task 2: objects [5, 6] and [6, 7], scene [1]; task 9: one object [8]; task 4: nothing
    docs = {2 * OBJECT_SLOTS: [5, 6], 2 * OBJECT_SLOTS + 1: [6, 7], 2 * OBJECT_SLOTS + SCENE_SLOT: [1],
            9 * OBJECT_SLOTS: [8]}
    ids = sorted(docs)
    arrays = keyword_arrays([docs[d] for d in ids], task_ids=np.array(ids, dtype=np.int64))
    got = task_keywords(arrays, [9, 4, 2])
    rows = [got.keyword_ids[got.indptr[i]:got.indptr[i + 1]].tolist() for i in range(3)]
    assert rows == [[8], [], [1, 5, 6, 7]]
    assert got.task_ids.tolist() == [9, 4, 2] and np.array_equal(got.df, arrays.df)
