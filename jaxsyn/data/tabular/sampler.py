"""Conditional vectors and training-by-sampling (CTGAN, Xu et al. 2019 §4.3), drawn on device.

Training draws, for each row of a batch: a discrete column j uniformly; a category c of j with
probability proportional to log(1 + count) (so rare categories are seen often enough); a real
training row whose column j holds c, uniformly among those rows; the condition vector (one-hot
of (j, c) over all discrete columns' slots, [B, cond_dim]) and the mask (which columns the
condition names, [B, n_discrete]).

Extension (ours, not the paper's): with probability `extra_p` the condition also names
k ~ U{1, ..., n_discrete - 1} more discrete columns, chosen uniformly, with the values the drawn
real row holds there. The real row satisfies every named column by construction, so a generator
trained this way learns p(rest | several columns) and `sample(conditions={"sex": "F",
"bmi_class": 2})` can ask for several at once. extra_p = 0 is the reference's single-column draw.

Every draw is a pure JAX function of one key per example (`draw`), vmapped over the batch: on
device, inside the train step, with no per-row Python loop, and the same rows whatever the batch's
split over devices. The index it reads (`SamplerArrays`: per-column cumulative probabilities, row
ids sorted by category, each row's category codes) is built once with numpy in `from_data`.
For generation, `condition_vector` builds the exact vector for given values ({column: value}),
and `draw(..., empirical=True)` draws free-generation conditions with the categories' empirical
frequencies (the reference draws them with the log-frequency training probabilities, CTGAN#16,
which skews the marginals of the conditioned column towards rare categories).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsyn.data.tabular.schema import ColumnSchema
from jaxsyn.data.tabular.transformer import Layout, TableTransformer
from jaxsyn.errors import ConfigError, DataError


class CondBatch(NamedTuple):
    cond: jax.Array  # float32 [B, cond_dim] one-hot of each named (column, category)
    mask: jax.Array  # float32 [B, n_discrete] 1 for every column the condition names
    column: jax.Array  # int32 [B] the first chosen discrete column (-1 without any)
    category: jax.Array  # int32 [B] its category slot
    rows: jax.Array  # int32 [B] a training row that satisfies the whole condition


class SamplerArrays(NamedTuple):
    """The index `draw` reads: a pytree of arrays, put on device once."""

    cum_log: jax.Array  # float32 [Dd, W] cumulative log-frequency P(category | column), 1-padded
    cum_emp: jax.Array  # float32 [Dd, W] the same with empirical frequencies
    offset: jax.Array  # int32 [Dd] each discrete column's first slot in the condition vector
    widths: jax.Array  # int32 [Dd]
    start: jax.Array  # int32 [cond_dim] each slot's first row in `order`
    counts: jax.Array  # int32 [cond_dim] training rows per slot
    order: jax.Array  # int32 [Dd, N] row ids sorted by category within each column
    codes: jax.Array  # int32 [N, Dd] each row's category slot per discrete column


@dataclasses.dataclass(frozen=True, eq=False)
class ConditionSampler:
    """Training-by-sampling over an encoded table. Build it with `ConditionSampler.from_data`."""

    layout: Layout
    counts: np.ndarray  # [cond_dim] training rows per (column, category) slot
    codes: np.ndarray  # [N, n_discrete] each row's category slot per discrete column
    log_frequency: bool = True  # reference default; False: probability proportional to count

    @classmethod
    def from_data(cls, layout: Layout, data: np.ndarray, *, log_frequency: bool = True):
        """Index the encoded training rows `data` [N, layout.dim] by their discrete categories."""
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[1] != layout.dim:
            raise DataError(f"data has shape {data.shape}; expected [N, {layout.dim}]")
        if len(data) >= 2**31:
            raise DataError(f"data has {len(data)} rows; expected fewer than 2**31")
        codes = np.stack(
            [data[:, s.start : s.start + s.width].argmax(1) for s in layout.cond_spans], axis=1
        ) if layout.cond_spans else np.zeros((len(data), 0), np.int64)  # fmt: skip
        counts = [np.bincount(codes[:, j], minlength=s.width) for j, s in
                  enumerate(layout.cond_spans)]  # fmt: skip
        counts = np.concatenate(counts) if counts else np.zeros(0, int)
        return cls(layout, counts, codes.astype(np.int32), log_frequency=log_frequency)

    @property
    def n_rows(self) -> int:
        return len(self.codes)

    def _cumulative(self, weight: np.ndarray) -> np.ndarray:
        widths = np.array([s.width for s in self.layout.cond_spans], int)
        offset = np.cumsum(widths) - widths
        column = np.repeat(np.arange(len(widths)), widths)
        total = np.bincount(column, weights=weight, minlength=len(widths))
        cum = np.ones((len(widths), widths.max(initial=1)))
        for j in range(len(widths)):  # a loop over columns, not rows
            cum[j, : widths[j]] = np.cumsum(weight[offset[j] : offset[j] + widths[j]]) / total[j]
        return cum

    @property
    def _weight(self) -> np.ndarray:
        return np.log1p(self.counts) if self.log_frequency else self.counts.astype(float)

    @functools.cached_property
    def arrays(self) -> SamplerArrays:
        """The device index for `draw` (built once, host arrays; jit moves them)."""
        widths = np.array([s.width for s in self.layout.cond_spans], np.int32)
        offset = (np.cumsum(widths) - widths).astype(np.int32)
        d = len(widths)
        order = np.empty((d, self.n_rows), np.int32)
        for j in range(d):  # one argsort per discrete column
            order[j] = np.argsort(self.codes[:, j], kind="stable")
        column = np.repeat(np.arange(d), widths)
        within = np.cumsum(self.counts) - self.counts  # rows of earlier slots, all columns
        start = within - within[offset][column] if d else within  # ... of the same column
        return SamplerArrays(
            cum_log=self._cumulative(self._weight).astype(np.float32),
            cum_emp=self._cumulative(self.counts.astype(float)).astype(np.float32),
            offset=offset,
            widths=widths,
            start=start.astype(np.int32),
            counts=self.counts.astype(np.int32),
            order=order,
            codes=self.codes,
        )

    def sample_condvec(
        self, n: int, key: jax.Array | int, *, extra_p: float = 0.0, empirical: bool = False
    ) -> CondBatch:
        """n conditions and, for each, a real row that satisfies it (see `draw`)."""
        key = jax.random.key(key) if isinstance(key, int) else key
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))
        return _draw_jit(self.arrays, keys, extra_p, empirical=empirical)


def draw(
    arrays: SamplerArrays, keys: jax.Array, extra_p: float | jax.Array = 0.0, *,
    empirical: bool = False,
) -> CondBatch:  # fmt: skip
    """One condition and one matching real row per key ([B] keys -> a CondBatch of B rows).

    The first column is uniform over the discrete columns and its category log-frequency
    (`empirical`: frequency) distributed; a row holding that category is uniform among those rows;
    with probability `extra_p` more columns are named with that row's values (module docstring).
    """
    d, n_rows = arrays.codes.shape[1], arrays.codes.shape[0]
    cond_dim = arrays.counts.shape[0]
    cum = arrays.cum_emp if empirical else arrays.cum_log

    def one(key):
        k_col, k_cat, k_row, k_extra, k_many, k_which = jax.random.split(key, 6)
        if d == 0:  # nothing to condition on: a uniform row, empty vectors
            row = jax.random.randint(k_row, (), 0, n_rows)
            none = jnp.int32(-1)
            return jnp.zeros(0), jnp.zeros(0), none, none, row.astype(jnp.int32)
        col = jax.random.randint(k_col, (), 0, d)
        cat = jnp.sum(jax.random.uniform(k_cat) >= cum[col]).astype(jnp.int32)
        cat = jnp.minimum(cat, arrays.widths[col] - 1)  # guards cum[-1] rounding below 1
        slot = arrays.offset[col] + cat
        count = arrays.counts[slot]
        at = arrays.start[slot] + jnp.floor(jax.random.uniform(k_row) * count).astype(jnp.int32)
        row = arrays.order[col, jnp.minimum(at, arrays.start[slot] + count - 1)]
        extra = jnp.where(
            jax.random.bernoulli(k_extra, extra_p), jax.random.randint(k_many, (), 1, d), 0
        )
        priority = jax.random.uniform(k_which, (d,)).at[col].set(-1.0)  # the first comes first
        named = jnp.argsort(jnp.argsort(priority)) <= extra
        cond = jnp.zeros(cond_dim).at[arrays.offset + arrays.codes[row]].set(named)
        return cond, named.astype(jnp.float32), col.astype(jnp.int32), cat, row

    return CondBatch(*jax.vmap(one)(keys))


_draw_jit = jax.jit(draw, static_argnames="empirical")


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
        number = _as_number(value)
        for i, c in enumerate(col.categories):  # "2" for 2 or 2.0, "True" for True, 1 for 1.0
            if str(c) == str(value) or (_is_number(c) and number is not None and c == number):
                return i
    expected = list(col.categories) + ([None] if col.missing else [])
    raise ConfigError(f"condition {col.name}={value!r}: unknown value; expected one of {expected}")


def _as_number(v: Any) -> float | None:
    if _is_number(v):
        return v
    try:
        return float(v) if isinstance(v, str) else None
    except ValueError:
        return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)
