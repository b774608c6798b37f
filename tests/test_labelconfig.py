"""Label configs as Label Studio accepts them: tag names in any case, a default XML
namespace, nested field references ($meta.url, $images[0].url), valueList, Repeater, and
IMAGE_FIELD choosing among Image objects only."""

from __future__ import annotations

import pytest

from backend.labelstudio.config import LabelConfig, LabelConfigError, Source, field_value
from backend.pipeline.images import ImageError, image_ref_from_task
from tests.support.data import DESCRIPTIONS, make_client, png
from tests.support.fake_openai import FakeOpenAI
from tests.support.image_server import ImageServer


# ------------------------------------------------------------------------- tag names
@pytest.mark.parametrize("xml", [
    '<view><image name="img" value="$image"/><textarea name="vlmine" toname="img"/></view>',
    '<View xmlns="http://example.com/ls"><Image name="img" value="$image"/>'
    '<TextArea name="vlmine" toName="img"/></View>',
    '<View><IMAGE name="img" value="$image"/><Textarea name="vlmine" toName="img"/></View>',
])
def test_tag_names_in_any_case_or_namespace_are_read(xml):
    config = LabelConfig.parse(xml)
    assert config.source() == Source("image", "image", tag="Image")
    assert config.textarea("vlmine") == ("vlmine", "img")


def test_a_lower_case_text_config_is_accepted_by_setup(tmp_path):
    client, _ = make_client(tmp_path)
    xml = '<view><hypertext name="page" value="$html"/><textarea name="vlmine" toname="page"/></view>'
    resp = client.post("/setup", json={"project": "3.1", "schema": xml})
    assert resp.status_code == 200, resp.get_json()
    assert LabelConfig.parse(xml).source() == Source("text", "html", tag="HyperText")


def test_attribute_names_are_read_without_case():
    config = LabelConfig.parse('<View><Text name="t" value="$doc" valuetype="url"/>'
                               '<Paragraphs name="p" value="$dialogue" textkey="line"/></View>')
    assert config.objects["t"].value_type == "url"
    assert config.objects["p"].text_key == "line"


# ---------------------------------------------------------------------- field paths
def test_field_value_reads_nested_paths_flat_key_first():
    data = {"meta": {"url": "nested"}, "images": [{"url": "a"}, {"url": "b"}], "meta.url": "flat",
            "plain": "p", "list": ["x", "y"]}
    assert field_value(data, "meta.url") == "flat"  # a data key with a dot wins
    del data["meta.url"]
    assert field_value(data, "meta.url") == "nested"
    assert field_value(data, "images[1].url") == "b"
    assert field_value(data, "images.0.url") == "a"
    assert field_value(data, "list[1]") == "y"
    assert field_value(data, "plain") == "p"
    for missing in ("images[2].url", "meta.nope", "plain.x", "list[x]", "images[0]].url", "", "meta."):
        assert field_value(data, missing, "default") == "default", missing
    assert field_value(None, "plain") is None and field_value(["p"], "0") is None


def test_image_references_are_looked_up_by_path():
    task = {"id": 1, "data": {"meta": {"url": " http://h/a.png "}, "images": [{"url": "http://h/b.png"}]}}
    assert image_ref_from_task(task, "meta.url") == "http://h/a.png"
    assert image_ref_from_task(task, "images[0].url") == "http://h/b.png"
    with pytest.raises(ImageError, match="task has no data field 'images\\[1\\].url'"):
        image_ref_from_task(task, "images[1].url")
    with pytest.raises(ImageError, match="is not an image reference"):
        image_ref_from_task(task, "meta")


def test_value_list_mines_the_first_image():
    config = LabelConfig.parse('<View><Image name="imgs" valueList="$images"/>'
                               '<TextArea name="vlmine" toName="imgs"/></View>')
    assert config.source() == Source("image", "images[0]", tag="Image")
    assert config.textarea("vlmine") == ("vlmine", "imgs")


def test_a_repeater_mines_its_first_item():
    config = LabelConfig.parse(
        '<View><Repeater on="$images" indexFlag="{{idx}}"><Image name="page_{{idx}}" value="$images[{{idx}}].url"/>'
        '<Choices name="c_{{idx}}" toName="page_{{idx}}"><Choice value="a"/></Choices></Repeater>'
        '<TextArea name="vlmine" toName="page_0"/></View>')
    assert config.source() == Source("image", "images[0].url", tag="Image")
    assert config.textarea("vlmine") == ("vlmine", "page_0")
    custom = LabelConfig.parse('<View><Repeater on="$pages" indexFlag="{{i}}">'
                               '<Text name="t_{{i}}" value="$pages[{{i}}].body"/></Repeater></View>')
    assert custom.source() == Source("text", "pages[0].body", tag="Text")


