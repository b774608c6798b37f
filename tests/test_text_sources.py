"""What a text project mines: Paragraphs' texts, HyperText without its markup, nested text
fields, and a clear per-task refusal of Text valueType="url"; the CLI reads nested fields
with the same lookup."""

from __future__ import annotations

import json

import pytest

from backend.engine.engine import Engine
from backend.labelstudio.config import LabelConfig, Source
from backend.pipeline.miner import html_text, text_from_task
from backend.settings import Settings
from tests.support.commands import clean_env, read_jsonl, run

DIALOGUE = [
    {"author": "Alice", "text": "the walrus swam under the glacier"},
    {"author": "Bob", "text": "lighthouse on the rocky shore"},
]


def make_engine(tmp_path, **overrides) -> Engine:
    return Engine(Settings.from_env({}, model_dir=str(tmp_path / "model"), **overrides))


def test_paragraphs_are_mined_from_their_texts(tmp_path):
    """Paragraphs data is a list of objects: every task failed "field 'dialogue' is not text"."""
    engine = make_engine(tmp_path)
    xml = '<View><Paragraphs name="chat" value="$dialogue" layout="dialogue"/></View>'
    tasks = [{"id": 1, "data": {"dialogue": DIALOGUE}},
             {"id": 2, "data": {"dialogue": [{"author": "Carol", "text": "a red bus on a road"}]}},
             {"id": 3, "data": {"dialogue": [{"author": "Dan"}, "stray"]}}]
    mined = engine.tasks.mine(1, tasks, xml)
    assert mined[0].error is None
    assert mined[0].description == "the walrus swam under the glacier\nlighthouse on the rocky shore"
    assert {"walrus", "glacier", "lighthouse", "shore"} <= set(mined[0].keywords)
    assert "glacier lighthouse" not in mined[0].keywords  # no phrase across two paragraphs
    assert not {"alice", "bob", "author", "text"} & set(mined[0].keywords)
    assert {"bus", "road"} <= set(mined[1].keywords)
    assert mined[2].keywords is None and "no paragraph with a 'text' text" in mined[2].error


def test_paragraphs_honour_text_key(tmp_path):
    engine = make_engine(tmp_path)
    xml = '<View><Paragraphs name="chat" value="$dialogue" nameKey="speaker" textKey="line"/></View>'
    tasks = [{"id": 1, "data": {"dialogue": [{"speaker": "Alice", "line": "a submarine near the reef"},
                                             {"speaker": "Bob", "text": "ignored words elephant"}]}}]
    mined = engine.tasks.mine(2, tasks, xml)
    assert mined[0].error is None and {"submarine", "reef"} <= set(mined[0].keywords)
    assert "elephant" not in mined[0].keywords and "alice" not in mined[0].keywords


def test_hypertext_markup_does_not_become_keywords(tmp_path):
    engine = make_engine(tmp_path)
    xml = '<View><HyperText name="page" value="$html"/></View>'
    markup = ('<div class="post"><style>.post { color: red }</style><p>A walrus &amp; a glacier</p>'
              '<a href="http://example.com/x">lighthouse</a><script>var cat = 1;</script></div>')
    mined = engine.tasks.mine(3, [{"id": 1, "data": {"html": markup}}], xml)
    assert mined[0].error is None
    assert mined[0].description == "A walrus & a glacier\nlighthouse"
    assert {"walrus", "glacier", "lighthouse"} <= set(mined[0].keywords)
    assert not {"div", "class", "href", "http", "com", "post", "color", "var", "cat"} & set(mined[0].keywords)


def test_html_text_keeps_words_of_adjacent_elements_apart():
    assert html_text("<p>red</p><p>bus</p>&lt;b&gt; &#233;t&eacute;") == "red\nbus\n<b> été"
    assert html_text("<span>unclosed</span><b>tag <i>here") == "unclosed tag here"
    assert html_text("a<br>b<br/>  <div>\n\n</div>c") == "a\nb\nc"


def test_text_with_value_type_url_is_refused_per_task(tmp_path):
    engine = make_engine(tmp_path)
    xml = '<View><Text name="doc" value="$doc" valueType="url"/></View>'
    tasks = [{"id": 1, "data": {"doc": "http://example.com/a.txt"}}, {"id": 2, "data": {"doc": "/data/upload/b.txt"}}]
    mined = engine.tasks.mine(4, tasks, xml)
    for m in mined:
        assert m.keywords is None
        assert m.error.startswith("Text with valueType=url is not supported; ")
    assert "example" not in str([m.description for m in mined])


