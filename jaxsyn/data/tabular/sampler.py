"""Conditional vectors and training-by-sampling (CTGAN, Xu et al. 2019 §4.3).

Training draws, for each row of a batch: a discrete column j uniformly; a category c of j with
probability proportional to log(1 + count) (so rare categories are seen often enough); the
condition vector (one-hot of (j, c) over all discrete columns' slots, [B, cond_dim]) and the mask
(one-hot of j, [B, n_discrete]); and a real training row whose column j holds c, uniformly among
those rows. The CTGAN trainer pairs the fake half of a step with `cond` and the real half with a
random permutation of (rows, cond), as the reference does; that pairing is the trainer's business.

Everything is vectorised over the batch with numpy (`np.random.default_rng(seed)` generators
passed in); the per-column row index is built once (one argsort per discrete column). For
generation, `condition_vector` builds the exact vector for given values ({column: value}), and
`sample_original_condvec` draws conditions the way the reference's sampler does.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from jaxsyn.data.tabular.schema import ColumnSchema
from jaxsyn.data.tabular.transformer import Layout, TableTransformer
from jaxsyn.errors import ConfigError, DataError


class CondBatch(NamedTuple):
    cond: np.ndarray  # float32 [B, cond_dim] one-hot of the chosen (column, category)
    mask: np.ndarray  # float32 [B, n_discrete] one-hot of the chosen column
    column: np.ndarray  # int [B] index among the discrete columns
    category: np.ndarray  # int [B] category slot within that column
    rows: np.ndarray  # int [B] training rows whose column holds that category


@dataclasses.dataclass(frozen=True, eq=False)
class ConditionSampler:
    """Training-by-sampling over an encoded table. Build it with `ConditionSampler.from_data`."""

    layout: Layout
    counts: np.ndarray  # [cond_dim] training rows per (column, category) slot
    order: np.ndarray  # [n_discrete, N] row ids sorted by category within each column
    n_rows: int
    log_frequency: bool = True  # reference default; False: probability proportional to count

    @classmethod
    def from_data(cls, layout: Layout, data: np.ndarray, *, log_frequency: bool = True):
        """Index the encoded training rows `data` [N, layout.dim] by their discrete categories."""
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[1] != layout.dim:
            raise DataError(f"data has shape {data.shape}; expected [N, {layout.dim}]")
        n = len(data)
        index = np.int32 if n < 2**31 else np.int64
        counts, order = [], np.empty((len(layout.discrete), n), index)
        for j, span in enumerate(layout.cond_spans):  # one vectorised pass per discrete column
            code = data[:, span.start : span.start + span.width].argmax(1)
            counts.append(np.bincount(code, minlength=span.width))
            order[j] = np.argsort(code, kind="stable")
        counts = np.concatenate(counts) if counts else np.zeros(0, int)
        return cls(layout=layout, counts=counts, order=order, n_rows=n, log_frequency=log_frequency)

    @functools.cached_property
    def _slots(self) -> tuple[np.ndarray, ...]:
        """Per discrete column: first slot in the condition vector [Dd] and width [Dd]; per slot:
        its rows' start in `order` [cond_dim]; cumulative probabilities [Dd, W] (1-padded)."""
        widths = np.array([s.width for s in self.layout.cond_spans], int)
        offset = np.cumsum(widths) - widths
        column = np.repeat(np.arange(len(widths)), widths)
        within = np.cumsum(self.counts) - self.counts  # rows of earlier slots, all columns
        start = within - within[offset][column]  # ... of earlier slots of the same column
        weight = np.log1p(self.counts) if self.log_frequency else self.counts.astype(float)
        total = np.bincount(column, weights=weight, minlength=len(widths))
        cum = np.ones((len(widths), widths.max(initial=0)))
        for j in range(len(widths)):  # a loop over columns, not rows
            cum[j, : widths[j]] = np.cumsum(weight[offset[j] : offset[j] + widths[j]]) / total[j]
        return offset, widths, start, cum

    @property
    def probabilities(self) -> np.ndarray:
        """[cond_dim] P(category | column) for every slot (log-frequency by default)."""
        offset, widths, _, cum = self._slots
        p = [np.diff(cum[j, : widths[j]], prepend=0.0) for j in range(len(widths))]
        return np.concatenate(p) if p else np.zeros(0)

    def sample_condvec(self, n: int, rng: np.random.Generator) -> CondBatch:
        """n training conditions and, for each, a real row having the chosen category."""
        offset, widths, _, cum = self._slots
        d = len(widths)
        if d == 0:  # nothing to condition on: uniform rows, empty vectors
            empty = np.full(n, -1)
            rows = rng.integers(0, self.n_rows, n)
            return CondBatch(_onehot(empty, 0), _onehot(empty, 0), empty, empty, rows)
        column = rng.integers(0, d, n)
        category = (rng.random(n)[:, None] >= cum[column]).sum(1)  # inverse CDF
        category = np.minimum(category, widths[column] - 1)  # guards cum[-1] rounding below 1
        rows = self.sample_rows(column, category, rng)
        cond = _onehot(offset[column] + category, self.layout.cond_dim)
        return CondBatch(cond, _onehot(column, d), column, category, rows)

    def sample_rows(self, column, category, rng: np.random.Generator) -> np.ndarray:
        """[B] training rows, uniform among those whose discrete column `column` holds
        `category` (both [B])."""
        offset, _, start, _ = self._slots
        slot = offset[column] + category
        count = self.counts[slot]
        if (count == 0).any():
            b = int(np.flatnonzero(count == 0)[0])
            raise DataError(
                f"no training row has category slot {category[b]} of discrete column"
                f" {column[b]}; expected a category seen in the training data"
            )
        at = start[slot] + np.floor(rng.random(len(slot)) * count).astype(int)
        return self.order[column, np.minimum(at, start[slot] + count - 1)]

    def sample_original_condvec(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """[n, cond_dim] conditions for free generation: P(column j, category c) = p_jc / #columns,
        with the same (log-frequency) p as training, as the reference's sampler does."""
        if len(self.counts) == 0:
            return np.zeros((n, 0), np.float32)
        p = self.probabilities / len(self.layout.discrete)
        return _onehot(rng.choice(len(p), n, p=p / p.sum()), len(p))


def _onehot(index: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(index), width), np.float32)
    if width:
        out[np.arange(len(index)), index] = 1.0
    return out


