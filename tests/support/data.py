"""Data and helpers the tests share: label configs, the planted image set, app and
Label Studio connection helpers. Test modules import from here, never from each other."""

from __future__ import annotations

import io
import random

from PIL import Image

from backend.engine import Engine
from backend.jobs.embedded import EmbeddedQueue
from backend.server import create_app
from backend.settings import Settings
from model import VLMineModel
from tests.support.fake_openai import COLOURS

#: an image project as /predict sees it (tests of the pipeline and the workers)
PREDICT_IMAGE_CONFIG = ('<View><Image name="image" value="$image"/><TextArea name="vlmine" toName="image"/>'
                        '<Choices name="label" toName="image"><Choice value="a"/></Choices></View>')
DESCRIPTIONS = {
    "red": "a red bus on a road",
    "green": "a green tree in a park",
    "blue": "a blue car on a street",
    "yellow": "a yellow submarine beside a lighthouse",
}


def png(colour: str, seed: int, size: int = 48) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), COLOURS[colour])
    image.putpixel((rng.randrange(size), rng.randrange(size)), (rng.randrange(256), 0, 0))  # unique bytes
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


#: the label configs of the end-to-end projects in the real Label Studio
TEXT_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text"><Choice value="a"/><Choice value="b"/></Choices>
</View>"""
IMAGE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image"><Choice value="a"/><Choice value="b"/></Choices>
  <TextArea name="vlmine" toName="image" maxSubmissions="1"/>
</View>"""


COMMON = ["a cat on the sofa", "a dog in the park", "a car on the road", "a bus on the street",
          "a man with a kite", "a woman on a bicycle"]


def make_client(tmp_path, **overrides):
    """A test client of the app on the embedded queue (not started), and its engine."""
    overrides.setdefault("image_allow_private_networks", True)  # the image server is on loopback
    settings = Settings.from_env({}, model_dir=str(tmp_path / "model"), **overrides)
    engine = Engine(settings)
    app = create_app(settings, VLMineModel, engine=engine, queue=EmbeddedQueue(engine), start_workers=False)
    return app.test_client(), engine


def connect(ls, pid: int, backend) -> int:
    """Connect the backend to the project as its ML backend; returns the connection's id."""
    resp = ls.api("POST", "/api/ml", json={"project": pid, "url": backend.url, "title": "VLMine"})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])
