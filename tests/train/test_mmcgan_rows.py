"""MMCGAN's synthetic rows of one class (issue 22 item 1), from a tiny run trained briefly on
the tabular head alone (48 phantoms, 300 steps, one device).

Before the tabular head got CTGAN's noise (`MMCGANConfig.row_noise`) every row of a class was
one row: the `make demo` run (1500 steps) gives 32 identical class-3 rows at BMI 17.3, the real
cohort's lowest, and class-1 rows at BMI 32.4-32.9 (real class 1: 18.8-25.0); this run with
`--config.model.row_noise=0` gives per-class BMI deviations of 0.14 / 0.03 / 0.07 (classes 1-3),
which the first test refuses. With the noise the rows vary (deviation 3-4 BMI at 400 steps), but the BMI of a class is still not learnt at these budgets: measured outside pytest
(`jaxsyn train mmcgan --tiny --data phantom:ct:48 --steps 800 --config.batch_size=8
--config.image_every=1000000 --config.image_d_every=1000000`), the share of 32 class-1 / 2 / 3
rows inside their class's real BMI range is 0.16 / 0.25 / 0.47 at step 400 and 0.09 / 0.19 / 0.06
at step 800. With 120 extra table rows a step (`--config.extra_rows=120`, 128 rows for the
tabular head; 2026-12-07, same command) the shares at step 800 are 0.62 / 0.12 / 0.00, class means
22.8 / 32.5 / 17.4 (real 22.8 / 27.3 / 32.6): class 2 takes class 3's BMI and class 3 collapses
onto the lone class-0 patient (17.3), with the class-condition vectors checked consistent between
training and sampling and the same rows under batch statistics. Plain CTGAN on the same 48-row
table learns it slowly too: jaxsyn's `train ctgan` gives 0.44 / 0.11 / 0.09 at 300 epochs of 500
rows and 0.39 / 0.22 / 0.66 (means 20.1 / 25.7 / 31.3) at 2000; the ctgan package at 300 epochs
0.30 / 0.16 / 0.17 (its soft conditions give the asked class in 25-44 % of rows). The second test
states the goal and fails (strict xfail) until it is met.

Why (2026-12-07, 2-core CPU shared with an experiment at normal priority; shares of 32 rows per
class 1 / 2 / 3 inside the real range, class means after; real 22.8 / 27.3 / 32.6; the command
above with `--config.model.lambda_row_class=L`, seeds 0 and 1). The tabular critic does see the
class ([row; condition vector], as CTGAN's, and the hard-conditioned class column), but does not
use it: after 400 steps (seed 0) a real row scores the same whatever class it is labelled with,
up to a per-class offset (no diagonal in the score of true class x given class). So nothing
teaches BMI given the class, and the class means move together: 31.1 / 29.5 / 31.7 at step 300,
29.1 / 24.2 / 29.7 at 400 (seed 1: 26.5 / 20.6 / 22.4). BMI has one mixture mode on this table
(a single tanh scalar; the decoder clips to the real 17.27-36.98).
The paper's auxiliary classifier on the tabular discriminator (`MMCGANConfig.lambda_row_class`,
an AC-GAN head on rows with the class column hidden, learning at `lr_row_class` 2e-3; at the
critic's 2e-4 it stayed at the class prior for 400 steps) orders the classes in every run:
  L = 1    seed 0  step 300 0.22 / 0.34 / 0.72 (18.4 / 24.8 / 31.8); 400 0.19 / 0.34 / 0.94
  L = 0.3  seed 0  step 300 0.22 / 0.50 / 0.88 (18.8 / 27.1 / 32.9); 400 0.22 / 0.50 / 0.97
           seed 1  step 300 0.41 / 0.41 / 0.66 (20.2 / 28.0 / 31.5); 400 0.25 / 0.38 / 0.75
  L = 0.1  seed 0  step 300 0.38 / 0.44 / 0.91 (19.6 / 29.2 / 33.4); 800 0.66 / 0.59 / 1.00
                   (22.6 / 28.9 / 36.9)
           seed 1  step 300 0.44 / 0.41 / 0.62 (19.9 / 27.3 / 30.5); 800 0.00 / 0.38 / 1.00
                   (17.3 / 29.1 / 37.0)
but it pushes the edge classes out to the ends of the range (AC-GAN maximises the class's
probability, and the classifier, which has one class-0 row, calls the lowest BMIs class 1): at
800 steps 31 of 32 class-3 rows sit on the clip 37.0, and with seed 1 every class-1 row on 17.3.
Variants measured at 400 steps, seed 0: classifier loss only while p(class) < 0.5, 0.16 / 0.31
/ 0.84; a twin classifier on fakes (TAC-GAN, L = 1) 0.16 / 0.53 / 0.94 (seed 1 0.34 / 0.47 /
0.69), at L = 0.1 to step 800 0.72 / 0.47 / 1.00 with class 3 on the clip again. So the classifier
stays off by default, and the goal is not met.
A projection critic (Miyato & Koyama 2018; `--config.model.row_projection=P`, the command above
to step 800, seeds 0 and 1, 2026-12-07, same machine; the baseline P = 0 seed 0 rerun gives the
figures above, 0.16 / 0.25 / 0.47 at 400 and 0.09 / 0.19 / 0.06 at 800) makes the critic use the
class: the class-by-label matrix of real rows' mean scores (each label's column centred) gains a
diagonal (mean +0.11 / +0.12 at steps 400 / 800 with P = 1 seed 0, +0.21 / +0.39 seed 1; P = 0:
-0.001 / +0.004). The rows do not follow:
  P = 1    seed 0  step 400 0.16 / 0.00 / 1.00 (29.4 / 37.0 / 36.9); 800 0.06 / 0.00 / 0.38
                   (17.9 / 37.0 / 29.4)
           seed 1  step 400 0.38 / 0.00 / 0.03 (25.9 / 18.7 / 25.6); 800 0.41 / 0.06 / 0.97
                   (22.4 / 34.4 / 34.7)
  P = 0.3  seed 0  step 400 0.06 / 0.12 / 0.94 (31.4 / 33.4 / 33.9); 800 0.31 / 0.00 / 0.28
                   (19.1 / 34.3 / 28.3)
           seed 1  step 400 0.34 / 0.03 / 0.03 (26.8 / 19.8 / 25.1); 800 0.00 / 0.38 / 0.97
                   (33.8 / 29.4 / 34.8)
(seed 1's real means 22.7 / 27.2 / 33.6). Class 2 is the worst in most runs (P = 1 seed 0:
class 2's mean is the clip, 37.0, at both steps; 63 and 58 of the 96 rows at 17.3 or 37.0), so
the projection stays off by default (not tried with extra rows, as it did not help) and the
goal is not met."""

