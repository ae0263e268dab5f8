"""The pages on a real library model (slow): `reader-study make --model ID` and the explorer in
Chromium driving a cpD-GAN packed into a library (random generator weights, as in
tests/zoo/test_generate.py: no training step to compile)."""

import functools
import json
import threading

import jax
import numpy as np
import pytest

from jaxsyn import files
from jaxsyn.checkpoint import Checkpointer
from jaxsyn.cli import main
from jaxsyn.models import cpdgan
from jaxsyn.train import gan2d
from jaxsyn.zoo import Generators
from jaxsyn.zoo.explorer import make_app
from jaxsyn.zoo.pages import loopback_server
from tests.zoo.test_explorer import decode
from tests.zoo.test_generate import REPORT, template
from tests.zoo.test_pages_browser import browser, wait  # noqa: F401  (the browser fixture)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("zoo")]
MODEL = "00901_CPDGAN_PAGES"  # beside the shipped models (00001-00006)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages-models")
    run, config = root / "cpdgan", gan2d.CPDGANTrainConfig.tiny(batch_size=8)
    cohort = gan2d.load_cohort("phantom:headct:24", config)
    config = gan2d.fit_labels(config, cohort)
    shapes = jax.eval_shape(functools.partial(cpdgan.init, config=config.model), jax.random.key(0))
    rng = np.random.default_rng(0)
    g = jax.tree.map(lambda s: rng.normal(0, 0.3, s.shape).astype(s.dtype), shapes["g"])
    with Checkpointer(run / "checkpoints", config) as checkpointer:
        checkpointer.save(1, {"params": {"g": g}, "stats": {"g_ema": g}})
    files.write_json(run / "config.json", gan2d.run_info(config, cohort))
    files.write_json(root / "report" / "report.json", REPORT)
    files.write_json(root / "card.json", template(MODEL, "CT"))
    zipped = root / "model.zip"
    argv = ["models", "pack", str(run), "--card", str(root / "card.json")]
    assert main([*argv, "--report", str(root / "report"), "--out", str(zipped)]) == 0
    assert main(["models", "add", str(zipped), "--library", str(root / "lib")]) == 0
    return root / "lib"


def test_reader_study_make_from_a_library_model(lib, tmp_path):
    real = tmp_path / "real"
    assert main(["phantom", "headct", "--n", "4", "--size", "32", "--out", str(real)]) == 0
    out = tmp_path / "study"
    argv = ["reader-study", "make", "--real", str(real), "--model", "901", "--library", str(lib)]
    assert main([*argv, "--n", "3", "--size", "32", "--out", str(out)]) == 0
    key = json.loads((out / "key.json").read_text())["images"].values()
    origins = sorted(v["origin"] for v in key if v["source"] == "synthetic")
    # 3 samples spread over the label combinations the card lists, one generate call each
    assert len(origins) == 3 and len({o.split(" #")[0] for o in origins}) == 3, origins
    assert len(list((out / "images").glob("*.png"))) == 6


def test_explorer_drives_a_library_model(lib, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    model = Generators(library=lib).get_generate_function(MODEL)
    server = loopback_server(make_app(model, MODEL, seed=0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    src = "return document.getElementById('panel-0').src"
    try:
        browser.get(f"http://127.0.0.1:{server.server_port}/")
        wait(lambda: browser.find_element(By.ID, "status").text == "rendered 1", 300)
        first = browser.execute_script(src)
        slider = browser.find_element(By.ID, "latent-0")
        slider.click()
        for _ in range(20):
            slider.send_keys(Keys.ARROW_RIGHT)
        wait(lambda: browser.execute_script(src) != first, 300)
        assert browser.find_element(By.ID, "error").text == ""
        name, spec = next(iter(model.conditions_schema.items()))
        assert "enum" in spec and len(spec["enum"]) > 1, model.conditions_schema
        before = browser.execute_script(src)
        Select(browser.find_element(By.ID, f"cond-{name}")).select_by_index(len(spec["enum"]) - 1)
        wait(lambda: browser.execute_script(src) != before, 300)
        assert browser.find_element(By.ID, "error").text == ""
        assert decode(browser.execute_script(src)).shape[:2] == decode(first).shape[:2]
    finally:
        server.shutdown()
        server.server_close()
