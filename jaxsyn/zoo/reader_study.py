"""A reader study: the visual Turing test of DuMont et al. 2020 (§S.8), as files.

    study = make_study("study", real_pictures, synthetic_pictures, seed=0)   # a blinded set
    Study("study").record("alice", image_id, "real")                        # one answer, on disk
    report = score("study")                                                  # report.json + html

Layout of a study folder:
  study.json          what the page may know: the image ids (sorted, so in no source's order),
                      the picture size, the seed of the readers' orders; nothing about sources
  images/<id>.png     8-bit grey PNGs of one size, no text chunks, written in id order; ids are
                      random (`secrets`), not drawn from the seed, so nothing served or derivable
                      from what is served reveals which is which
  key.json            id -> source ("real"/"synthetic") and the file or model it came from; the
                      server never reads it, only `score` does
  answers/<reader>.json  one reader's answers in the order given, rewritten atomically after
                      each click (jaxsyn.files), so a killed server loses nothing and a reload
                      shows the next unanswered image

Each reader sees every image once, in an order drawn from the study's seed and the reader's name
(the same reader always gets the same order; two readers get different ones). Readers are not
told how many images come from each source (DuMont et al. told theirs each image was sampled at
random).

Scoring follows §S.8/S.10: per reader TR (real called real), FS (real called synthetic), FR
(synthetic called real), TS (synthetic called synthetic); accuracy (TR + TS) / answered;
sensitivity TS / (TS + FR) and specificity TR / (TR + FS), taking "synthetic" as the positive
finding. Per reader a one-sided exact binomial test of the correct answers against chance (H1:
accuracy > 0.5, scipy.stats.binomtest). Across readers who answered every image, the one-sided
Wilcoxon signed-rank test of their accuracies against 0.5 (jaxsyn.eval.stats.wilcoxon) in both
directions: "greater" asks whether readers tell the sources apart; "less" is the direction DuMont
et al. report (their p < 0.01 for brain CT is readers below chance). Beside each p its minimum
attainable value, 1 / 2^n for n readers off 0.5: three readers cannot give p < 0.125.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import time
from pathlib import Path

import numpy as np
import scipy.stats

from jaxsyn import files
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import stats
from jaxsyn.eval.report import Report
from jaxsyn.zoo.pages import png_bytes

FORMAT = "jaxsyn.reader_study/1"
STUDY, KEY, IMAGES, ANSWERS = "study.json", "key.json", "images", "answers"
SOURCES = ("real", "synthetic")
READER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclasses.dataclass(frozen=True)
class Picture:
    """One image of the study: uint8 [size, size] grey, and where it came from (key.json only)."""

    pixels: np.ndarray
    origin: str


def make_study(
    out, real: list[Picture], synthetic: list[Picture], *, seed: int = 0, meta: dict | None = None
) -> Path:
    """Write a blinded study folder `out` (must not exist) from rendered pictures of each source.

    All pictures must share one shape (a size that differs by source would give it away).
    `meta` (e.g. the folders or model id) goes to key.json only.
    """
    out = Path(out)
    if out.exists():
        raise ConfigError(f"--out {out}: already exists; expected a new folder for the study")
    pictures = [("real", p) for p in real] + [("synthetic", p) for p in synthetic]
    if not real or not synthetic:
        raise DataError(
            f"{out}: {len(real)} real and {len(synthetic)} synthetic images; expected both"
        )
    kinds = {(p.pixels.shape, p.pixels.dtype.str) for _, p in pictures}
    if len(kinds) != 1:
        raise DataError(
            f"{out}: pictures of several shapes or types {sorted(map(str, kinds))}; expected one"
        )
    ids: dict[str, tuple[str, Picture]] = {}
    while len(ids) < len(pictures):  # 48-bit random ids; a repeat is drawn again
        ids.setdefault(secrets.token_hex(6), pictures[len(ids)])
    with files.atomic_dir(out) as tmp:
        for image_id in sorted(ids):  # id order: random with respect to the source
            files.write_bytes(tmp / IMAGES / f"{image_id}.png", png_bytes(ids[image_id][1].pixels))
        files.write_json(
            tmp / STUDY,
            {
                "format": FORMAT,
                "images": sorted(ids),
                "size": list(pictures[0][1].pixels.shape),
                "order_seed": int(seed),
            },
        )
        key = {i: {"source": s, "origin": p.origin} for i, (s, p) in ids.items()}
        files.write_json(tmp / KEY, {"images": key, "seed": int(seed), **(meta or {})})
        (tmp / ANSWERS).mkdir()
    return out


def check_reader(name: str) -> str:
    if not READER_NAME.match(name or ""):
        raise ConfigError(
            f"reader name {name!r}: expected 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return name


class Study:
    """A study folder as the server sees it: ids, orders and answers, never the key."""

    def __init__(self, folder):
        self.folder = Path(folder)
        path = self.folder / STUDY
        try:
            info = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(
                f"{path}: no such file; expected a folder made by `jaxsyn reader-study make`"
            ) from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not JSON ({e})") from None
        if info.get("format") != FORMAT:
            raise DataError(f"{path}: format {info.get('format')!r}; expected {FORMAT!r}")
        self.images: list[str] = info["images"]
        self.order_seed: int = info["order_seed"]
        self._known = set(self.images)

    def order(self, reader: str) -> list[str]:
        """The order `reader` sees the images in: from the study's seed and the reader's name."""
        name = int.from_bytes(hashlib.sha256(check_reader(reader).encode()).digest()[:8], "big")
        rng = np.random.default_rng([self.order_seed, name])
        return [self.images[i] for i in rng.permutation(len(self.images))]

    def readers(self) -> list[str]:
        return sorted(p.stem for p in (self.folder / ANSWERS).glob("*.json"))

    def answers(self, reader: str) -> list[dict]:
        """[{"id", "answer", "time"}] in the order given."""
        path = self.folder / ANSWERS / f"{check_reader(reader)}.json"
        if not path.exists():
            return []
        try:
            return json.loads(path.read_text())["answers"]
        except (json.JSONDecodeError, KeyError) as e:
            raise DataError(
                f"{path}: unreadable answers ({e}); expected the file the server wrote"
            ) from None

    def next_image(self, reader: str) -> str | None:
        """The first image of the reader's order not yet answered (None: done)."""
        done = {a["id"] for a in self.answers(reader)}
        return next((i for i in self.order(reader) if i not in done), None)

    def record(self, reader: str, image_id: str, answer: str) -> bool:
        """Store `answer` for `image_id` if it is the reader's next image; False (nothing stored)
        for any other id, e.g. a form sent twice by a reload."""
        if answer not in SOURCES:
            raise ConfigError(f"answer {answer!r}: expected one of {SOURCES}")
        if image_id not in self._known or image_id != self.next_image(reader):
            return False
        answers = self.answers(reader) + [
            {"id": image_id, "answer": answer, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        ]
        files.write_json(
            self.folder / ANSWERS / f"{reader}.json", {"reader": reader, "answers": answers}
        )
        return True

    def image_path(self, image_id: str) -> Path | None:
        return self.folder / IMAGES / f"{image_id}.png" if image_id in self._known else None


def reader_counts(answers: list[dict], key: dict[str, str]) -> dict:
    """TR/FS/FR/TS of one reader's answers given key {id: source}, and the rates built on them."""
    pairs = [(key[a["id"]], a["answer"]) for a in answers]
    counts = {
        "TR": pairs.count(("real", "real")),
        "FS": pairs.count(("real", "synthetic")),
        "FR": pairs.count(("synthetic", "real")),
        "TS": pairs.count(("synthetic", "synthetic")),
    }
    n, correct = len(pairs), counts["TR"] + counts["TS"]
    binomial = scipy.stats.binomtest(correct, n, 0.5, alternative="greater") if n else None
    return {
        **counts,
        "answered": n,
        "accuracy": correct / n if n else None,
        "sensitivity": _ratio(counts["TS"], counts["TS"] + counts["FR"]),
        "specificity": _ratio(counts["TR"], counts["TR"] + counts["FS"]),
        "binomial_pvalue": binomial.pvalue if binomial else None,
        "binomial_min_pvalue": 0.5**n if n else None,  # every answer right
    }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def across_readers(accuracies: list[float]) -> dict:
    """Wilcoxon signed-rank tests of accuracies against 0.5, both one-sided directions."""
    out = {"readers": len(accuracies), "mean_accuracy": float(np.mean(accuracies))}
    for alternative in ("greater", "less"):
        result = stats.wilcoxon(accuracies, 0.5, alternative=alternative)
        out[f"wilcoxon_{alternative}"] = {
            "statistic": result.statistic,
            "pvalue": result.pvalue,
            "min_pvalue": result.min_pvalue,
            "method": result.method,
        }
    return out


def score(folder, out=None) -> dict:
    """Score every reader of study `folder`; write report.json + index.html to `out` (default
    FOLDER/report) and return report.json's content."""
    study = Study(folder)
    key_path = study.folder / KEY
    try:
        key = {i: v["source"] for i, v in json.loads(key_path.read_text())["images"].items()}
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as e:
        raise DataError(
            f"{key_path}: unreadable key ({type(e).__name__}: {e}); expected the file `make` wrote"
        ) from None
    report = Report(
        Path(out) if out else study.folder / "report", title=f"Reader study {study.folder.name}"
    )
    report.text(
        "readers",
        "TR: real called real, FS: real called synthetic, FR: synthetic called real, TS: synthetic "
        "called synthetic; sensitivity TS/(TS+FR), specificity TR/(TR+FS); binomial: one-sided "
        "exact test of the correct answers against 0.5.",
    )
    complete = []
    for reader in study.readers():
        answers = study.answers(reader)
        if unknown := sorted({a["id"] for a in answers} - set(key)):
            path = study.folder / ANSWERS / f"{reader}.json"
            raise DataError(f"{path}: answers for ids {unknown[:3]} that {key_path} does not hold")
        counts = reader_counts(answers, key)
        counts["complete"] = counts["answered"] == len(study.images)
        report.numbers(f"readers.{reader}", counts)
        if counts["complete"]:
            complete.append(counts["accuracy"])
    report.numbers(
        "study",
        {
            "images": len(study.images),
            "per_source": {s: list(key.values()).count(s) for s in SOURCES},
        },
    )
    if complete:
        report.numbers("across_readers", across_readers(complete))
        report.text(
            "across_readers",
            "Wilcoxon signed-rank tests of the accuracies of readers who answered every image "
            "against 0.5; 'greater': readers tell the sources apart, 'less': readers below chance "
            "(DuMont et al.'s direction). min_pvalue: the smallest p these readers can give.",
        )
    else:
        report.text(
            "across_readers", "no reader has answered every image yet; no test across readers"
        )
    report.write()
    return json.loads((report.out_dir / "report.json").read_text())
