"""The `jaxsyn` command (entry point `jaxsyn.cli:main`), one module per verb group:

data       phantom, ingest, preview, stream
train      train FAMILY (each family's run in hagan, mmcgan, ctgan, acgan, gan2d, toygan)
generate   generate --run RUN (the run's family writes its volumes, images or table)
evaluate   evaluate (fidelity, utility, privacy report)
mmcgan     impute, report (and MMCGAN's train / generate)
acgan      morph (and the 2D families' generate)
reader_study  reader-study make|serve|score (the real-or-synthetic reader study's page)
common     what several groups share: --config overrides, conditions, phantom cohorts
app        builds the parser from the groups and runs a verb
"""

from jaxsyn.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
