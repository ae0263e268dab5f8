"""MMCGAN end to end through the CLI on an 8-patient 32³ phantom: train, generate (conditions,
resume after an interruption), impute both ways, and the paper's report."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from jaxsyn import cli, files
from jaxsyn.data.phantoms.ct import COLUMNS
from jaxsyn.data.volumes import fit_cube, load_volume
from jaxsyn.eval import mmcgan as evaluation
from jaxsyn.eval import tabular
from jaxsyn.infer import mmcgan as infer
from jaxsyn.infer import mmcgan_impute
from jaxsyn.models import mmcgan as model
from tests.train.helpers import assert_trees_equal, host

STEPS = 5  # the 5th step trains the image heads and encoders


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mmcgan") / "run"
    argv = ["train", "mmcgan", "--tiny", "--data", "phantom:ct:8", "--steps", str(STEPS),
            "--out", str(out), "--checkpoint-every", str(STEPS), "--condition-columns", "bmi_class",
            "--config.batch_size=8"]  # the test session has 8 CPU devices  # fmt: skip
    assert cli.main(argv) == 0
    return out


def cohort_of(run_dir):
    return next((run_dir / "data").glob("phantom-ct-8-*"))


def test_train_writes_the_run(run):
    info = json.loads((run / "config.json").read_text())
    assert info["family"] == "mmcgan" and info["class_column"] == "bmi_class"
    real = pd.read_csv(cohort_of(run) / "table.csv")
    counts = np.bincount(real["bmi_class"], minlength=4).tolist()
    assert info["class_counts"] == counts  # the real cohort's class distribution, in aggregate
    assert (run / "transformer.json").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == STEPS


def test_resumed_training_is_bitwise(run, tmp_path):
    """3 steps, then --resume to 5, equals the fixture's 5 straight steps bit for bit."""
    out = tmp_path / "resumed"
    argv = ["train", "mmcgan", "--tiny", "--data", f"{run}/data/store", "--out", str(out),
            "--condition-columns", "bmi_class", "--config.batch_size=8", "--checkpoint-every", "3"]  # fmt: skip
    assert cli.main([*argv, "--steps", "3"]) == 0
    assert cli.main([*argv, "--steps", str(STEPS)]) == 1  # an existing run needs --resume
    assert cli.main([*argv, "--steps", str(STEPS), "--resume"]) == 0
    assert (out / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    a = infer.MMCGANSynthesizer.load(run, encoders=True)
    b = infer.MMCGANSynthesizer.load(out, encoders=True)
    assert_trees_equal(host(a.params), host(b.params))
    assert_trees_equal(host(a.stats), host(b.stats))


def test_generate_a_conditioned_cohort(run, tmp_path):
    out = tmp_path / "gen"
    assert cli.main(["generate", "--run", str(run), "--n", "3", "--out", str(out),
                     "--condition", "bmi_class=3"]) == 0  # fmt: skip
    table = pd.read_parquet(out / "synthetic.parquet")
    assert list(table.columns) == ["patient_id", *COLUMNS]
    assert table["bmi_class"].tolist() == [3, 3, 3]  # hard condition on the tabular head
    for pid in table["patient_id"]:
        vol = load_volume(out / f"{pid}.nii.gz")
        assert vol.shape == (32, 32, 32)
    manifest = json.loads((out / files.MANIFEST).read_text())
    assert manifest["files"] == files.tree_files(out)
    assert not (out / infer.PARTS).exists()


def test_generation_resumes_without_redoing_finished_patients(run, tmp_path, monkeypatch):
    whole = infer.write_cohort(run, tmp_path / "whole", n=5, batch=2, progress=False)
    out = tmp_path / "cut"
    real_save = infer.save_nifti
    saved = []

    def interrupted(path, volume):
        if len(saved) == 3:  # the second batch dies after its first volume
            raise KeyboardInterrupt
        saved.append(path.name)
        return real_save(path, volume)

    monkeypatch.setattr(infer, "save_nifti", interrupted)
    with pytest.raises(KeyboardInterrupt):
        infer.write_cohort(run, out, n=5, batch=2, progress=False)
    monkeypatch.setattr(infer, "save_nifti", real_save)
    first = {p: (out / p).stat().st_mtime_ns for p in saved[:2]}
    with pytest.raises(Exception, match="other settings"):
        infer.write_cohort(run, out, n=5, batch=2, seed=1, progress=False)
    infer.write_cohort(run, out, n=5, batch=2, progress=False)
    assert {p: (out / p).stat().st_mtime_ns for p in saved[:2]} == first  # batch 1 kept
    a = json.loads((whole / files.MANIFEST).read_text())["files"]
    b = json.loads((out / files.MANIFEST).read_text())["files"]
    vols = sorted(k for k in a if k.endswith(".nii.gz"))
    assert [a[k] for k in vols] == [b[k] for k in vols]  # the same patients, bit for bit
    pd.testing.assert_frame_equal(
        pd.read_parquet(whole / "synthetic.parquet"), pd.read_parquet(out / "synthetic.parquet")
    )


def test_rows_do_not_depend_on_the_batch_they_were_made_in(run, tmp_path):
    """Patient i's row is keyed by i: a cohort made 1, 4 or 8 at a time has the same rows. Its
    volumes agree to 1 HU (XLA rounds a convolution over another batch shape differently)."""
    tables, volumes = [], []
    for batch in (1, 4, 8):
        out = infer.write_cohort(run, tmp_path / f"b{batch}", n=8, batch=batch, progress=False)
        tables.append(pd.read_parquet(out / "synthetic.parquet"))
        volumes.append(
            np.stack([load_volume(out / f"{p}.nii.gz").hu for p in tables[-1]["patient_id"]])
        )
    for table, vols in zip(tables[1:], volumes[1:], strict=True):
        pd.testing.assert_frame_equal(table, tables[0])
        assert np.abs(vols.astype(int) - volumes[0]).max() <= 1
    assert tables[0].drop(columns="patient_id").nunique().max() > 1  # not one row repeated


def test_sampled_rows_name_their_patients(run):
    """sample()'s rows carry the ids write_cohort names the patients' files by (issue 22)."""
    rows, volumes = infer.MMCGANSynthesizer.load(run).sample(2, seed=0, first=3)
    assert list(rows.columns[:1]) == ["patient_id"] and len(volumes) == 2
    assert rows["patient_id"].tolist() == ["syn_000003", "syn_000004"]


def test_generate_from_given_latents_is_the_seeded_cohort(run, tmp_path):
    """--latents holding the noise patients 0..2 would draw gives the same cohort (conditions and
    row draws still follow --seed); reversed noise moves the volumes, not the drawn classes."""
    syn = infer.MMCGANSynthesizer.load(run)
    latent = syn.config.image.latent_dim
    z = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(jax.random.key(0), i), (latent,)))
                  for i in range(3)])  # fmt: skip
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "r.npy", z[::-1])
    assert cli.main(["generate", "--run", str(run), "--n", "3", "--out", str(tmp_path / "a")]) == 0
    for name in ("z", "r"):
        argv = ["generate", "--run", str(run), "--latents", str(tmp_path / f"{name}.npy")]
        assert cli.main([*argv, "--out", str(tmp_path / name)]) == 0
    seeded, given = (pd.read_parquet(tmp_path / d / "synthetic.parquet") for d in ("a", "z"))
    pd.testing.assert_frame_equal(seeded, given)
    for pid in seeded["patient_id"]:
        a, b = (load_volume(tmp_path / d / f"{pid}.nii.gz").hu for d in ("a", "z"))
        np.testing.assert_array_equal(a, b)
    rev = pd.read_parquet(tmp_path / "r" / "synthetic.parquet")
    assert rev["bmi_class"].tolist() == seeded["bmi_class"].tolist()  # drawn from --seed
    first = (load_volume(tmp_path / d / "syn_000000.nii.gz").hu for d in ("a", "r"))
    assert not np.array_equal(*first)


