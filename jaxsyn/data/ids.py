"""Ids of synthetic samples, one scheme for every family: "syn_000000", "syn_000001", ...

Sample i of a generated set (a volume, an image, a table row, an MMCGAN patient) is `syn_` and i
counted from 0, zero-padded to 6 digits (wider from a million on), so file names sort in the order
they were generated and a patient's volume and row share one id.
"""

from __future__ import annotations

PREFIX = "syn_"


def synthetic_id(i: int, prefix: str = PREFIX) -> str:
    """The id of sample `i` (from 0): "syn_000007" for 7."""
    return f"{prefix}{i:06d}"
