"""The explorer's server without a browser: conditions checked against the schema, results
rendered as panels and rows, the JSON API (jaxsyn.zoo.explorer). The page in Chromium:
tests/zoo/test_pages_browser.py."""

import base64
import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from jaxsyn.errors import ConfigError
from jaxsyn.zoo.explorer import make_app, read_conditions, render
from jaxsyn.zoo.pages import loopback_server


class Toy:
    """The explorer protocol at its smallest: a paired patient (volume + row) whose volume's
    intensity is 300 HU per `level` above a pattern set by the latents."""

    latent_dim = 25  # three slider groups: 10, 10 and 5 entries
    conditions_schema = {
        "level": {"type": "integer", "enum": [0, 1, 2]},
        "age": {"type": "number", "minimum": 20, "maximum": 90, "default": 50},
    }

    def __init__(self):
        self.calls = []

    def generate(self, latents, seed, conditions):
        if latents is None:
            latents = np.random.default_rng(seed).normal(size=self.latent_dim).astype(np.float32)
        self.calls.append((latents, seed, conditions))
        d = np.arange(8)[:, None, None] + np.zeros((8, 8, 8))
        volume = -800 + 300 * conditions["level"] + 40 * latents[:8][d.astype(int)] + 5 * d
        row = {"level": conditions["level"], "age": conditions["age"], "z0": float(latents[0])}
        return {"latents": latents, "volume": volume, "rows": [row]}


def decode(src: str) -> np.ndarray:
    """uint8 pixels of a data:image/png;base64 URL."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))


def test_read_conditions_checks_and_converts():
    schema = Toy.conditions_schema
    assert read_conditions(schema, {}) == {"level": 0, "age": 50.0}
    assert read_conditions(schema, {"level": "2", "age": 33}) == {"level": 2, "age": 33.0}
    with pytest.raises(ConfigError, match=r"condition level: 5; expected one of \[0, 1, 2\]"):
        read_conditions(schema, {"level": 5})
    with pytest.raises(ConfigError, match=r"condition age: 95.0; expected within \[20, 90\]"):
        read_conditions(schema, {"age": 95})
    with pytest.raises(ConfigError, match="condition level: 'x'; expected a value of type integer"):
        read_conditions(schema, {"level": "x"})


def test_render_volume_images_and_rows():
    toy = Toy()
    out = render(toy.generate(None, 0, {"level": 1, "age": 40.0}))
    assert len(out["latents"]) == 25 and out["columns"] == ["level", "age", "z0"]
    assert out["rows"][0][:2] == [1, 40.0]
    slices = decode(out["panels"][0]["src"])
    assert slices.shape == (8, 24) and slices.dtype == np.uint8  # axial | coronal | sagittal
    images = np.linspace(0, 1, 2 * 4 * 4).reshape(2, 4, 4, 1)
    panels = render({"latents": [0.0], "images": images})["panels"]
    assert [decode(p["src"]).tolist() for p in panels] == [
        (np.round(x[..., 0] * 255)).astype(int).tolist() for x in images
    ]
    slices = np.random.default_rng(0).uniform(size=(1, 4, 4, 9))  # a 9-slice unit: 9 panels
    panels = render({"latents": [0.0], "images": slices})["panels"]
    assert [p["title"] for p in panels[::8]] == ["image 0 channel 0", "image 0 channel 8"]
    np.testing.assert_array_equal(decode(panels[4]["src"]), np.round(slices[0, ..., 4] * 255))


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_generates_from_seed_latents_and_conditions():
    toy = Toy()
    server = loopback_server(make_app(toy, "toy", seed=7))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with urllib.request.urlopen(url) as r:
            page = r.read().decode()
        assert '"latent_dim": 25' in page and '"seed": 7' in page
        status, fresh = _post(f"{url}/api/generate", {"seed": 3, "latents": None})
        assert status == 200 and toy.calls[-1][1] == 3
        assert (
            fresh["latents"] == np.random.default_rng(3).normal(size=25).astype(np.float32).tolist()
        )
        moved = np.array(fresh["latents"]) + 1.0
        status, again = _post(
            f"{url}/api/generate",
            {"seed": 3, "latents": moved.tolist(), "conditions": {"level": 2}},
        )
        assert status == 200 and toy.calls[-1][2] == {"level": 2, "age": 50.0}
        np.testing.assert_allclose(toy.calls[-1][0], moved, rtol=1e-6)
        assert decode(again["panels"][0]["src"]).mean() > decode(fresh["panels"][0]["src"]).mean()
        status, bad = _post(f"{url}/api/generate", {"latents": [1.0, 2.0]})
        assert status == 400 and bad["error"] == "latents: 2 values; expected 25 finite numbers"
        status, bad = _post(f"{url}/api/generate", {"conditions": {"level": 9}})
        assert status == 400 and "condition level" in bad["error"]
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ConfigError, match="no 'latent_dim'"):
        make_app(object(), "m")