def test_imputation_reads_an_encoding_as_training_does(run, tmp_path, monkeypatch):
    """The shared generator gets [ẑ; softmax(class logits); continuous] as in training's E^G
    step (not a one-hot of the argmax); the tabular head's condition is the argmax class."""
    syn = infer.MMCGANSynthesizer.load(run, encoders=True)
    volume = load_volume(next(cohort_of(run).glob("*.nii.gz"))).hu[None]
    seen = []
    real_hypercube = infer.MMCGANSynthesizer.hypercube
    monkeypatch.setattr(infer.MMCGANSynthesizer, "hypercube",
                        lambda self, zc: seen.append(np.asarray(zc)) or real_hypercube(self, zc))  # fmt: skip
    rows = syn.impute_rows(volume)
    enc = jnp.asarray(syn.encode_volumes(volume))
    np.testing.assert_array_equal(seen[0], model.encoded_zc(enc, syn.config))
    _, logits, _ = model.split_encoding(enc, syn.config)
    probs = jax.nn.softmax(logits)
    assert 0.01 < float(probs.max()) < 0.99  # a soft encoding, unlike a one-hot
    assert rows["recovered_bmi_class"].tolist() == [int(np.argmax(logits))]
    assert rows["bmi_class"].tolist() == rows["recovered_bmi_class"].tolist()


