"""The torch-free PyTorch file reader (`jaxsyn.torchfile`): torch.save's zip and legacy formats
from committed fixtures (tests/eval/data, made by make_fixtures.py), and a one-line DataError
naming the file for everything that is not a whole PyTorch file."""

import importlib.util
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jaxsyn.errors import DataError
from jaxsyn.torchfile import read_torch_file
from tests.torchwriter import save_torch

DATA = Path(__file__).parent / "eval" / "data"


def test_refuses_code_in_a_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        read_torch_file(path)


@pytest.mark.parametrize("name", ["zip", "legacy"])
def test_reader_reads_committed_torch_files(name):
    """torch.save's zip and legacy formats: offsets into a shared storage, transposed strides,
    float16 / int64 / bool, without torch."""
    got = read_torch_file(DATA / f"torchfile_{name}.pth")
    expected = np.load(DATA / "torchfile_expected.npz")
    assert sorted(got) == sorted(expected.files)
    for k in expected.files:
        assert got[k].dtype == expected[k].dtype and got[k].shape == expected[k].shape, k
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


def test_test_writer_round_trips(tmp_path):
    """tests/torchwriter.py (used by the compat tests) writes what the reader reads back."""
    rng = np.random.default_rng(0)
    state = {
        "model": {"a.weight": rng.standard_normal((3, 2, 4)).astype(np.float32)},
        "optimizer": {"state": {0: {"step": np.array(5.0)}}, "param_groups": [{"lr": 1e-4}]},
    }
    got = read_torch_file(save_torch(state, tmp_path / "w.pth"))
    assert sorted(got) == ["model.a.weight", "optimizer.state.0.step"]
    np.testing.assert_array_equal(got["model.a.weight"], state["model"]["a.weight"])


def _tar_of(path: Path, member: str) -> Path:
    out = path.with_suffix(".tar")
    with tarfile.open(out, "w") as tar:
        tar.add(DATA / "torchfile_zip.pth", arcname=member)
    return out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "not a PyTorch file"),
        (lambda p: p.write_bytes(b"<!DOCTYPE html><html>quota exceeded"), "not a PyTorch file"),
        (
            lambda p: p.write_bytes((DATA / "torchfile_zip.pth").read_bytes()[:300]),
            "damaged or truncated zip archive",
        ),
        (lambda p: _tar_of(p, "G_iter80000.pth").rename(p), r"a tar archive \(members \['G_iter"),
        (lambda p: _tar_of(p, "storages").rename(p), "oldest, tar-based format"),
        (
            lambda p: p.write_bytes((DATA / "torchfile_legacy.pth").read_bytes()[:-40]),
            "truncated inside storage",
        ),
    ],
    ids=["empty", "html", "truncated-zip", "tar", "old-tar", "truncated-legacy"],
)
def test_not_a_checkpoint_is_one_line_naming_the_file(tmp_path, make, message):
    path = tmp_path / "G_iter1.pth"
    make(path)
    with pytest.raises(DataError, match=message) as err:
        read_torch_file(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_torch_file(tmp_path / "absent.pth")


def _make_fixtures():
    spec = importlib.util.spec_from_file_location("make_fixtures", DATA / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.peers
@pytest.mark.parametrize("legacy", [False, True])
def test_reader_matches_torch_save(tmp_path, legacy):
    """The committed fixtures' state dict, saved afresh by this torch (its own writer today)."""
    torch = pytest.importorskip("torch")
    state = _make_fixtures().torch_state()
    path = tmp_path / "w.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    got = read_torch_file(path)
    assert set(got) == set(state)
    for k, v in state.items():
        np.testing.assert_array_equal(got[k], v.numpy(), err_msg=k)
        assert got[k].dtype == v.numpy().dtype


@pytest.mark.peers
def test_torch_reads_the_test_writer_and_fails_on_a_tar_as_reported(tmp_path):
    """torch.load reads tests/torchwriter.py's files; on a tar archive it fails with the
    KeyError 'storages' of batmanlab/HA-GAN#13, where the reader names the file and the cause."""
    torch = pytest.importorskip("torch")
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = save_torch({"model": {"w": w.T}}, tmp_path / "w.pth")
    loaded = torch.load(path, weights_only=True)
    np.testing.assert_array_equal(loaded["model"]["w"].numpy(), w.T)
    tar = _tar_of(tmp_path / "gsp", "HA_GAN_GSP/G_iter80000.pth")
    with pytest.raises(KeyError, match="storages"):
        torch.load(tar, weights_only=False)
    with pytest.raises(DataError, match="a tar archive"):
        read_torch_file(tar)
