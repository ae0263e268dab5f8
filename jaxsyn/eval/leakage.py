"""Leakage guards of `jaxsyn evaluate` (issue 17.5): held-out data must be held out.

A utility test set that shares patients with the training data scores the classifiers on what
they were trained on; a domain feature extractor trained on the attack candidates has seen the
members. `check_disjoint` refuses such overlaps with a one-line `DataError` naming both flags.

Two sets overlap when they share
  an id      images: the file stems (the ids of labels.csv); volumes: the file names without
             .nii/.nii.gz; tables: the values of a `patient_id`, `id` or `image_id` column both
             tables have. Phantom cohorts of different seeds number their files alike (X00000,
             ...) without being the same patients: `ids=False` compares contents only.
  contents   images and volumes only: the SHA-256 of the decoded array (shape, dtype and values
             as `jaxsyn.data` reads them), so a file copied under another name or format with
             the same pixels is caught; a resized or re-encoded copy is not. Table rows are not
             compared: tables with few distinct values repeat rows without sharing patients.
Every file is read once more for this (one at a time). A volume store made by `jaxsyn ingest` has
no files to list and is not checked.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from jaxsyn.errors import DataError

# Columns of a table read as patient ids (the phantoms' `patient_id`; `jaxsyn.data.images`).
TABLE_ID_COLUMNS = ("patient_id", "id", "image_id")


def fingerprints(path: str | os.PathLike, kind: str) -> tuple[set[str], dict[str, str]]:
    """(ids, {content digest: id}) of a data path of `kind` ("images", "volumes", "table")."""
    if kind == "table":
        from jaxsyn.eval.tables import read_table

        df = read_table(path)
        ids = {f"{c}={v}" for c in TABLE_ID_COLUMNS if c in df.columns for v in df[c].dropna()}
        return ids, {}
    if kind == "images":
        from jaxsyn.data.images import image_files, read_image

        files = image_files(path)
        read = read_image
    elif kind == "volumes":
        from jaxsyn.data.volumes import NIFTI_SUFFIXES, load_volume, volume_stem

        paths = sorted(p for p in Path(path).iterdir() if p.name.endswith(NIFTI_SUFFIXES))
        files = {volume_stem(p): p for p in paths}

        def read(p):
            return load_volume(p).hu
    else:
        raise DataError(f"{path}: kind {kind!r}, expected images, volumes or table")
    digests = {}
    for key, file in files.items():
        digests.setdefault(_digest(read(file)), key)
    return set(files), digests


def check_disjoint(paths: dict[str, str | os.PathLike], pairs, kind: str, *, ids: bool = True):
    """Raise a `DataError` if any pair (flag a, flag b) of `paths` {flag: path} shares an id
    (unless `ids` is False) or identical contents; each path is read once."""
    seen = {}
    for a, b in pairs:
        for flag in (a, b):
            if flag not in seen:
                seen[flag] = fingerprints(paths[flag], kind)
        (ids_a, digests_a), (ids_b, digests_b) = seen[a], seen[b]
        shared = sorted(ids_a & ids_b)
        if ids and shared:
            raise DataError(
                f"--{a} and --{b} share {len(shared)} id(s), e.g. {shared[0]!r}; expected disjoint "
                "sets (if the ids only number each folder's files, as phantom cohorts do, pass "
                "--ids-per-folder to compare contents only)"
            )
        same = [d for d in digests_a if d in digests_b]
        if same:
            raise DataError(
                f"--{a} and --{b} hold {len(same)} identical {kind}, e.g. {digests_a[same[0]]!r} "
                f"in --{a} = {digests_b[same[0]]!r} in --{b}; expected disjoint sets"
            )


def _digest(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()
