"""Faces toward other implementations: reading their checkpoints into jaxsyn runs.

`jaxsyn.compat.hagan` imports the reference HA-GAN's (github.com/batmanlab/HA-GAN) train.py
checkpoints. This layer sits above `train`/`infer` and nothing below imports it.
"""
