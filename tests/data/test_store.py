import json

import numpy as np
import pandas as pd
import pytest
import tensorstore as ts

from jaxsyn.data.store import VolumeStore, ingest
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.files import sha256
from tests.helpers import coded_volume


def test_ingest_stores_exact_hu_levels_table_and_manifest(cohort, tmp_path):
    images, table = cohort
    store = VolumeStore(ingest(images, tmp_path / "s", table=table, size=32, progress=False))
    assert store.ids == ["P0", "P1", "P2", "P3"] and store.size == 32
    for i in range(4):
        full = store.read(i)
        assert full.dtype == np.int16
        np.testing.assert_array_equal(full, coded_volume(i, 32))  # 32³ at 1 mm: stored as is
        np.testing.assert_array_equal(store.read(i, level=2), full[::4, ::4, ::4])  # nearest ÷4
        np.testing.assert_array_equal(store.read_slab(i, 5, 4), full[5:9])
    manifest = store.manifest
    assert manifest["window"] == [-1024.0, 600.0] and manifest["id_column"] == "patient_id"
    assert manifest["volumes"][2]["spacing"] == [1.0, 1.0, 1.0]
    assert manifest["inputs"]["sources"]["P1.nii.gz"] == sha256(images / "P1.nii.gz")
    for name, digest in manifest["files"].items():  # every file listed with its real checksum
        assert sha256(store.path / name) == digest
    assert "table.parquet" in manifest["files"]
    pd.testing.assert_frame_equal(store.table, pd.read_csv(table))
    np.testing.assert_array_equal(
        store.conditions(("bmi_class", "age")), [[0, 50.5], [1, 61], [2, 70.25], [3, 44]]
    )


def test_slab_reads_only_the_chunks_it_touches(cohort, tmp_path):
    images, _ = cohort
    store = VolumeStore(ingest(images, tmp_path / "s", size=32, progress=False))
    store.read_slab(0, 0, 1)  # open the array first, so metadata reads are not counted

    def reads():
        metrics = ts.experimental_collect_matching_metrics("/tensorstore/kvstore/file/read")
        return sum(v["value"] for m in metrics if m["name"].endswith("/read") for v in m["values"])

    before = reads()
    store.read_slab(1, 7, 4)  # S/8 = 4 slices; chunk depth at S=32 is 1 slice
    assert reads() - before == 4
    before = reads()
    store.read(1)
    assert reads() - before == 32


def test_rerun_is_a_no_op_and_other_inputs_are_refused(cohort, tmp_path):
    images, table = cohort
    out = ingest(images, tmp_path / "s", table=table, size=32, progress=False)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    ingest(images, out, table=table, size=32, progress=False)
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match=r"s: already holds a different store .*'size'"):
        ingest(images, out, table=table, size=64, progress=False)
    assert VolumeStore(out).size == 32  # untouched


def test_target_that_is_not_a_store_is_refused(cohort, tmp_path):
    images, _ = cohort
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="busy: exists and is not a jaxsyn store"):
        ingest(images, tmp_path / "busy", size=32, progress=False)
    (tmp_path / "empty").mkdir()
    assert len(VolumeStore(ingest(images, tmp_path / "empty", size=32, progress=False))) == 4


def test_bad_volume_stops_and_leaves_nothing(cohort, tmp_path):
    images, _ = cohort
    (images / "P9.nii.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(DataError, match=r"P9\.nii\.gz: not a readable NIfTI"):
        ingest(images, tmp_path / "s", size=32, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "table.csv"]


def test_skip_bad_lists_the_skipped_file(cohort, tmp_path):
    images, _ = cohort
    (images / "P9.nii.gz").write_bytes(b"\x1f\x8b broken")
    store = VolumeStore(ingest(images, tmp_path / "s", size=32, skip_bad=True, progress=False))
    assert store.ids == ["P0", "P1", "P2", "P3"]
    assert [s["source"] for s in store.manifest["skipped"]] == ["P9.nii.gz"]
    assert store.level(0).shape == (4, 32, 32, 32)
    np.testing.assert_array_equal(store.read(3), coded_volume(3, 32))


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: t.assign(patient_id=["P0", None, "P2", "P3"]),
            "'patient_id' is empty in 1 rows",
        ),
        (lambda t: t.assign(patient_id=["P0", "P0", "P2", "P3"]), r"duplicate ids \['P0'\]"),
        (
            lambda t: pd.concat([t, t.iloc[:1].assign(patient_id="P7")]),
            r"id\(s\) \['P7'\] have no volume",
        ),
        (lambda t: t.iloc[1:], r"no row for the volume id\(s\) \['P0'\]"),
        (
            lambda t: t.assign(age=["50", "61", "seventy", "44"] + []),
            "'age' holds 'seventy' for patient P2",
        ),
    ],
)
def test_bad_tables_are_refused(cohort, tmp_path, edit, message):
    images, table = cohort
    df = pd.read_csv(table)
    if "seventy" in message:  # mixed column needs enough rows to be told from a category
        df = pd.concat([df] * 2, ignore_index=True).assign(patient_id=[f"P{i}" for i in range(8)])
        df["age"] = ["50", "61", "seventy", "44", "1", "2", "3", "4"]
        for i in range(4, 8):
            (images / f"P{i}.nii.gz").write_bytes((images / "P0.nii.gz").read_bytes())
    else:
        df = edit(df)
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=f"bad.csv: .*{message}"):
        ingest(images, tmp_path / "s", table=tmp_path / "bad.csv", size=32, progress=False)
    assert not (tmp_path / "s").exists()


def test_missing_paths_and_bad_options(cohort, tmp_path):
    images, table = cohort
    with pytest.raises(DataError, match="nowhere: no such image folder"):
        ingest(tmp_path / "nowhere", tmp_path / "s", progress=False)
    with pytest.raises(DataError, match="none.csv: no such table file"):
        ingest(images, tmp_path / "s", table=tmp_path / "none.csv", size=32, progress=False)
    with pytest.raises(ConfigError, match="--size is 48"):
        ingest(images, tmp_path / "s", size=48, progress=False)
    with pytest.raises(ConfigError, match="--window"):
        ingest(images, tmp_path / "s", size=32, window=(600, -1024), progress=False)


def test_conditions_must_be_numeric_and_present(cohort, tmp_path):
    images, table = cohort
    df = pd.read_csv(table)
    df.loc[2, "age"] = np.nan
    df.to_csv(table, index=False)
    store = VolumeStore(ingest(images, tmp_path / "s", table=table, size=32, progress=False))
    with pytest.raises(ConfigError, match="condition column 'site' is"):
        store.conditions(("site",))
    with pytest.raises(DataError, match="condition 'age' is missing for patient P2"):
        store.conditions(("age",))
    with pytest.raises(ConfigError, match="no condition column 'bmi'"):
        store.conditions(("bmi",))


def test_store_without_manifest_is_refused(tmp_path):
    with pytest.raises(DataError, match="not a jaxsyn store"):
        VolumeStore(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(DataError, match="field format is 'other/9'"):
        _ = VolumeStore(tmp_path).manifest
