"""The model library without generating: cards and their schema, search (AND/OR/XOR, case,
keys), ranking, short ids, where models are found (duplicates refused naming both), hash checks
and archive path refusal. Cards here list one small file; nothing is loaded into JAX."""

import json
import os
import zipfile

import pytest

from jaxsyn import files
from jaxsyn.cli import main
from jaxsyn.errors import CheckpointError, ConfigError
from jaxsyn.zoo import Generators, cards, library


def card(model_id: str, *, modality="CT", anatomy="abdomen", tags=("phantom",), fid=None,
         auc=None, family="hagan", dimensionality="3D") -> dict:  # fmt: skip
    performance = {}
    if fid is not None:
        performance["FID"] = fid
    if auc is not None:
        performance["CLF"] = {"trained_on_fake": {"auc": auc}}
    return {
        "card_version": 1,
        "model_id": model_id,
        "execution": {
            "family": family,
            "jaxsyn_version": "0.1.0",
            "run": "run",
            "config": {},
            "conditions": {},
            "output": {"kind": "volumes", "shape": [8, 8, 8]},
        },  # fmt: skip
        "selection": {
            "modality": modality,
            "anatomy": anatomy,
            "dimensionality": dimensionality,
            "dataset": "phantom:ct",
            "tags": list(tags),
            "performance": performance,
        },  # fmt: skip
        "description": {
            "title": f"model {model_id}",
            "authors": ["A. Author"],
            "licence": "Apache-2.0",
            "training_data": "phantoms",
            "intended_use": "tests",
        },  # fmt: skip
        "files": {"run/weights.bin": "0" * 64},
    }


def install(folder, c: dict, payload: bytes = b"weights") -> None:
    """A model folder: the card and one listed file (run/weights.bin) with its sha256."""
    model = folder / c["model_id"]
    (model / "run").mkdir(parents=True)
    (model / "run" / "weights.bin").write_bytes(payload)
    c["files"] = {"run/weights.bin": files.sha256(model / "run" / "weights.bin")}
    files.write_json(model / "model.json", c)


