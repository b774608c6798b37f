"""OpenAIDescriber against a real HTTP server on loopback speaking the chat API."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from PIL import Image

from backend.vlm import DEFAULT_KEYWORD_PROMPT, DescriberError, OpenAIDescriber, render_keyword_prompt
from backend.vlm.openai_vlm import encode_image
from support.fake_openai import COLOURS, FakeOpenAI
from tests.support.ports import free_port

KEY = "sk-test-SECRET-1234567890"
DESCRIPTIONS = {
    "red": "a red double-decker bus on a flooded street",
    "green": "a green tractor in a field",
    "blue": "a blue boat near a lighthouse",
}


def solid(name: str, size=(48, 40)) -> Image.Image:
    return Image.new("RGB", size, COLOURS[name])


def describer(server: FakeOpenAI, **kwargs) -> OpenAIDescriber:
    options = {"api_key": KEY, "backoff": 0.01, "max_retries": 3, "timeout": 10.0}
    options.update(kwargs)
    return OpenAIDescriber(server.base_url, "fake-vlm", **options)


def test_descriptions_in_order_with_key_header():
    with FakeOpenAI(by_colour=DESCRIPTIONS, api_key=KEY) as server:
        vlm = describer(server, concurrency=4)
        names = ["red", "blue", "green", "red", "blue"]
        texts = vlm.describe([solid(n) for n in names], "Describe this image.")
    assert texts == [DESCRIPTIONS[n] for n in names]
    assert vlm.name == "endpoint:fake-vlm"
    assert len(server.requests) == len(names)
    for request in server.requests:
        assert request["path"] == "/v1/chat/completions"
        assert request["headers"]["Authorization"] == f"Bearer {KEY}"
        body = request["body"]
        assert body["model"] == "fake-vlm" and body["temperature"] == 0.0
        parts = body["messages"][0]["content"]
        assert parts[0]["type"] == "image_url"
        assert parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert parts[1] == {"type": "text", "text": "Describe this image."}
    assert KEY not in repr(vlm)


def test_png_bytes_reach_the_server_unchanged():
    image = Image.effect_noise((24, 24), 60).convert("RGB")
    url = encode_image(image, "PNG")
    digest = hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest()
    with FakeOpenAI(by_hash={digest: "static noise"}) as server:
        assert describer(server, image_format="PNG").describe([image], "What is it?") == ["static noise"]


def test_large_images_are_shrunk_before_sending():
    with FakeOpenAI(by_colour=DESCRIPTIONS) as server:
        describer(server, max_image_side=64).describe([solid("red", (1000, 500))], "p")
        url = server.requests[0]["body"]["messages"][0]["content"][0]["image_url"]["url"]
    from io import BytesIO

    with Image.open(BytesIO(base64.b64decode(url.split(",", 1)[1]))) as sent:
        assert sent.size == (64, 32)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_then_succeeds(status):
    with FakeOpenAI(by_colour=DESCRIPTIONS, fail_first=2, fail_status=status) as server:
        texts = describer(server).describe([solid("green")], "Describe.")
    assert texts == [DESCRIPTIONS["green"]]
    assert server.calls == 3


def test_gives_up_after_max_retries_without_leaking_the_key():
    with FakeOpenAI(by_colour=DESCRIPTIONS, fail_first=100, fail_status=500) as server:
        with pytest.raises(DescriberError) as info:
            describer(server, max_retries=2).describe([solid("red")], "Describe.")
    assert server.calls == 3  # one try + two retries
    message = str(info.value)
    assert "gave up after 3 attempts" in message and "HTTP 500" in message
    assert KEY not in message


def test_client_errors_are_not_retried_and_echoed_keys_are_redacted():
    with FakeOpenAI(by_colour=DESCRIPTIONS, api_key="another-key") as server:
        with pytest.raises(DescriberError) as info:
            describer(server).describe([solid("red")], "Describe.")
    assert server.calls == 1
    assert "HTTP 401" in str(info.value)
    assert KEY not in str(info.value)  # the fake echoes the Authorization header back


def test_connection_errors_are_retried_then_reported():
    vlm = OpenAIDescriber(f"http://127.0.0.1:{free_port()}/v1", "m", api_key=KEY, max_retries=1, backoff=0.01)
    with pytest.raises(DescriberError) as info:
        vlm.complete(["hello"])
    assert "connection error" in str(info.value) and "gave up after 2 attempts" in str(info.value)
    assert KEY not in str(info.value)


def test_concurrency_is_bounded():
    with FakeOpenAI(by_colour=DESCRIPTIONS, delay=0.05) as server:
        names = ["red", "green", "blue"] * 4
        texts = describer(server, concurrency=3).describe([solid(n) for n in names], "Describe.")
    assert texts == [DESCRIPTIONS[n] for n in names]
    assert 2 <= server.max_concurrent <= 3


def test_describe_each_fails_only_the_refused_image():
    with FakeOpenAI(by_colour=DESCRIPTIONS, refuse_colours={"purple"}, api_key=KEY) as server:
        vlm = describer(server, concurrency=3)
        names = ["red", "purple", "green", "blue", "purple", "red"]
        results = vlm.describe_each([solid(n) for n in names], "Describe.")
        with pytest.raises(DescriberError, match="HTTP 400"):
            vlm.describe([solid(n) for n in names], "Describe.")  # describe raises the first failure
    assert [r for r, n in zip(results, names) if n != "purple"] == [DESCRIPTIONS[n] for n in names if n != "purple"]
    for result in (results[1], results[4]):
        assert isinstance(result, DescriberError) and "HTTP 400" in str(result) and KEY not in str(result)
    assert len(server.requests) >= 6  # every image was sent, one request each


def test_complete_answers_keyword_prompts():
    prompts = [render_keyword_prompt(DESCRIPTIONS[n], DEFAULT_KEYWORD_PROMPT) for n in ("red", "blue")]
    with FakeOpenAI(by_colour=DESCRIPTIONS) as server:
        answers = describer(server).complete(prompts)
        sent = [r["body"] for r in server.requests]
        assert sorted(b["messages"][0]["content"] for b in sent) == sorted(prompts)
        assert all(b["messages"] == [{"role": "user", "content": b["messages"][0]["content"]}] for b in sent)
        assert all("response_format" not in b for b in sent)
        describer(server, json_mode=True).complete(prompts[:1])
        assert server.requests[-1]["body"]["response_format"] == {"type": "json_object"}
    assert json.loads(answers[0]) == ["red", "double-decker", "bus", "flooded", "street"]
    assert json.loads(answers[1]) == ["blue", "boat", "lighthouse"]


def test_empty_inputs_make_no_requests():
    with FakeOpenAI() as server:
        vlm = describer(server)
        assert vlm.describe([], "p") == [] and vlm.complete([]) == []
    assert server.calls == 0


class RefusingLongPrompts(FakeOpenAI):
    """Answers 400 to a text prompt over ``limit`` characters, as a server past its context length."""

    def __init__(self, limit: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    def refused(self, body) -> bool:
        content = body["messages"][-1]["content"]
        return (isinstance(content, str) and len(content) > self.limit) or super().refused(body)


def test_complete_each_fails_only_the_refused_prompt():
    texts = [DESCRIPTIONS["red"], "a tent in a field " * 2000, DESCRIPTIONS["blue"]]
    prompts = [render_keyword_prompt(text, DEFAULT_KEYWORD_PROMPT) for text in texts]
    with RefusingLongPrompts(10_000, by_colour=DESCRIPTIONS, api_key=KEY) as server:
        vlm = describer(server, concurrency=2)
        answers = vlm.complete_each(prompts)
        with pytest.raises(DescriberError, match="HTTP 400"):
            vlm.complete(prompts)  # complete raises the first failure
    assert json.loads(answers[0]) == ["red", "double-decker", "bus", "flooded", "street"]
    assert json.loads(answers[2]) == ["blue", "boat", "lighthouse"]
    assert isinstance(answers[1], DescriberError) and "HTTP 400" in str(answers[1]) and KEY not in str(answers[1])


def test_images_are_encoded_by_the_request_threads_and_a_bad_one_fails_alone():
    class Unencodable:  # what the encoder cannot write (a mode JPEG does not know, say)
        mode = "RGB"
        size = (10, 10)

        def save(self, *args, **kwargs):
            raise OSError("cannot write mode XYZ as JPEG")

    threads: set[str] = set()
    with FakeOpenAI(by_colour=DESCRIPTIONS, delay=0.05) as server:
        vlm = describer(server, concurrency=3)
        real_body = vlm._image_body

        def body(image, prompt):
            import threading

            threads.add(threading.current_thread().name)
            return real_body(image, prompt)

        vlm._image_body = body
        images = [solid("red"), Unencodable(), solid("blue"), solid("green")]
        results = vlm.describe_each(images, "Describe.")
        with pytest.raises(DescriberError, match="cannot encode the image: OSError"):
            vlm.describe(images, "Describe.")
    assert [results[0], results[2], results[3]] == [DESCRIPTIONS["red"], DESCRIPTIONS["blue"], DESCRIPTIONS["green"]]
    assert isinstance(results[1], DescriberError) and "cannot write mode XYZ" in str(results[1])
    assert threads and all(name.startswith("vlm-endpoint") for name in threads)  # not the caller's thread