def test_imputation_fits_images_by_the_training_store_spacing_rule(run, tmp_path):
    """A run trained on a store ingested with --spacing fits new images the same way."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("data"))
    info = json.loads((copy / "config.json").read_text())
    assert info["ingest_spacing_mm"] is None  # the fixture's store fits whole volumes
    info["ingest_spacing_mm"] = 4.0
    (copy / "config.json").write_text(json.dumps(info))
    images = tmp_path / "images"
    images.mkdir()
    path = next(cohort_of(run).glob("*.nii.gz"))
    shutil.copy(path, images / path.name)
    mmcgan_impute.impute_images(copy, images, tmp_path / "out", progress=False)
    got = pd.read_parquet(tmp_path / "out" / "imputed.parquet").drop(columns="image_id")
    syn = infer.MMCGANSynthesizer.load(copy, encoders=True)
    fixed = syn.impute_rows(fit_cube(load_volume(path), 32, 4.0).hu[None])
    whole = syn.impute_rows(fit_cube(load_volume(path), 32).hu[None])
    pd.testing.assert_frame_equal(got, fixed)
    assert not got.equals(whole)


def test_impute_rows_from_images_and_images_from_rows(run, tmp_path):
    cohort = cohort_of(run)
    assert cli.main(["impute", "--run", str(run), "--images", str(cohort),
                     "--out", str(tmp_path / "rows")]) == 0  # fmt: skip
    rows = pd.read_parquet(tmp_path / "rows" / "imputed.parquet")
    assert len(rows) == 8 and set(COLUMNS) <= set(rows.columns)
    # the reported accuracy is the recovered classes' agreement with the cohort's table
    truth = pd.read_csv(cohort / "table.csv").set_index("patient_id")["bmi_class"]
    agree = rows["recovered_bmi_class"].to_numpy() == truth.loc[rows["image_id"]].to_numpy()
    match = json.loads((tmp_path / "rows" / files.MANIFEST).read_text())["class_match"]
    assert match["n"] == 8 and match["accuracy"] == pytest.approx(agree.mean())
    assert match["chance"] == pytest.approx(truth.value_counts().max() / len(truth))
    assert match["in_training"] == 8 and match["held_out"] is None  # the training volumes
    # the tabular head is conditioned on the recovered class (hard condition)
    assert (rows["bmi_class"] == rows["recovered_bmi_class"]).all()

    pd.DataFrame({"patient_id": ["A", "B"], "bmi_class": [0, 3]}).to_csv(tmp_path / "r.csv")
    assert cli.main(["impute", "--run", str(run), "--table", str(tmp_path / "r.csv"),
                     "--out", str(tmp_path / "cts")]) == 0  # fmt: skip
    written = [load_volume(tmp_path / "cts" / f"{p}.nii.gz").hu for p in ("A", "B")]
    # each equals the Python API's volume for that row's class and the same seed and position
    syn = infer.MMCGANSynthesizer.load(run)
    for i, cls in enumerate((0, 3)):
        labels, cont = syn.conditions(1, {"bmi_class": float(cls)}, 0, first=i)
        assert labels.tolist() == [cls]
        want = syn.volumes(syn.zc(1, labels, cont, 0, first=i))[0]
        np.testing.assert_array_equal(written[i], want)
    # and the class matters: class 3 for row A's noise gives another volume than class 0
    labels, cont = syn.conditions(1, {"bmi_class": 3.0}, 0, first=0)
    assert not np.array_equal(syn.volumes(syn.zc(1, labels, cont, 0, first=0))[0], written[0])


def test_imputation_says_whether_the_model_saw_the_volumes(run, tmp_path, capsys):
    """Issue 22 item 1: volumes of another phantom seed (other checksums than the training
    store's sources) are counted as held out, and the printed figure says so."""
    from jaxsyn.data.phantoms import ct

    ct.write_cohort(tmp_path / "new", n=4, size=32, seed=7, progress=False)
    argv = ["impute", "--run", str(run), "--images", str(tmp_path / "new"), "--out"]
    assert cli.main([*argv, str(tmp_path / "rows")]) == 0
    match = json.loads((tmp_path / "rows" / files.MANIFEST).read_text())["class_match"]
    assert match["in_training"] == 0 and match["held_out"]["n"] == 4
    assert match["held_out"]["accuracy"] == match["accuracy"]
    assert "of 4 volumes" in capsys.readouterr().out.split("held out")[0]
    # P00000 replaced by the training cohort's P00000: one volume the model saw, three not
    shutil.copy(cohort_of(run) / "P00000.nii.gz", tmp_path / "new" / "P00000.nii.gz")
    assert cli.main([*argv, str(tmp_path / "mixed")]) == 0
    match = json.loads((tmp_path / "mixed" / files.MANIFEST).read_text())["class_match"]
    assert match["in_training"] == 1 and match["held_out"]["n"] == 3
    assert "1 of them were training volumes, on the 3 held-out ones" in capsys.readouterr().out


def test_imputation_warns_about_another_anatomy(run, tmp_path):
    """Issue 22 item 6: chest CTs of another seed pass the anatomy check; a head-like volume (a
    water-filled skull: no lungs, no fat) is named in a warning and in the manifest."""
    from jaxsyn.data.phantoms import ct
    from jaxsyn.data.volume import Volume
    from jaxsyn.data.volumes import diagonal_affine, save_nifti
    from jaxsyn.infer import anatomy

    ct.write_cohort(tmp_path / "new", n=2, size=32, seed=7, progress=False)
    argv = ["impute", "--run", str(run), "--images", str(tmp_path / "new"), "--out"]
    assert cli.main([*argv, str(tmp_path / "chest")]) == 0
    found = json.loads((tmp_path / "chest" / files.MANIFEST).read_text())["anatomy"]
    assert found["checked"] and found["unlike_training"] == []
    z, y, x = np.mgrid[:32, :32, :32] - 15.5
    r = np.sqrt(z**2 + y**2 + x**2)
    head = np.where(r < 12, 30.0, np.where(r < 14, 900.0, -1000.0)).astype(np.float32)
    save_nifti(tmp_path / "new" / "H00001.nii.gz",
               Volume(hu=head, affine=diagonal_affine((10.0,) * 3, head.shape)))  # fmt: skip
    with pytest.warns(UserWarning, match=r"1 of 3 volumes do not look like the training anatomy"):
        assert cli.main([*argv, str(tmp_path / "mixed")]) == 0
    found = json.loads((tmp_path / "mixed" / files.MANIFEST).read_text())["anatomy"]
    assert found["unlike_training"] == ["H00001"]
    # the distances are the bands' total variation to the training mean, by hand for the head
    mean = np.array([found["training_mean"][band] for band in anatomy.BAND_NAMES])
    syn = infer.MMCGANSynthesizer.load(run)
    size, spacing = syn.config.image.size, syn.info.get("ingest_spacing_mm")
    cube = fit_cube(load_volume(tmp_path / "new" / "H00001.nii.gz"), size, spacing).hu
    head_d = 0.5 * np.abs(anatomy.profile(cube) - mean).sum()
    assert max(found["distance"]) == pytest.approx(head_d) and head_d > found["threshold"]


def test_report_holds_the_papers_numbers(run, tmp_path):
    gen = tmp_path / "gen"
    infer.write_cohort(run, gen, n=4, progress=False)
    out = tmp_path / "report"
    assert cli.main(["report", "--real", str(cohort_of(run)), "--synthetic", str(gen),
                     "--out", str(out), "--run", str(run), "--latents", "2", "--no-umap"]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    real = report["conditioning"]["real"]
    # the phantom's fat grows with BMI: its own cohort must show it
    assert real["spearman_class_fat"]["rho"] > 0.5 and real["n"] == 8
    assert report["conditioning"]["synthetic"]["n"] == 4
    # MMCGAN's own measure (issue 17.6): occupied -150..300 HU volume against BMI, from the files
    occupied = report["conditioning"]["occupied_volume"]
    real_t, files_of = evaluation.read_cohort(cohort_of(run))
    volumes = [load_volume(files_of[str(p)]) for p in real_t.patient_id]
    ml = [evaluation.occupied_volume_ml(v.hu, v.spacing) for v in volumes]
    assert occupied["real"]["pearson_r"] == pytest.approx(np.corrcoef(real_t.bmi, ml)[0, 1])
    assert occupied["real"]["n"] == 8 and occupied["settings"]["against"] == "bmi"
    # the tabular scores are those of the real table and the generated rows
    real_t, _ = evaluation.read_cohort(cohort_of(run))
    syn_t, _ = evaluation.read_cohort(gen)
    columns = [c for c in real_t.columns if c != "patient_id" and c in syn_t.columns]
    want = tabular.quality(real_t[columns], syn_t[columns])
    got = report["tabular"]["quality"]
    assert got["column_shapes"] == pytest.approx(want["column_shapes"], abs=1e-12)
    assert got["overall"] == pytest.approx(want["overall"], abs=1e-12)
    html = (out / "index.html").read_text()
    for figure in ("conditioning_fractions", "conditioning_centre_slices", "tabular_univariate",
                   "tabular_heatmaps"):  # fmt: skip
        assert figure in html and (out / "figures" / f"{figure}.png").is_file()
    assert "umap" in html  # the skip is said


def test_tissue_fractions_count_body_voxels():
    hu = np.full((10, 10, 10), -1000.0)  # air: not body
    hu[:2] = -100.0  # 200 fat
    hu[2:5] = 0.0  # 300 water (also soft tissue)
    hu[5:6] = 200.0  # 100 soft tissue
    hu[6:7] = 700.0  # 100 bone: body, neither
    f = evaluation.tissue_fractions(hu)
    assert f == pytest.approx({"fat": 200 / 700, "soft_tissue": 400 / 700, "water": 300 / 700})
    assert np.isnan(evaluation.tissue_fractions(np.full((2, 2, 2), -1000.0))["fat"])


def _tree_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.mark.slow  # make test's budget: HA-GAN's writer checks the same threads by default
def test_a_cohort_spread_over_local_devices_is_the_one_device_cohort(run, tmp_path):
    """Batches spread over two devices (one thread each, jaxsyn.infer.hosts.each_device) give the
    files one device writes, byte for byte; the default on a CPU is one device. (Batches of 1:
    the batch shape test_rows_do_not_depend_on_the_batch_they_were_made_in compiles already.)"""
    one = infer.write_cohort(run, tmp_path / "one", n=2, batch=1, progress=False,
                             devices=jax.devices()[:1])  # fmt: skip
    two = infer.write_cohort(run, tmp_path / "two", n=2, batch=1, progress=False,
                             devices=jax.devices()[:2])  # fmt: skip
    a, b = _tree_bytes(one), _tree_bytes(two)
    assert len(a) == 2 + 2 and a == b  # 2 volumes, the table, the manifest
    from jaxsyn.infer import hosts

    assert hosts.generation_devices() == jax.devices()[:1]