@pytest.fixture
def lib(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXSYN_MODELS", raising=False)
    monkeypatch.setattr(library, "shipped", lambda: tmp_path / "no-shipped-models")
    folder = tmp_path / "lib"
    install(folder, card("00001_HAGAN_CT_A", fid=30.0, auc=0.70, tags=["phantom", "BMI"]))
    install(folder, card("00002_MMCGAN_CT_B", family="mmcgan", fid=10.0, auc=0.90,
                         dimensionality="3D+tabular"))  # fmt: skip
    install(folder, card("00003_ACGAN_XRAY_C", modality="Xray", anatomy="spine", fid=20.0,
                         family="acgan", dimensionality="2D"))  # fmt: skip
    install(folder, card("00004_CTGAN_TABLE_D", modality="clinical table", anatomy="none",
                         family="ctgan", dimensionality="tabular", tags=["diabetes"]))  # fmt: skip
    return folder


def ids(found) -> list[str]:
    return sorted(m.model_id for m in found)


def test_search_operators(lib):
    g = Generators(library=lib)
    assert ids(g.find_matching_models_by_values(["ct", "3d"])) == ["00001_HAGAN_CT_A"]
    assert ids(g.find_matching_models_by_values(["CT", "2D"], "OR")) == [
        "00001_HAGAN_CT_A", "00002_MMCGAN_CT_B", "00003_ACGAN_XRAY_C"]  # fmt: skip
    # XOR: exactly one of the values: the CT models hold "CT" only, the x-ray model "2D" only
    assert ids(g.find_matching_models_by_values(["CT", "2D"], "XOR")) == [
        "00001_HAGAN_CT_A", "00002_MMCGAN_CT_B", "00003_ACGAN_XRAY_C"]  # fmt: skip
    assert ids(g.find_matching_models_by_values(["CT", "3D"], "XOR")) == ["00002_MMCGAN_CT_B"]
    assert g.find_matching_models_by_values(["CT", "spine"], "AND") == []
    found = g.find_matching_models_by_values(["bmi"])  # a list item (tags) matches
    assert ids(found) == ["00001_HAGAN_CT_A"]
    assert found[0].matched_entries[0].key == "selection.tags"
    with pytest.raises(ConfigError, match="target_values_operator is 'NAND'"):
        g.find_matching_models_by_values(["CT"], "NAND")


def test_search_case_and_keys(lib):
    g = Generators(library=lib)
    assert ids(g.find_matching_models_by_values(["bmi"], is_case_sensitive=True)) == []
    assert ids(g.find_matching_models_by_values(["BMI"], is_case_sensitive=True)) == [
        "00001_HAGAN_CT_A"
    ]
    # "anatomy" is a key of every card, a value of none
    assert g.find_matching_models_by_values(["anatomy"]) == []
    assert len(g.find_matching_models_by_values(["anatomy"], are_keys_also_matched=True)) == 4
    by_key = g.get_models_by_key_value_pair("modality", "ct")
    assert by_key == [{"model_id": "00001_HAGAN_CT_A", "modality": "ct"},
                      {"model_id": "00002_MMCGAN_CT_B", "modality": "ct"}]  # fmt: skip
    assert g.get_models_by_key_value_pair("modality", "ct", is_case_sensitive=True) == []
    assert [m["model_id"] for m in g.get_models_by_key_value_pair("tags", "diabetes")] == [
        "00004_CTGAN_TABLE_D"]  # fmt: skip


def test_rank_order_and_dotted_metrics(lib):
    g = Generators(library=lib)
    assert g.rank_models_by_performance(metric="FID", order="asc") == [
        {"model_id": "00002_MMCGAN_CT_B", "FID": 10.0},
        {"model_id": "00003_ACGAN_XRAY_C", "FID": 20.0},
        {"model_id": "00001_HAGAN_CT_A", "FID": 30.0},
    ]  # the table model has no FID: left out
    desc = g.rank_models_by_performance(["1", 2, "00003"], "CLF.trained_on_fake.auc", "desc")
    assert desc == [{"model_id": "00002_MMCGAN_CT_B", "CLF.trained_on_fake.auc": 0.90},
                    {"model_id": "00001_HAGAN_CT_A", "CLF.trained_on_fake.auc": 0.70}]  # fmt: skip
    assert [r["model_id"] for r in g.find_models_and_rank(["CT"], metric="FID", order="desc")] == [
        "00001_HAGAN_CT_A", "00002_MMCGAN_CT_B"]  # fmt: skip


def test_rank_within_each_output_kind(lib, capsys):
    """FIDs of volumes and of radiographs are not on one scale: `--kind` ranks one kind, and
    without it the CLI ranks within each kind under its own heading and says so."""
    xray = lib / "00003_ACGAN_XRAY_C" / "model.json"
    c = json.loads(xray.read_text())
    c["execution"]["output"] = {"kind": "images", "shape": [8, 8, 1], "labels": ["0", "1"]}
    files.write_json(xray, c)
    g = Generators(library=lib)
    assert g.output_kind(3) == "images" and g.output_kind("00001") == "volumes"
    assert [r["model_id"] for r in g.rank_models_by_performance(kind="volumes")] == [
        "00002_MMCGAN_CT_B", "00001_HAGAN_CT_A"]  # fmt: skip
    assert g.rank_models_by_performance(kind="images") == [
        {"model_id": "00003_ACGAN_XRAY_C", "FID": 20.0}]  # fmt: skip
    assert g.find_models_and_rank(["CT"], metric="FID", kind="images") == []
    assert main(["models", "rank", "--metric", "FID", "--library", str(lib)]) == 0
    out = capsys.readouterr()
    assert out.out.split() == [
        "#", "images", "00003_ACGAN_XRAY_C", "FID", "=", "20",
        "#", "volumes", "00002_MMCGAN_CT_B", "FID", "=", "10", "00001_HAGAN_CT_A", "FID", "=", "30",
    ]  # fmt: skip
    assert "ranked within each output kind (images, volumes)" in out.err
    assert main(["models", "rank", "--kind", "table", "--library", str(lib)]) == 0
    assert capsys.readouterr().out.strip() == "no model records FID among table"


def test_short_ids_and_config(lib):
    g = Generators(library=lib)
    for short in (3, "3", "00003", "00003_ACGAN_XRAY_C"):
        assert g.get_config_by_id(short)["model_id"] == "00003_ACGAN_XRAY_C"
    assert g.get_config_by_id(3)["execution"]["path"] == str(
        (lib / "00003_ACGAN_XRAY_C").absolute()
    )
    assert g.get_selection_criteria_by_id("1")["tags"] == ["phantom", "BMI"]
    with pytest.raises(
        ConfigError, match="model id 7: no such model; expected one of 00001_HAGAN_CT_A"
    ):
        g.get_config_by_id(7)


def test_same_id_in_two_places_names_both(lib, tmp_path, monkeypatch):
    other = tmp_path / "other"
    install(other, card("00002_SOMETHING_ELSE"))
    monkeypatch.setenv("JAXSYN_MODELS", str(other))
    with pytest.raises(ConfigError) as e:
        Generators(library=lib)
    assert str(other / "00002_SOMETHING_ELSE") in str(e.value)
    assert str(lib / "00002_MMCGAN_CT_B") in str(e.value)
    # a folder named twice (env and --library) is one place, not a duplicate
    monkeypatch.setenv("JAXSYN_MODELS", str(lib))
    assert len(Generators(library=[lib, str(lib)]).list_models()) == 4


def test_card_errors_name_the_field(lib):
    c = card("00009_X")
    c["selection"]["dimensionality"] = "4D"
    with pytest.raises(
        ConfigError, match=r"x.json: field selection.dimensionality: \"4D\"; expected one of"
    ):
        cards.validate(c, "x.json")
    del c["description"]["licence"]
    c["selection"]["dimensionality"] = "3D"
    with pytest.raises(ConfigError, match=r"field description.licence: missing; expected a value"):
        cards.validate(c, "x.json")
    c = card("3_lowercase")
    with pytest.raises(
        ConfigError, match=r"field model_id: \"3_lowercase\"; expected text matching"
    ):
        cards.validate(c, "x.json")
    c = card("00009_X")
    c["files"] = {"../outside": "0" * 64}
    with pytest.raises(ConfigError, match=r"field files"):
        cards.validate(c, "x.json")
    c = card("00009_X")
    c["selection"]["performance"] = {"FID": "good"}
    with pytest.raises(ConfigError, match=r"field selection.performance.FID: \"good\""):
        cards.validate(c, "x.json")


def test_tampered_unlisted_and_missing_files_are_refused(lib):
    g = Generators(library=lib)
    model = lib / "00001_HAGAN_CT_A"
    g.checked_card(1)
    (model / "run" / "weights.bin").write_bytes(b"weightz")
    with pytest.raises(CheckpointError, match=r"run/weights.bin: sha256 differs from the card's"):
        g.generate(1, 1, save_images=False)
    (model / "run" / "weights.bin").write_bytes(b"weights")
    (model / "run" / "extra.npy").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"run/extra.npy: not listed in"):
        g.checked_card(1)
    os.remove(model / "run" / "extra.npy")
    os.remove(model / "run" / "weights.bin")
    with pytest.raises(CheckpointError, match=r"run/weights.bin: missing"):
        g.checked_card("00001")


