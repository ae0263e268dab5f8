"""The `jaxsyn` command end to end, in process: exit codes, one-line errors, files written."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxsyn.cli import build_parser, main
from jaxsyn.cli import data as data_cli
from jaxsyn.cli.app import split_argv
from jaxsyn.data import store as store_module
from jaxsyn.data.store import VolumeStore
from jaxsyn.data.volumes import Volume, save_nifti
from jaxsyn.errors import DataError


def test_ingest_stream_and_preview(cohort, tmp_path, capsys):
    images, table = cohort
    store = tmp_path / "store"
    argv = [
        "ingest",
        "--images",
        str(images),
        "--table",
        str(table),
        "--size",
        "32",
        "--out",
        str(store),
    ]
    assert main(argv) == 0
    assert "4 volumes at 32³" in capsys.readouterr().out
    assert main(argv) == 0  # idempotent
    assert len(VolumeStore(store)) == 4
    assert (
        main(
            [
                "stream",
                "--data",
                str(store),
                "--batches",
                "2",
                "--batch-size",
                "2",
                "--condition",
                "bmi_class",
                "--out",
                str(tmp_path / "b.png"),
            ]
        )
        == 0
    )
    assert "streamed 4 examples" in capsys.readouterr().out
    grid = np.asarray(Image.open(tmp_path / "b.png"))  # panels titled on top (issue 22.6)
    quarter = grid.shape[1] // 4
    assert all(grid[:12, k * quarter : (k + 1) * quarter].max() > 128 for k in range(4))
    assert main(["preview", "--data", str(store), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG" and (
        tmp_path / "p.png"
    ).stat().st_size > 0


def test_errors_are_one_line_without_traceback(cohort, tmp_path, capsys):
    images, _ = cohort
    (images / "P2.nii.gz").write_bytes(b"garbage")
    code = main(["ingest", "--images", str(images), "--size", "32", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.split("\n") if line and "\r" not in line]  # no progress bar
    assert len(lines) == 1 and lines[0].startswith("jaxsyn ingest: error: ")
    assert "P2.nii.gz" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxsyn.cli",
            "--debug",
            "ingest",
            "--images",
            str(tmp_path / "no"),
            "--out",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "DataError" in proc.stderr


def test_debug_after_the_verb(tmp_path):
    argv = ["ingest", "--images", str(tmp_path / "no"), "--out", str(tmp_path / "s")]
    with pytest.raises(DataError, match="no such image folder"):
        main([*argv, "--debug"])
    assert main(argv) == 1  # without it: one line, exit 1


VERBS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_the_command_has_its_verbs():
    expected = (
        "bench evaluate generate import impute ingest models morph phantom predict preview "
        "reader-study report stream train translate"
    )
    assert expected.split() == VERBS


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([verb, "--help"])
    assert exit_.value.code == 0 and f"usage: jaxsyn {verb}" in capsys.readouterr().out


def test_bad_flag_values_exit_nonzero(cohort, tmp_path, capsys):
    images, _ = cohort
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "ingest",
                "--images",
                str(images),
                "--out",
                str(tmp_path / "s"),
                "--window",
                "low,high",
            ]
        )
    assert exit_.value.code == 2 and "expected LOW,HIGH" in capsys.readouterr().err


def test_negative_values_and_spaced_overrides_are_read(cohort, tmp_path, capsys):
    """`--window -1024,600` (argparse alone reads `-1024,600` as an unknown option) and
    `--config.FIELD VALUE` with a space (issue 22 items 4 and 6)."""
    images, _ = cohort
    out = tmp_path / "s"
    argv = ["ingest", "--images", str(images), "--out", str(out), "--size", "32"]
    assert main([*argv, "--window", "-1000,500"]) == 0
    assert VolumeStore(out).window == (-1000.0, 500.0)
    assert split_argv(["train", "hagan", "--config.size", "64", "--seed", "-3"]) == (
        False,
        ["size=64"],
        ["train", "hagan", "--seed=-3"],
    )
    train = ["train", "hagan", "--out", str(tmp_path / "r"), "--steps", "1"]
    assert main([*train, "--config.sise", "64"]) == 1  # read as --config.sise=64, then refused
    assert "--config.sise: no such field" in capsys.readouterr().err
    assert main([*train, "--config.size"]) == 1
    assert "--config.size: no value; expected --config.size=VALUE" in capsys.readouterr().err


def test_generate_from_a_missing_run_names_every_family(tmp_path, capsys):
    argv = ["generate", "--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "g")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    families = "acgan|cpdgan|ctgan|hagan|mmcgan|proggan"
    assert (
        f"nowhere: no such folder; expected a run folder made by `jaxsyn train {families}`" in err
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text('{"family": "cyclegan"}')
    assert main(["generate", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "g")]) == 1
    assert "field family is 'cyclegan'; expected 'acgan' or 'cpdgan'" in capsys.readouterr().err


def test_ingest_refuses_a_thin_volume_unless_told(cohort, tmp_path, capsys):
    """A one-slice NIfTI would become a cube of air with one slice of anatomy (issue 22 item 6)."""
    images, _ = cohort
    save_nifti(images / "P9.nii.gz", Volume(hu=np.zeros((1, 32, 32)), affine=np.eye(4)))
    argv = ["ingest", "--images", str(images), "--out", str(tmp_path / "s"), "--size", "32"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "P9.nii.gz: shape [1, 32, 32] is 1 voxel(s) thin; expected >= 8" in err
    assert "--min-slices 1 takes it" in err and not (tmp_path / "s").exists()
    assert main([*argv, "--min-slices", "1"]) == 0
    assert len(VolumeStore(tmp_path / "s")) == 5
    assert main([*argv[:3], "--out", str(tmp_path / "k"), "--size", "32", "--skip-bad"]) == 0
    assert [s["source"] for s in VolumeStore(tmp_path / "k").manifest["skipped"]] == ["P9.nii.gz"]
    assert data_cli.MIN_SLICES == store_module.MIN_SLICES  # the CLI's default is the library's
