"""Faces toward other implementations: their checkpoints read into jaxsyn runs, their APIs.

`jaxsyn.compat.hagan` imports the reference HA-GAN's (github.com/batmanlab/HA-GAN) train.py
checkpoints; `jaxsyn.compat.ctgan` is a drop-in for the `ctgan` package's `CTGAN` class. This
layer sits above `train`/`infer` and nothing below imports it.
"""