@pytest.mark.parametrize("entry", ["../evil.json", "/etc/evil", "m/../../evil", "m\\..\\evil"])
def test_archive_entries_outside_the_folder_are_refused(lib, tmp_path, entry):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("00005_OK/model.json", "{}")
        z.writestr(entry, "x")
    target = tmp_path / "target"
    with pytest.raises(CheckpointError, match="would land outside the model folder"):
        library.add(archive, target)
    assert not (tmp_path / "evil.json").exists() and not any(target.iterdir())


def test_add_refuses_a_bad_card_and_keeps_the_library_clean(lib, tmp_path):
    src = tmp_path / "src"
    install(src, card("00007_NEW"))
    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in (src / "00007_NEW").rglob("*"):
            z.write(p, p.relative_to(src).as_posix())
    g = Generators(library=lib)
    assert g.add_model_to_config(archive) == "00007_NEW" and "00007_NEW" in g.list_models()
    with pytest.raises(ConfigError, match="already installed; expected a new id or --replace"):
        g.add_model_to_config(archive)
    assert g.add_model_to_config(archive, replace=True) == "00007_NEW"
    c = json.loads((src / "00007_NEW" / "model.json").read_text())
    c["files"]["run/weights.bin"] = "0" * 64
    files.write_json(src / "00007_NEW" / "model.json", c)
    with pytest.raises(CheckpointError, match="sha256 differs"):
        library.add(src / "00007_NEW", tmp_path / "other-lib")
    assert [p.name for p in (tmp_path / "other-lib").iterdir()] == []


def test_cli_list_search_rank_show_validate(lib, capsys):
    assert main(["models", "list", "--library", str(lib)]) == 0
    assert "00003_ACGAN_XRAY_C" in capsys.readouterr().out
    assert main(["models", "search", "xray", "spine", "--library", str(lib)]) == 0
    assert capsys.readouterr().out.startswith("00003_ACGAN_XRAY_C")
    assert (
        main(["models", "rank", "--metric", "FID", "--order", "desc", "--library", str(lib)]) == 0
    )
    assert capsys.readouterr().out.splitlines()[0].startswith("00001_HAGAN_CT_A")
    assert main(["models", "show", "2", "--library", str(lib)]) == 0
    assert json.loads(capsys.readouterr().out)["model_id"] == "00002_MMCGAN_CT_B"
    assert main(["models", "validate", "4", "--library", str(lib)]) == 0
    (lib / "00004_CTGAN_TABLE_D" / "run" / "weights.bin").write_bytes(b"changed")
    assert main(["models", "validate", str(lib / "00004_CTGAN_TABLE_D")]) == 1
    assert "weights.bin: sha256 differs" in capsys.readouterr().err


def test_shipped_models_validate_and_match_their_hashes():
    folder = library.shipped()
    models = (
        sorted(p for p in folder.iterdir() if (p / "model.json").is_file())
        if folder.is_dir()
        else []
    )
    for model in models:
        c = cards.read(model)
        cards.check_files(model, c)
    families = {cards.read(m)["execution"]["family"] for m in models}
    assert families >= {"hagan", "mmcgan", "ctgan", "acgan", "proggan", "cpdgan", "duiit"}, families
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 50e6
