"""The explorer and the reader study in a real headless Chromium driven by Selenium (slow).

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package: `make test-slow`
installs them when it runs as root, otherwise these tests skip saying what to install.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

from jaxsyn.cli import main
from jaxsyn.zoo.explorer import make_app
from jaxsyn.zoo.pages import free_port, loopback_server
from jaxsyn.zoo.reader_study import Picture, Study, make_study
from tests.zoo.test_explorer import Toy, decode

pytestmark = pytest.mark.slow
INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"needs selenium: {INSTALL}")
    if not (CHROMIUM and DRIVER):
        pytest.skip(f"needs Debian's chromium and chromium-driver: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait(condition, seconds: float = 60.0):
    """Poll `condition()` until it is truthy; its value."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {condition}")


def test_explorer_slider_changes_the_image_and_condition_is_honoured(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    toy = Toy()
    server = loopback_server(make_app(toy, "toy", seed=5))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_port}/")
        text = lambda: browser.find_element(By.ID, "status").text  # noqa: E731
        # read in one script call: the page replaces its images and rows on every render
        src = lambda: browser.execute_script("return document.getElementById('panel-0').src")  # noqa: E731
        wait(lambda: text() == "rendered 1")
        first, z_seed = src(), toy.calls[-1][0].copy()
        assert len(browser.find_elements(By.CSS_SELECTOR, "#sliders input")) == 3  # 25 / 10
        slider = browser.find_element(By.ID, "latent-0")
        before = float(slider.get_attribute("value"))
        assert before == pytest.approx(z_seed[:10].mean(), abs=0.05)
        slider.click()  # focus, moves it to about the middle (0)
        for _ in range(10):
            slider.send_keys(Keys.ARROW_RIGHT)  # one step of 0.05 each, an input event each
        target = float(slider.get_attribute("value"))
        assert abs(target - before) > 0.2  # near the middle, then ten steps of 0.05 right
        moved = lambda: toy.calls[-1][0][:10] - z_seed[:10]  # noqa: E731
        wait(lambda: np.allclose(moved(), target - before, atol=1e-5))  # counted from its start
        wait(lambda: src() != first)
        z = toy.calls[-1][0]
        np.testing.assert_array_equal(z[10:], z_seed[10:])  # the other groups untouched
        level0 = decode(src()).astype(float).mean()
        Select(browser.find_element(By.ID, "cond-level")).select_by_value("2")
        wait(lambda: toy.calls[-1][2]["level"] == 2)
        row = "return Array.from(document.getElementById('rows').rows[1].cells, c => c.textContent)"
        wait(lambda: browser.execute_script(row)[:2] == ["2", "50"])  # the row carries its class
        np.testing.assert_array_equal(toy.calls[-1][0], z)  # the latents kept
        assert decode(src()).astype(float).mean() > level0 + 50  # +600 HU in a 1624 HU window
        assert browser.find_element(By.ID, "error").text == ""
    finally:
        server.shutdown()
        server.server_close()


def _serve(study, port: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "jaxsyn.cli",
        "reader-study",
        "serve",
        str(study),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def up():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return True
        except OSError:
            return process.poll() is not None and pytest.fail(process.stdout.read())

    wait(up)
    return process


def test_reader_study_records_clicks_survives_a_kill_and_scores_them(browser, tmp_path):
    from selenium.webdriver.common.by import By

    rng = np.random.default_rng(0)
    pictures = {s: [Picture(rng.integers(0, 255, (32, 32), np.uint8), f"{s}{i}") for i in range(5)]
                for s in ("real", "synthetic")}  # fmt: skip
    study = make_study(tmp_path / "study", pictures["real"], pictures["synthetic"], seed=1)
    key = {
        i: v["source"] for i, v in json.loads((study / "key.json").read_text())["images"].items()
    }
    other = {"real": "synthetic", "synthetic": "real"}
    port = free_port()
    server = _serve(study, port)
    clicks = []

    def answer_one():
        image_id = (
            browser.find_element(By.ID, "picture").get_attribute("src").rsplit("/", 1)[1][:-4]
        )
        truth = key[image_id]
        choice = truth if len(clicks) % 3 != 2 else other[truth]  # every third answer wrong
        browser.find_element(By.ID, choice).click()
        clicks.append((image_id, choice))
        wait(
            lambda: (
                browser.find_elements(By.ID, "done")
                or f"image {len(clicks) + 1} of" in browser.page_source
            )
        )

    try:
        browser.get(f"http://127.0.0.1:{port}/")
        browser.find_element(By.ID, "name").send_keys("erin")
        browser.find_element(By.ID, "begin").click()
        wait(lambda: browser.find_elements(By.ID, "picture"))
        for _ in range(4):
            answer_one()
        server.send_signal(signal.SIGKILL)  # no clean shutdown: the answers must already be on disk
        server.wait()
        server = _serve(study, port)
        browser.refresh()  # the reader's reload: the next unanswered image, nothing recorded twice
        wait(lambda: "image 5 of 10" in browser.page_source)
        for _ in range(6):
            answer_one()
        assert "All 10 images answered" in browser.page_source
    finally:
        # Ctrl-C, then a kill: in the CI of 2026-12-07 (the other worker busy) the server had not
        # exited 30 s after SIGINT (unexplained; the answers were all on disk). What this test
        # checks is the answers, so teardown must not fail it.
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    stored = Study(study).answers("erin")
    assert [(a["id"], a["answer"]) for a in stored] == clicks
    assert [a["id"] for a in stored] == Study(study).order("erin")
    assert main(["reader-study", "score", str(study)]) == 0
    erin = json.loads((study / "report" / "report.json").read_text())["readers"]["erin"]
    right = sum(key[i] == c for i, c in clicks)
    assert right == 7 and erin["accuracy"] == right / 10 and erin["complete"]
    assert erin["TR"] + erin["TS"] == right and erin["FR"] + erin["FS"] == 3
    assert os.listdir(study / "answers") == ["erin.json"]