from __future__ import annotations

import jax
import pandas as pd
import pytest

from jaxsyn.cli.common import store_for
from jaxsyn.infer.mmcgan import MMCGANSynthesizer
from jaxsyn.train import mmcgan

pytestmark = [pytest.mark.xdist_group("mmcgan_rows"), pytest.mark.slow]

STEPS = 300
N = 32  # rows per class


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mmcgan_rows") / "run"
    # conditioned on bmi_class (tiny's default); the image heads never train, only what the
    # rows need
    config = mmcgan.MMCGANTrainConfig.tiny(batch_size=8, image_every=10**6, image_d_every=10**6)
    store = store_for("phantom:ct:48", out, 32, 0)
    mmcgan.run(out, store, steps=STEPS, config=config, checkpoint_every=STEPS, progress=False,
               devices=jax.devices()[:1])  # fmt: skip
    real = store.table
    return MMCGANSynthesizer.load(out), real


def rows_of_class(syn: MMCGANSynthesizer, cls: int) -> pd.DataFrame:
    labels, cont = syn.conditions(N, {"bmi_class": cls}, seed=0)
    zc = syn.zc(N, labels, cont, seed=0)
    return syn.rows(syn.hypercube(zc), zc, labels, cont, seed=0)


def test_rows_of_one_class_differ(run):
    syn, _ = run
    for cls in (1, 2, 3):
        rows = rows_of_class(syn, cls)
        assert (rows["bmi_class"].astype(int) == cls).all()  # hard condition
        assert rows["bmi"].nunique() > N // 2 and rows["bmi"].std() > 1.0  # not one row


@pytest.mark.xfail(strict=True, reason="issue 22 item 1 goal not met: the critic ignores the class; the opt-in row classifier orders the classes but sends the edge classes to the range's ends (module docstring)")  # fmt: skip
def test_conditioned_rows_lie_in_their_class(run):
    syn, real = run
    inside = {}
    for cls in (1, 2, 3):  # the classes with several real patients (class 0 has 1 or none)
        bmi = real.loc[real["bmi_class"] == cls, "bmi"]
        rows = rows_of_class(syn, cls)
        inside[cls] = float(rows["bmi"].between(bmi.min(), bmi.max()).mean())
    assert min(inside.values()) > 0.5, inside  # most rows inside their class's real range
