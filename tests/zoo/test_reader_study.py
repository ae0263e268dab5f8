"""The reader study without a browser: scoring against hand computations, the blinded set, the
answers on disk, and the page's HTTP flow (jaxsyn.zoo.reader_study, reader_page, the CLI)."""

import json
import math
import threading
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image

from jaxsyn import files
from jaxsyn.cli import main
from jaxsyn.data.volumes import Volume, diagonal_affine, save_nifti
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.zoo import reader_study
from jaxsyn.zoo.pages import loopback_server
from jaxsyn.zoo.reader_page import make_app
from jaxsyn.zoo.reader_study import Picture, Study, across_readers, make_study, reader_counts


def _pictures(source: str, n: int, value: int) -> list[Picture]:
    return [Picture(np.full((16, 16), value + i, np.uint8), f"{source}{i}.png") for i in range(n)]


@pytest.fixture
def study(tmp_path):
    real, synthetic = _pictures("real", 5, 10), _pictures("syn", 5, 200)
    return make_study(tmp_path / "study", real, synthetic, seed=3, meta={"real": "r"})


def _key(folder) -> dict[str, str]:
    return {
        i: v["source"] for i, v in json.loads((folder / "key.json").read_text())["images"].items()
    }


def test_reader_counts_and_binomial_against_hand_computation():
    key = {f"i{k}": "real" if k < 50 else "synthetic" for k in range(100)}
    # 30 reals called real, 20 called synthetic; 30 synthetics called synthetic, 20 called real
    answers = [{"id": f"i{k}", "answer": "real" if k < 30 or 50 <= k < 70 else "synthetic"}
               for k in range(100)]  # fmt: skip
    r = reader_counts(answers, key)
    assert (r["TR"], r["FS"], r["FR"], r["TS"]) == (30, 20, 20, 30)
    assert r["accuracy"] == 0.6 and r["sensitivity"] == 30 / 50 and r["specificity"] == 30 / 50
    # P(X >= 60), X ~ Binomial(100, 1/2), summed exactly
    hand = sum(math.comb(100, i) for i in range(60, 101)) / 2**100
    assert r["binomial_pvalue"] == pytest.approx(hand, rel=1e-9)
    assert hand == pytest.approx(0.02844396682049039, rel=1e-9)
    assert r["binomial_min_pvalue"] == 0.5**100
    empty = reader_counts([], key)
    assert empty["accuracy"] is None and empty["sensitivity"] is None


def test_wilcoxon_across_readers_reproduces_dumont_brain_ct():
    # DuMont et al. 2020, Table S3: nine radiologists' accuracies on brain CT; they report p < 0.01
    acc = [0.51, 0.45, 0.44, 0.44, 0.46, 0.50, 0.48, 0.36, 0.40]
    out = across_readers(acc)
    # 0.50 is dropped; of 2^8 sign patterns of the 8 others only "all negative" (W+ = 0) and "the
    # smallest, |0.01|, positive" (W+ = 1, observed) have W+ <= 1 (the tie at 0.06 takes mid-rank 5.5)
    assert out["wilcoxon_less"]["pvalue"] == pytest.approx(2 / 256, abs=1e-12)
    assert out["wilcoxon_less"]["min_pvalue"] == 1 / 256
    assert out["wilcoxon_greater"]["pvalue"] == pytest.approx(255 / 256, abs=1e-12)
    assert out["readers"] == 9 and out["mean_accuracy"] == pytest.approx(np.mean(acc))
    three = across_readers([0.9, 0.95, 1.0])  # three perfect-ish readers cannot beat 1/8
    assert three["wilcoxon_greater"]["pvalue"] == three["wilcoxon_greater"]["min_pvalue"] == 0.125


def test_blinded_set_leaks_no_source(study):
    key = _key(study)
    assert sorted(key.values()) == ["real"] * 5 + ["synthetic"] * 5
    served = json.loads((study / "study.json").read_text())
    assert set(served) == {"format", "images", "size", "order_seed"}
    text = json.dumps(served)
    assert "real" not in text and "synthetic" not in text and ".png" not in text
    assert served["images"] == sorted(key)  # id order, not source order
    for image_id in key:
        with Image.open(study / "images" / f"{image_id}.png") as im:
            assert im.mode == "L" and im.size == (16, 16) and not im.info.get("text")
            assert set(im.info) <= {"dpi", "gamma"}  # nothing but pixels
    with pytest.raises(ConfigError, match="already exists"):
        make_study(study, _pictures("r", 1, 0), _pictures("s", 1, 0))
    with pytest.raises(DataError, match="several shapes"):
        bad = [Picture(np.zeros((8, 8), np.uint8), "x")]
        make_study(study.parent / "other", _pictures("r", 1, 0), bad)


