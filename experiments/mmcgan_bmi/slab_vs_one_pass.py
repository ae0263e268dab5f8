"""How far HA-GAN's one-pass inference is from the forward training judged, on a trained MMCGAN run.

    python experiments/mmcgan_bmi/slab_vs_one_pass.py RUN [--class 2] [--n 8]

G^H over the whole hypercube (the reference's inference: GroupNorm with whole-volume statistics)
against G^H on each S/32-slice slab alone (the training forward): the largest difference, and
the tissue fractions (jaxsyn.eval.mmcgan) of both, for n patients of one class, seed 0.
"""

import argparse

import numpy as np

from jaxsyn.data.volumes import unwindow
from jaxsyn.eval.mmcgan import tissue_fractions
from jaxsyn.infer.mmcgan import MMCGANSynthesizer
from jaxsyn.models import mmcgan as model
from jaxsyn.models.hagan import Generator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--class", dest="cls", type=int, default=2)
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args()
    syn = MMCGANSynthesizer.load(args.run)
    config = syn.config.image
    labels, cont = syn.conditions(args.n, {syn.condition_columns[0]: args.cls}, 0)
    params = {"params": model.generator_params(syn.params)}
    g = Generator(config)
    h = g.apply(params, syn.zc(args.n, labels, cont, 0), method=Generator.hypercube)
    whole = np.asarray(g.apply(params, h, method=Generator.high_res))[..., 0]
    d = config.slab_depth // 4
    slabs = np.concatenate(
        [np.asarray(g.apply(params, h[:, k : k + d], method=Generator.high_res))[..., 0]
         for k in range(0, config.size // 4, d)], axis=1
    )  # fmt: skip
    lo, hi = syn.info["window"]
    print(f"max |one pass - slab by slab| = {np.abs(whole - slabs).max():.3f} (in [-1, 1] units)")
    for name, v in (("one pass", whole), ("slab by slab", slabs)):
        f = [tissue_fractions(x) for x in unwindow(v, lo, hi)]
        fat, soft = (np.mean([x[k] for x in f]) for k in ("fat", "soft_tissue"))
        print(f"{name:>12}: fat {fat:.3f}, soft tissue {soft:.3f} (mean of {args.n})")


if __name__ == "__main__":
    main()