def test_a_nested_text_field_is_mined(tmp_path):
    engine = make_engine(tmp_path)
    xml = '<View><Text name="t" value="$meta.body"/></View>'
    mined = engine.tasks.mine(5, [{"id": 1, "data": {"meta": {"body": "a walrus on a glacier"}}},
                                  {"id": 2, "data": {"meta": {}}}], xml)
    assert {"walrus", "glacier"} <= set(mined[0].keywords)
    assert mined[1].error == "task data has no text field 'meta.body'"


def test_a_null_text_says_it_is_null(tmp_path):
    engine = make_engine(tmp_path)
    xml = '<View><Text name="t" value="$text"/></View>'
    mined = engine.tasks.mine(6, [{"id": 1, "data": {"text": None}}, {"id": 2, "data": {}},
                                  {"id": 3, "data": {"text": "a walrus"}}], xml)
    assert mined[0].keywords is None and mined[0].error == "task data field 'text' is null"
    assert mined[1].error == "task data has no text field 'text'"
    assert mined[2].keywords == ["walrus"]


def test_text_sources_keep_plain_text_and_caption_fields_as_they_are():
    task = {"id": 1, "data": {"caption": "<b>bold</b> words", "n": 7}}
    assert text_from_task(task, Source("text", "caption")) == ("<b>bold</b> words", None)
    assert text_from_task(task, Source("text", "n", tag="Text")) == ("7", None)
    source = LabelConfig.parse('<View><Text name="t" value="$caption"/></View>').source()
    assert text_from_task(task, source) == ("<b>bold</b> words", None)


@pytest.mark.slow
def test_the_offline_command_reads_a_nested_field(tmp_path):
    source = tmp_path / "rows.jsonl"
    rows = [{"id": 1, "meta": {"text": "a walrus on a glacier"}},
            {"id": 2, "meta": {"text": "a red bus on a road"}},
            {"id": 3, "meta": {"text": "a red bus on a road again"}}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run("mine", source, "--field", "meta.text", "--out", tmp_path / "out.jsonl", "-q",
               env=clean_env(MODEL_DIR=str(tmp_path / "model")))
    assert done.returncode == 0, done.stderr
    assert "3 of 3 texts mined, 0 failed" in done.stderr
    out = read_jsonl(tmp_path / "out.jsonl")
    assert out[0]["id"] == 1 and "walrus" in out[0]["keywords"]


def test_signal_fields_are_read_by_path_too(tmp_path):
    from backend.engine.engine import Engine
    from backend.settings import Settings

    engine = Engine(Settings.from_env({"SIGNAL_FIELDS": "meta.loss,flat"}, model_dir=str(tmp_path)))
    xml = '<View><Text name="t" value="$text"/></View>'
    mined = engine.tasks.mine(6, [{"id": 1, "data": {"text": "a walrus", "meta": {"loss": 0.7}, "flat": 2}},
                                  {"id": 2, "data": {"text": "a seal", "meta.loss": 0.1, "meta": {"loss": 9}}}], xml)
    assert mined[0].signals == {"meta.loss": 0.7, "flat": 2.0}
    assert mined[1].signals == {"meta.loss": 0.1}  # a data key holding the dot wins


def test_a_signal_field_too_large_for_a_float_is_missing_not_a_failed_batch(tmp_path):
    from backend.engine.engine import Engine
    from backend.settings import Settings

    engine = Engine(Settings.from_env({"SIGNAL_FIELDS": "loss"}, model_dir=str(tmp_path)))
    xml = '<View><Text name="t" value="$text"/></View>'
    huge = json.loads("1" + "0" * 400)  # a JSON integer: float() of it overflows
    mined = engine.tasks.mine(7, [{"id": 1, "data": {"text": "a walrus", "loss": huge}},
                                  {"id": 2, "data": {"text": "a seal", "loss": 0.3}}], xml)
    assert [m.ok for m in mined] == [True, True]
    assert mined[0].signals == {} and mined[1].signals == {"loss": 0.3}


def test_a_null_field_is_called_null_not_missing(tmp_path):
    engine = make_engine(tmp_path)
    xml = '<View><Text name="t" value="$text"/></View>'
    mined = engine.tasks.mine(5, [{"id": 1, "data": {"text": None}}, {"id": 2, "data": {}}], xml)
    assert mined[0].error == "task data field 'text' is null"
    assert mined[1].error == "task data has no text field 'text'"