def test_reader_orders_are_seeded_per_reader(study):
    a, b = Study(study), Study(study)
    assert a.order("alice") == b.order("alice")
    assert a.order("alice") != a.order("bob") and sorted(a.order("bob")) == a.images
    with pytest.raises(ConfigError, match="reader name '../x'"):
        a.order("../x")


def test_answers_are_stored_atomically_and_resume(study, monkeypatch):
    s = Study(study)
    first = s.next_image("alice")
    assert not s.record("alice", s.order("alice")[1], "real")  # not the next image: ignored
    assert s.record("alice", first, "synthetic")
    assert not s.record("alice", first, "real")  # the same form twice: recorded once
    resumed = Study(study)  # a restarted server
    assert resumed.answers("alice")[0] | {"time": 0} == {
        "id": first,
        "answer": "synthetic",
        "time": 0,
    }
    assert resumed.next_image("alice") == s.order("alice")[1]
    with pytest.raises(ConfigError, match="answer 'maybe'"):
        resumed.record("alice", resumed.next_image("alice"), "maybe")

    def killed(*args):  # the process dies between writing the temporary file and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        resumed.record("alice", resumed.next_image("alice"), "real")
    monkeypatch.undo()
    assert len(Study(study).answers("alice")) == 1  # the earlier answer is intact
    assert sorted(p.name for p in (study / "answers").iterdir()) == ["alice.json"]  # no temp


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_page_serves_images_never_the_key_and_records_answers(study):
    server = loopback_server(make_app(study), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        first = Study(study).order("carol")[0]
        status, page = _get(f"{url}/reader/carol")
        assert status == 200 and f"/image/{first}.png" in page and "image 1 of 10" in page
        for path in ("/key.json", "/study.json", "/image/key.png", "/reader/..%2Fkey"):
            assert _get(url + path)[0] in (400, 404), path
        data = urllib.parse.urlencode({"id": first, "answer": "real"}).encode()
        with urllib.request.urlopen(f"{url}/reader/carol", data=data) as r:  # POST, redirected
            assert "image 2 of 10" in r.read().decode()
        assert [a["answer"] for a in Study(study).answers("carol")] == ["real"]
        second = Study(study).next_image("carol")
        forged = urllib.parse.urlencode({"id": second, "answer": "real"}).encode()
        for headers in ({"Origin": "http://evil.example"}, {"Host": "evil.example"}):
            request = urllib.request.Request(f"{url}/reader/carol", forged, headers)
            with pytest.raises(urllib.error.HTTPError, match="403"):
                urllib.request.urlopen(request)
        assert len(Study(study).answers("carol")) == 1  # neither recorded
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ConfigError, match="not a loopback address"):
        loopback_server(make_app(study), "0.0.0.0", 0)


def test_cli_make_and_score(tmp_path, capsys):
    real, syn = tmp_path / "real", tmp_path / "syn"
    for i in range(3):  # real: CT volumes; synthetic: PNGs of another size
        hu = np.full((8, 12, 12), -1024.0 + 100 * i, np.float32)
        save_nifti(
            real / f"P{i}.nii.gz", Volume(hu=hu, affine=diagonal_affine((1, 1, 1), hu.shape))
        )
        syn.mkdir(exist_ok=True)
        Image.fromarray(np.full((20, 30), 40 * i, np.uint8)).save(syn / f"s{i}.png")
    out = tmp_path / "study"
    args = ["reader-study", "make", "--real", str(real), "--synthetic", str(syn), "--n", "2"]
    assert main([*args, "--out", str(out), "--size", "16"]) == 0
    key = _key(out)
    assert len(key) == 4 and sorted(v for v in key.values()) == ["real"] * 2 + ["synthetic"] * 2
    assert main([*args, "--n", "4", "--out", str(tmp_path / "x")]) == 1
    assert "--real" in capsys.readouterr().err  # 3 files, 4 asked for
    s = Study(out)
    for _ in range(4):  # a reader who calls everything real: accuracy 0.5
        s.record("dan", s.next_image("dan"), "real")
    s.record("fay", s.next_image("fay"), "synthetic")  # a reader who has not finished
    assert main(["reader-study", "score", str(out)]) == 0
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["readers"]["fay"]["answered"] == 1 and not report["readers"]["fay"]["complete"]
    dan = report["readers"]["dan"]
    assert (dan["TR"], dan["FR"], dan["accuracy"], dan["complete"]) == (2, 2, 0.5, True)
    assert report["across_readers"]["readers"] == 1  # dan only
    assert "dan" in (out / "report" / "index.html").read_text()
    assert reader_study.KEY not in {p.name for p in (out / "report").iterdir()}
