"""Files and folders jaxsyn writes atomically get the umask's permissions (issue 22 item 2):
`tempfile.mkstemp`/`mkdtemp` make 0600 / 0700 names, which a rename used to carry over."""

import os
import stat

import numpy as np
import pytest

from jaxsyn import files
from jaxsyn.data.preview import save_grid
from jaxsyn.data.store import ingest
from jaxsyn.data.volumes import Volume, diagonal_affine, save_nifti
from jaxsyn.eval.report import Report


@pytest.fixture(params=[0o022, 0o027, 0o002], ids=oct)
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes(root):
    """{relative path: permission bits} of `root` and everything under it."""
    paths = [root, *root.rglob("*")]
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in paths}


def test_umask_is_read_without_changing_it(umask):
    assert files.umask() == umask
    assert files.umask() == umask


def test_atomic_writes_get_the_umask_modes(umask, cohort, tmp_path):
    images, table = cohort
    out = tmp_path / "out"
    out.mkdir(mode=0o777 & ~umask)
    files.write_json(out / "manifest.json", {"a": 1})
    save_nifti(
        out / "v.nii.gz", Volume(hu=np.zeros((4, 4, 4)), affine=diagonal_affine((1,) * 3, (4,) * 3))
    )
    save_grid(out / "p.png", [np.zeros((4, 4), np.uint8)], ["x"])
    report = Report(out / "report")
    report.numbers("fidelity", {"fid": 1.0})
    report.write()
    with files.atomic_dir(out / "folder") as tmp:
        (tmp / "inner.txt").write_text("x")
    ingest(images, out / "store", table=table, size=32, progress=False)

    found = modes(out)
    assert "store/volumes/0/.zarray" in found and "report/index.html" in found
    want_file, want_dir = 0o666 & ~umask, 0o777 & ~umask
    wrong = {
        path: oct(mode)
        for path, mode in found.items()
        if mode != (want_dir if (out / path).is_dir() else want_file)
    }
    assert not wrong, f"umask {oct(umask)}: expected {oct(want_file)} / {oct(want_dir)}"


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), files.atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
