"""A report that `jaxsyn evaluate` writes with utility numbers (--test, --labels) packs them under
medigan's `CLF.*` keys, with the report field and settings each came from.

The report is a real one (a table: sklearn's diabetes study, gradient boosting, seconds): the
synthetic table's target is constant, so the classifier trained on it learns nothing and scores
exactly 1/2 (`tstr_table`'s rule), which pins the trained-on-fake figure by hand.
"""

import json

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from jaxsyn.cli import main
from jaxsyn.zoo import cards


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("clf-report")
    t = load_diabetes(as_frame=True, scaled=False).frame.sample(frac=1.0, random_state=0)
    real, test = t.iloc[:200], t.iloc[300:]
    synthetic = t.iloc[200:300].assign(sex=2.0)  # one class: nothing to learn, AUC 1/2
    for name, df in (("real", real), ("synthetic", synthetic), ("test", test)):
        df.to_csv(root / f"{name}.csv", index=False)
    argv = [
        "evaluate",
        "--real",
        str(root / "real.csv"),
        "--synthetic",
        str(root / "synthetic.csv"),
    ]
    argv += ["--test", str(root / "test.csv"), "--labels", "sex", "--augment"]
    assert main([*argv, "--out", str(root / "report")]) == 0
    return json.loads((root / "report" / "report.json").read_text())


def test_utility_numbers_pack_under_clf_keys(report):
    performance, sources = cards.metrics_from_report(report)
    clf = performance["CLF"]
    utility = report["utility"]
    assert clf["trained_on_fake"]["auc"] == 0.5  # by hand: a one-class training set
    assert clf["trained_on_real"]["auc"] == pytest.approx(np.mean(utility["auc_real"]))
    assert 0.6 < clf["trained_on_real"]["auc"] <= 1.0  # sex is learnable from the other columns
    assert clf["trained_on_real_and_fake"]["auc"] == pytest.approx(
        np.mean(utility["auc_augmented"])
    )
    for key, field in (("trained_on_fake", "auc_syn"), ("trained_on_real", "auc_real"),
                       ("trained_on_real_and_fake", "auc_augmented")):  # fmt: skip
        assert sources[f"CLF.{key}.auc"] == {
            "from": f"utility.{field}",
            "settings": {"target": "sex", "model": "hgb", "task": "binary", "seeds": [0, 1, 2, 3, 4],
                         "classifier": "HistGradientBoostingClassifier",
                         "model_selection": utility["model_selection"]},
        }  # fmt: skip
    card = {"selection": {"performance": performance}}
    assert cards._get(card, "selection.performance.CLF.trained_on_fake.auc") == 0.5


def test_a_report_without_utility_packs_no_clf(report):
    rest = {k: v for k, v in report.items() if k != "utility"}
    performance, sources = cards.metrics_from_report(rest)
    assert "CLF" not in performance and not any(k.startswith("CLF.") for k in sources)
    assert "quality" in performance  # the table's other metrics still pack