def test_nested_value_list_and_repeater_images_are_mined(tmp_path):
    """Every task failed "task has no data field" when the key was taken as one flat key."""
    files = {f"/img{i}.png": png("red" if i < 3 else "yellow", i) for i in range(4)}
    server = ImageServer(files)
    configs = {
        "nested": '<View><Image name="img" value="$meta.url"/></View>',
        "list": '<View><Image name="img" valueList="$images"/></View>',
        "repeater": '<View><Repeater on="$pages"><Image name="p_{{idx}}" value="$pages[{{idx}}].url"/>'
                    '</Repeater></View>',
    }
    datas = {
        "nested": lambda url: {"meta": {"url": url}},
        "list": lambda url: {"images": [url, f"{server.url}/missing.png"]},
        "repeater": lambda url: {"pages": [{"url": url}, {"url": f"{server.url}/missing.png"}]},
    }
    try:
        with FakeOpenAI(by_colour=DESCRIPTIONS) as vlm:
            client, engine = make_client(tmp_path, vlm_api_url=vlm.base_url, vlm_api_model="fake-vlm",
                                         keyword_mode="llm")
            for pid, (name, xml) in enumerate(configs.items(), start=10):
                assert client.post("/setup", json={"project": f"{pid}.1", "schema": xml}).status_code == 200
                tasks = [{"id": i + 1, "data": datas[name](f"{server.url}/img{i}.png")} for i in range(4)]
                mined = engine.tasks.mine(pid, tasks, xml)
                assert [m.error for m in mined] == [None] * 4, name
                assert "submarine" in mined[3].keywords and "bus" in mined[0].keywords, name
    finally:
        server.stop()


# ------------------------------------------------------------------------ IMAGE_FIELD
def test_image_field_does_not_turn_a_text_project_into_images():
    config = LabelConfig.parse('<View><Text name="text" value="$text"/></View>')
    assert config.source(image_field="photo") == Source("text", "text", tag="Text")
    with pytest.raises(LabelConfigError, match="no Image or Text object"):
        LabelConfig.parse('<View><Header value="hi"/></View>').source(image_field="photo")


def test_image_field_chooses_among_image_objects():
    config = LabelConfig.parse('<View><Image name="thumb" value="$thumb"/><Image name="full" value="$photo"/>'
                               '<Image name="set" valueList="$album"/></View>')
    assert config.source().key == "thumb"
    assert config.source(image_field="photo").key == "photo"  # by data key
    assert config.source(image_field="full").key == "photo"  # by name
    assert config.source(image_field="album").key == "album[0]"
    assert config.source(image_field="elsewhere").key == "thumb"  # names none: the first Image


def test_a_text_project_is_mined_as_text_under_image_field(tmp_path):
    client, engine = make_client(tmp_path, image_field="photo")
    xml = '<View><Text name="text" value="$text"/><TextArea name="vlmine" toName="text"/></View>'
    assert client.post("/setup", json={"project": "4.1", "schema": xml}).status_code == 200
    mined = engine.tasks.mine(4, [{"id": 1, "data": {"text": "a walrus on a glacier"}}], xml)
    assert mined[0].error is None and {"walrus", "glacier"} <= set(mined[0].keywords)


def test_a_null_image_field_is_called_null():
    with pytest.raises(ImageError, match="data field 'image' is null"):
        image_ref_from_task({"id": 1, "data": {"image": None}}, "image")


# ---------------------------------------------------------------------------- object mining
def test_box_controls_and_the_control_a_highlighted_box_may_use():
    config = LabelConfig.parse(
        '<View><Image name="img" value="$image"/>'
        '<RectangleLabels name="det" toName="img"><Label value="car"/><Label value="trailer"/></RectangleLabels>'
        '<polygonlabels name="poly" toname="img"><label value="bus"/></polygonlabels>'
        '<Image name="other" value="$other"/><RectangleLabels name="elsewhere" toName="other">'
        '<Label value="cat"/></RectangleLabels></View>')
    assert [c.name for c in config.box_controls("img")] == ["det", "poly"]
    assert config.controls["det"].labels == ("car", "trailer")
    assert config.highlight_control("img", "trailer") == "det"
    assert config.highlight_control("img", "bus") is None  # a polygon control holds no rectangle
    assert config.highlight_control("img", "cat") is None  # that label is drawn on another image
    assert config.highlight_control("img", None) is None
    source = config.source()
    assert source.name == "img" and source.boxes
    plain = LabelConfig.parse('<View><Image name="img" value="$image"/></View>').source()
    assert not plain.boxes and plain == source  # the boxes do not make it another field to mine
