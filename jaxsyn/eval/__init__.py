"""Evaluation of synthetic data: fidelity, utility and privacy.

`inception_score` (from `jaxsyn.eval.iscore`) is importable from here; it is loaded on first use
so that `import jaxsyn.eval.<module>` does not pull in Flax.
"""


def __getattr__(name: str):
    if name == "inception_score":
        from jaxsyn.eval.iscore import inception_score

        return inception_score
    raise AttributeError(f"module 'jaxsyn.eval' has no attribute {name!r}")
