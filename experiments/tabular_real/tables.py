"""The real clinical tables of the study, each as it ships inside a PyPI package (nothing is
downloaded), with its discrete columns and its utility target named. Fixed before any tuning.

  diabetes  scikit-learn `load_diabetes(scaled=False)` (Efron et al. 2004): 442 patients, ten
            baseline variables and a disease-progression score one year later. Discrete: sex.
            Target: `target` (continuous, R²).
  whas500   scikit-survival `load_whas500()`: Worcester Heart Attack Study, 500 patients, 14
            covariates plus follow-up (`lenfol`, days) and vital status (`fstat`). Discrete: the
            eight 0/1 covariates and fstat. Target: `fstat` (binary, AUC).
  actg175   lifelines' ACTG175.csv (AIDS Clinical Trials Group 175, Hammer et al. 1996): 2139
            patients. Dropped: the row number and `pidnum` (identifiers), `zprior` (constant) and
            `cd496` (CD4 at week 96, missing for 37 % of patients: ctgan refuses missing numbers,
            so both implementations get the same table). Discrete: the 0/1 indicators, `karnof`
            (4 levels), `strat` (3), `arms` (4). Target: `cens` (binary, AUC).
  gbsg2     lifelines `load_gbsg2()`: German Breast Cancer Study Group 2, 686 patients. Discrete:
            horTh, menostat, tgrade, cens. Target: `cens` (binary, AUC).
  flchain   (tuning only, never reported with the four) scikit-survival `load_flchain()`:
            7874 residents of Olmsted County; rows with missing creatinine dropped (ctgan refuses
            missing numbers), the missing cause-of-death chapter is its own category "alive".
            Discrete: chapter, flc.grp, mgus, sample.yr, sex, death. Target: `death` (binary).
"""

from __future__ import annotations

import dataclasses
import warnings

import pandas as pd

REPORTED = ("diabetes", "whas500", "actg175", "gbsg2")
TUNING = "flchain"


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    frame: pd.DataFrame
    discrete: tuple[str, ...]
    target: str
    task: str  # "binary" (AUC) or "regression" (R²)

    def kinds(self) -> dict[str, str]:
        """jaxsyn kinds: the named discrete columns categorical, the rest integer or float."""
        return {
            c: "categorical"
            if c in self.discrete
            else ("integer" if pd.api.types.is_integer_dtype(self.frame[c]) else "float")
            for c in self.frame.columns
        }


def _ints(df: pd.DataFrame, columns) -> pd.DataFrame:
    df = df.copy()
    for c in columns:
        df[c] = df[c].astype(int)
    return df


def diabetes() -> Table:
    from sklearn.datasets import load_diabetes

    df = load_diabetes(as_frame=True, scaled=False).frame
    df = _ints(df, ["sex"])
    return Table("diabetes", df.reset_index(drop=True), ("sex",), "target", "regression")


def whas500() -> Table:
    from sksurv.datasets import load_whas500

    x, y = load_whas500()
    df = x.copy()
    discrete = ["afb", "av3", "chf", "cvd", "gender", "miord", "mitype", "sho"]
    for c in discrete:
        df[c] = df[c].astype(str).astype(int)
    df["lenfol"] = y["lenfol"].astype(float)
    df["fstat"] = y["fstat"].astype(int)
    return Table("whas500", df.reset_index(drop=True), (*discrete, "fstat"), "fstat", "binary")


def actg175() -> Table:
    from lifelines import datasets

    df = datasets._load_dataset("ACTG175.csv")  # lifelines has no public loader for this file
    df = df.drop(columns=["Unnamed: 0", "pidnum", "zprior", "cd496"])
    discrete = ("hemo", "homo", "drugs", "karnof", "oprior", "z30", "race", "gender", "str2",
                "strat", "symptom", "treat", "offtrt", "r", "cens", "arms")  # fmt: skip
    return Table("actg175", df.reset_index(drop=True), discrete, "cens", "binary")


def gbsg2() -> Table:
    from lifelines.datasets import load_gbsg2

    df = load_gbsg2()
    discrete = ("horTh", "menostat", "tgrade", "cens")
    return Table("gbsg2", df.reset_index(drop=True), discrete, "cens", "binary")


def flchain() -> Table:
    from sksurv.datasets import load_flchain

    x, y = load_flchain()
    df = x.copy()
    df["chapter"] = df["chapter"].astype(object).fillna("alive").astype(str)
    for c in ("flc.grp", "mgus", "sample.yr", "sex"):
        df[c] = df[c].astype(str)
    df["futime"] = y["futime"].astype(float)
    df["death"] = y["death"].astype(int)
    df = df[df["creatinine"].notna()].reset_index(drop=True)
    discrete = ("chapter", "flc.grp", "mgus", "sample.yr", "sex", "death")
    return Table("flchain", df, discrete, "death", "binary")


LOADERS = {"diabetes": diabetes, "whas500": whas500, "actg175": actg175, "gbsg2": gbsg2,
           "flchain": flchain}  # fmt: skip


def load(name: str) -> Table:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the packages' own deprecation chatter
        return LOADERS[name]()
