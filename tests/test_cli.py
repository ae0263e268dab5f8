"""The `jaxsyn` command end to end, in process: exit codes, one-line errors, files written."""

import subprocess
import sys

import pytest

from jaxsyn.cli import build_parser, main
from jaxsyn.data.store import VolumeStore
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
    expected = "evaluate generate import impute ingest morph phantom preview report stream train"
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
