"""The public API resolves, and every verb answers bad input with one line and exit 1."""

import inspect

import pytest

import jaxsyn
from jaxsyn.cli import main


def test_every_public_name_resolves():
    for name in jaxsyn.__all__:
        value = getattr(jaxsyn, name)
        assert value is not None, name
        if name in jaxsyn._LAZY:  # the object the module defines, not a stand-in
            assert inspect.getmodule(value).__name__.startswith("jaxsyn."), name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        jaxsyn.nothing  # noqa: B018


# one bad input per verb: (argv with {tmp} for a scratch folder, words the one line must hold)
BAD = {
    "phantom": (["phantom", "ct", "--n", "2", "--size", "7", "--out", "{tmp}/p"], "size"),
    "ingest": (["ingest", "--images", "{tmp}/none", "--out", "{tmp}/s"], "none"),
    "preview": (["preview", "--data", "{tmp}/none.nii.gz", "--out", "{tmp}/p.png"], "none.nii.gz"),
    "stream": (["stream", "--data", "{tmp}/none"], "none"),
    "train": (["train", "hagan", "--tiny", "--out", "{tmp}/r", "--steps", "1"], "--data"),
    "generate": (["generate", "--run", "{tmp}", "--out", "{tmp}/g"], "config.json"),
    "evaluate": (
        ["evaluate", "--real", "{tmp}/none", "--synthetic", "{tmp}", "--out", "{tmp}/e"],
        "none",
    ),  # fmt: skip
    "impute": (["impute", "--run", "{tmp}", "--out", "{tmp}/i"], "exactly one of"),
    "report": (
        ["report", "--real", "{tmp}/none", "--synthetic", "{tmp}", "--out", "{tmp}/r"],
        "none",
    ),  # fmt: skip
    "morph": (
        ["morph", "--run", "{tmp}", "--from", "a", "--to", "b", "--out", "{tmp}/m.png"],
        "config.json",
    ),  # fmt: skip
    "import": (
        [
            "import",
            "hagan",
            "--checkpoint-dir",
            "{tmp}/none",
            "--iteration",
            "5",
            "--out",
            "{tmp}/r",
        ],
        "none: no such folder",
    ),  # fmt: skip
    "models": (["models", "show", "99", "--library", "{tmp}"], "model id '99': no such model"),
    "bench": (["bench", "--family", "nosuch", "--out", "{tmp}/b.json"], "--family nosuch"),
    "reader-study": (["reader-study", "score", "{tmp}/none"], "none/study.json: no such file"),
    "translate": (
        ["translate", "--run", "{tmp}", "--images", "{tmp}", "--out", "{tmp}/t"],
        "config.json",
    ),  # fmt: skip
    "predict": (
        ["predict", "--run", "{tmp}", "--images", "{tmp}", "--out", "{tmp}/p"],
        "config.json",
    ),
}


@pytest.mark.parametrize("verb", sorted(BAD))
def test_bad_input_is_one_line_without_traceback(verb, tmp_path, capsys):
    argv, words = BAD[verb]
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.split("\n") if line and "\r" not in line]  # no progress bars
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith(f"jaxsyn {verb}: error: "), err
    assert words in lines[0] and "Traceback" not in err


def test_every_verb_has_a_bad_input_case():
    from tests.test_cli import VERBS

    assert sorted(BAD) == VERBS