def condition_vector(
    transformer: TableTransformer, conditions: Mapping[str, Any], n: int | None = None
) -> np.ndarray:
    """The exact condition vector [cond_dim] (or [n, cond_dim]) for {discrete column: value}.

    A value may be given as its string form (e.g. "2" for an integer category, as a CLI passes
    it); None or NaN selects the missing slot of a column that had missing values.
    """
    schema, layout = transformer.schema, transformer.layout
    discrete = [c for c in schema.columns if c.discrete]
    offset = np.concatenate([[0], np.cumsum([s.width for s in layout.cond_spans])]).astype(int)
    vec = np.zeros(layout.cond_dim, np.float32)
    for name, value in conditions.items():  # a loop over the given conditions
        j = next((j for j, c in enumerate(discrete) if c.name == name), None)
        if j is None:
            what = "a numeric column" if name in schema.names else "not a column"
            raise ConfigError(
                f"condition {name}={value!r}: {what}; expected one of the discrete columns"
                f" {[c.name for c in discrete]}"
            )
        vec[offset[j] + _slot(discrete[j], value)] = 1.0
    return vec if n is None else np.tile(vec, (n, 1))


def _slot(col: ColumnSchema, value: Any) -> int:
    """The category slot of `value` in column `col` (the missing slot is the last one)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if col.missing:
            return len(col.categories)
    else:
        for i, c in enumerate(col.categories):
            if type(c) is type(value) and c == value:
                return i
        for i, c in enumerate(col.categories):  # "2" for 2, "True" for True, 1 for 1.0
            if str(c) == str(value) or (_is_number(c) and _is_number(value) and c == value):
                return i
    expected = list(col.categories) + ([None] if col.missing else [])
    raise ConfigError(f"condition {col.name}={value!r}: unknown value; expected one of {expected}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)
