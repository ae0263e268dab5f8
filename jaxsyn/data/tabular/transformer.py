"""Mode-specific normalisation (CTGAN, Xu et al. 2019 §4.2): a table <-> a float32 matrix [N, D].

Per column, in schema order, the encoded row holds these spans:
  numeric (integer, float, datetime)  scalar  [1]    (x - mu_k) / (4 sigma_k), clipped to +-0.99
                                      onehot  [K_c]  the mode k, sampled from the variational
                                                     posterior responsibilities of x (K_c modes
                                                     whose weight exceeds 0.005)
                                      onehot  [2]    [present, missing], only if the column has
                                                     missing values; a missing value's scalar and
                                                     mode are drawn from the mixture itself
  discrete (categorical, binary)      onehot  [C_j]  the category, plus one "missing" slot if the
                                                     column has missing values
`layout` gives these as static facts (`Span(start, width, kind)`, kind "scalar" for tanh outputs,
"onehot" for softmax outputs) and names the discrete spans the condition vector covers; a model
takes them as config. The inverse takes the argmax of every onehot span (so it accepts softmax
outputs), clips numeric values to the observed bounds, rounds them to the observed decimals and
restores each column's dtype; nullable ints keep NA and missing values come back from the
indicator. Numeric columns are standardised before the mixture fit (`mixture.py`), which runs for
all columns at once; transform and inverse work in row chunks with a progress bar when large.
With `TransformerConfig.centre_by` (ours; MMCGAN sets it to its class column) each numeric value
first loses its class's mean (shrunk towards the column's mean by `centre_prior` pseudo-rows), the
mixtures model what is left, and decoding adds the decoded class's mean back before the bounds:
a generator then learns one within-class shape, not a shape per class from a few rows each.
The inverse is two steps: `decode_parts` (each span's argmax: numpy, or jax.numpy inside a
sampler's jit; `choice_parts` when the sampler already holds each span's drawn entry) and
`from_parts` (values in original units, bounds, decimals, dtypes).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jaxsyn.data.tabular import mixture
from jaxsyn.data.tabular.schema import (
    TableSchema,
    discrete_series,
    infer_schema,
    numeric_series,
    numeric_values,
)
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.files import write_json

FORMAT = "jaxsyn.tabular.transformer/1"


class Span(NamedTuple):
    start: int
    width: int
    kind: str  # "scalar" (tanh) or "onehot" (softmax)


@dataclasses.dataclass(frozen=True)
class Layout:
    """The encoded row's spans and which of them are the discrete (conditionable) columns."""

    spans: tuple[Span, ...]
    discrete: tuple[int, ...]  # indices into `spans`, in column order

    @property
    def dim(self) -> int:
        return sum(s.width for s in self.spans)

    @property
    def cond_spans(self) -> tuple[Span, ...]:
        return tuple(self.spans[i] for i in self.discrete)

    @property
    def cond_dim(self) -> int:
        return sum(s.width for s in self.cond_spans)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformerConfig:
    mixture: mixture.MixtureConfig = mixture.MixtureConfig()
    std_multiplier: float = 4.0  # RDT ClusterBasedNormalizer STD_MULTIPLIER
    clip: float = 0.99  # RDT ClusterBasedNormalizer: normalised values clipped to +-0.99
    chunk_rows: int = 1 << 17  # ours: rows per transform/inverse chunk
    # ours (MMCGAN, issue 22): a discrete column whose class means are taken out of every numeric
    # column before the mixture fit and put back on decoding (`class_offsets`); None = CTGAN's
    centre_by: str | None = None
    centre_prior: float = 2.0  # pseudo-rows at the table's mean added to each class's mean
    # fields added after runs were saved without them (jaxsyn.checkpoint.added_fields)
    ADDED_FIELDS = {"centre_by": None, "centre_prior": 2.0}

    def __post_init__(self):
        if self.std_multiplier <= 0 or not 0 < self.clip <= 1 or self.chunk_rows < 1:
            raise ConfigError(
                f"std_multiplier {self.std_multiplier}, clip {self.clip}, chunk_rows"
                f" {self.chunk_rows}; expected > 0, in (0, 1] and >= 1"
            )
        if self.centre_prior < 0:
            raise ConfigError(
                f"TransformerConfig.centre_prior is {self.centre_prior}; expected >= 0"
            )


class _Index(NamedTuple):
    """Positions in the encoded row, for vectorised encoding and decoding."""

    scalar: np.ndarray  # [C] numeric columns' scalar position
    mode: np.ndarray  # [C, K] position of each valid mode's one-hot entry, -1 if pruned
    missing: np.ndarray  # [C] position of the [present, missing] span, -1 if none
    disc_start: np.ndarray  # [Dd] discrete spans' start
    disc: np.ndarray  # [Dd, W] discrete spans' positions, padded with -1


@functools.partial(jax.jit, static_argnames=("clip", "multiplier"))
def _encode(key, z, present, mix, valid, *, clip, multiplier):
    """Sample each value's mode and normalise it within the mode. z, present [C, m] -> [C, m]."""
    k_mode, k_value = jax.random.split(key)
    probs = jnp.where(valid[..., None], mixture.responsibilities(z, mix) + 1e-6, 0.0)
    prior = jnp.where(valid, mixture.weights(mix), 0.0)[..., None]
    probs = jnp.where(present[:, None, :], probs, prior)  # a missing value: mode from the weights
    # Inverse CDF with one uniform per value: 10x fewer random bits than Gumbel-argmax.
    cum = jnp.cumsum(probs, axis=1)
    u = jax.random.uniform(k_mode, z.shape) * cum[:, -1, :]
    last = probs.shape[1] - 1 - jnp.argmax(valid[:, ::-1], axis=1)  # [C] last valid mode
    mode = jnp.minimum((cum <= u[:, None, :]).sum(1), last[:, None])  # u rounding up to the total
    mu = jnp.take_along_axis(mix.means, mode, axis=1)
    sigma = jnp.sqrt(jnp.take_along_axis(mix.covariances, mode, axis=1))
    own = (z - mu) / (multiplier * sigma)
    # A missing value gets a draw from its mode, so it looks like any other encoded value.
    drawn = jax.random.normal(k_value, z.shape) / multiplier
    return mode, jnp.clip(jnp.where(present, own, drawn), -clip, clip)


@dataclasses.dataclass(frozen=True, eq=False)
class TableTransformer:
    """A fitted encoder for one schema. Build it with `TableTransformer.fit`."""

    schema: TableSchema
    config: TransformerConfig
    shift: np.ndarray  # [C] numeric columns' mean, subtracted before the mixture fit
    scale: np.ndarray  # [C] numeric columns' standard deviation (1 for a constant column)
    mixture: mixture.Mixture  # [C, K] per field, in standardised units
    valid: np.ndarray  # [C, K] bool: the modes whose weight exceeds the threshold
    # [C, W]: each numeric column's offset for each category of `config.centre_by` (W its
    # categories, plus its missing slot, whose offset is 0); None without centring
    class_offsets: np.ndarray | None = None

    @classmethod
    def fit(
        cls,
        df: pd.DataFrame,
        schema: TableSchema | None = None,
        *,
        config: TransformerConfig = TransformerConfig(),
        progress: bool = True,
    ) -> TableTransformer:
        """Fit every numeric column's mixture at once; `schema` defaults to `infer_schema(df)`."""
        schema = schema or infer_schema(df)
        schema.check_columns(df)
        x, present = _numeric_matrix(df, schema)
        offsets = None
        if config.centre_by is not None:
            classes = _centre_codes(config.centre_by, schema, df)
            offsets = _class_offsets(x, present, classes, schema, config)
            x = x - offsets[:, classes]
        n = np.maximum(present.sum(1), 1)
        shift = (x * present).sum(1) / n
        std = np.sqrt((present * (x - shift[:, None]) ** 2).sum(1) / n)
        scale = np.where(std > 0, std, 1.0)
        z = np.where(present, (x - shift[:, None]) / scale[:, None], 0.0)
        k = config.mixture.n_components
        if len(z):
            mix = mixture.fit(z, present.astype(np.float32), config.mixture, progress=progress)
        else:  # no numeric columns
            mix = mixture.Mixture(*(np.zeros((0, k), np.float32) for _ in range(6)))
        valid = np.asarray(mixture.weights(mix)) > config.mixture.weight_threshold
        return cls(schema=schema, config=config, shift=shift, scale=scale, mixture=mix, valid=valid,
                   class_offsets=offsets)  # fmt: skip

    @functools.cached_property
    def layout(self) -> Layout:
        spans, discrete, modes = [], [], iter(self.valid.sum(1).tolist())

        def add(width: int, kind: str) -> None:
            spans.append(Span(spans[-1].start + spans[-1].width if spans else 0, width, kind))

        for col in self.schema.columns:
            if col.discrete:
                discrete.append(len(spans))
                add(len(col.categories) + col.missing, "onehot")
                continue
            add(1, "scalar")
            add(next(modes), "onehot")
            if col.missing:
                add(2, "onehot")
        return Layout(spans=tuple(spans), discrete=tuple(discrete))

    @functools.cached_property
    def _index(self) -> _Index:
        spans, cols = iter(self.layout.spans), self.schema.columns
        scalar, mode, missing, disc = [], [], [], []
        for col in cols:
            if col.discrete:
                s = next(spans)
                disc.append(np.arange(s.start, s.start + s.width))
                continue
            scalar.append(next(spans).start)
            s, row = next(spans), np.full(self.valid.shape[1], -1)
            row[self.valid[len(mode)]] = np.arange(s.start, s.start + s.width)
            mode.append(row)
            missing.append(next(spans).start if col.missing else -1)
        width = max((len(d) for d in disc), default=0)
        padded = np.array([np.pad(d, (0, width - len(d)), constant_values=-1) for d in disc])
        return _Index(
            scalar=np.array(scalar, int),
            mode=np.array(mode, int).reshape(len(scalar), self.valid.shape[1]),
            missing=np.array(missing, int),
            disc_start=np.array([d[0] for d in disc], int),
            disc=padded.reshape(len(disc), width).astype(int),
        )

    def transform(self, df: pd.DataFrame, key: jax.Array | int, *, progress: bool = True):
        """Encode a table: float32 [N, D], D = layout.dim; modes sampled with `key`."""
        self.schema.check_columns(df)
        key = jax.random.key(key) if isinstance(key, int | np.integer) else key
        x, present = _numeric_matrix(df, self.schema)
        codes = _codes(df, self.schema)
        if self.class_offsets is not None:
            x = x - self.class_offsets[:, codes[self._centre_position]]
        z = np.where(present, (x - self.shift[:, None]) / self.scale[:, None], 0.0)
        z = z.astype(np.float32)
        n, chunk = len(df), _chunk(len(df), self.config.chunk_rows)
        out = np.zeros((n, self.layout.dim), np.float32)
        mix = mixture.Mixture(*(jnp.asarray(a, jnp.float32) for a in self.mixture))
        starts = range(0, n, chunk)
        for i, lo in enumerate(tqdm(starts, "encode", disable=not progress or len(starts) < 2)):
            hi = min(lo + chunk, n)
            pad = ((0, 0), (0, chunk - (hi - lo)))
            if not len(z):  # no numeric columns: only the discrete spans to fill
                empty = np.zeros((0, hi - lo), int)
                self._fill(out[lo:hi], empty, empty, empty.astype(bool), codes[:, lo:hi])
                continue
            mode, scalar = _encode(
                jax.random.fold_in(key, i),
                np.pad(z[:, lo:hi], pad),
                np.pad(present[:, lo:hi], pad),
                mix,
                jnp.asarray(self.valid),
                clip=self.config.clip,
                multiplier=self.config.std_multiplier,
            )
            mode, scalar = np.asarray(mode)[:, : hi - lo], np.asarray(scalar)[:, : hi - lo]
            self._fill(out[lo:hi], mode, scalar, present[:, lo:hi], codes[:, lo:hi])
        return out

    def _fill(self, out, mode, scalar, present, codes) -> None:
        """Write one chunk's scalars and one-hot entries into out [m, D]."""
        ix = self._index
        out[:, ix.scalar] = scalar.T
        has = ix.missing >= 0
        hot = [
            np.take_along_axis(ix.mode, mode, axis=1),
            ix.missing[has, None] + ~present[has],
            ix.disc_start[:, None] + codes,
        ]
        out[np.arange(len(out))[None, :], np.concatenate(hot, 0)] = 1.0

    def inverse_transform(self, data, *, ids: bool = False, progress: bool = True):
        """Decode [N, D] (encoded rows or a generator's tanh/softmax outputs) to a DataFrame.

        With `ids`, the schema's id column comes first with fresh ids ("syn_000000", ...).
        """
        data = np.asarray(data, np.float32)
        if data.ndim != 2 or data.shape[1] != self.layout.dim:
            raise DataError(f"data has shape {data.shape}; expected [N, {self.layout.dim}]")
        n, chunk = len(data), self.config.chunk_rows
        starts = range(0, max(n, 1), chunk)  # one empty chunk for no rows
        chunks = [decode_parts(data[lo : lo + chunk], self.decode_index)
                  for lo in tqdm(starts, "decode", disable=not progress or len(starts) < 2)]  # fmt: skip
        return self.from_parts(*(np.concatenate(p) for p in zip(*chunks, strict=True)), ids=ids)

    @functools.cached_property
    def decode_index(self) -> DecodeIndex:
        """What `decode_parts` reads from an encoded row (arrays, so it can run under `jit`)."""
        ix, spans = self._index, self.layout.spans
        onehot = {s.start: i for i, s in enumerate(x for x in spans if x.kind == "onehot")}
        starts = [s.start for s in spans]  # a numeric column's modes follow its scalar span
        mode_span = [onehot[spans[starts.index(p) + 1].start] for p in ix.scalar]
        missing_span = [onehot[p] if p >= 0 else -1 for p in ix.missing]
        mode_of = np.zeros(self.valid.shape, np.int32)  # the j-th valid mode's component index
        for c, row in enumerate(self.valid):
            mode_of[c, : row.sum()] = np.flatnonzero(row)
        i32 = functools.partial(np.asarray, dtype=np.int32)
        return DecodeIndex(
            scalar=i32(ix.scalar), mode=i32(ix.mode), missing=i32(ix.missing), disc=i32(ix.disc),
            mode_span=i32(mode_span), mode_of=mode_of, missing_span=i32(missing_span),
            disc_span=i32([onehot[d[0]] for d in ix.disc]),
        )  # fmt: skip

    def from_parts(self, scalar, mode, missing, codes, *, ids: bool = False) -> pd.DataFrame:
        """`decode_parts`' four arrays ([N, C] scalars, modes, missing flags; [N, Dd] codes) ->
        the DataFrame: each value mapped back through its mode (float64), clipped to the
        observed bounds, rounded to the observed decimals."""
        mix, n = self.mixture, len(scalar)
        scalar, mode = np.asarray(scalar, np.float32).T, np.asarray(mode).T  # [C, N]
        rows = np.arange(len(mode))[:, None]
        sigma = np.sqrt(mix.covariances.astype(np.float64))[rows, mode]
        z = scalar * self.config.std_multiplier * sigma + mix.means[rows, mode]
        values = self.shift[:, None] + self.scale[:, None] * z
        missing, codes = np.asarray(missing, bool).T, np.asarray(codes).T
        if self.class_offsets is not None:
            values = values + self.class_offsets[:, codes[self._centre_position]]
        values = self._enforce(values)
        columns, num, disc = {}, iter(range(len(values))), iter(range(len(codes)))
        if ids and self.schema.id_column is not None:
            columns[self.schema.id_column] = self.schema.synthetic_ids(n)
        for col in self.schema.columns:
            if col.discrete:
                columns[col.name] = discrete_series(col, codes[next(disc)])
            else:
                i = next(num)
                columns[col.name] = numeric_series(col, values[i], missing[i])
        return pd.DataFrame(columns)

    @functools.cached_property
    def _centre_position(self) -> int:
        """The `centre_by` column's row in `_codes`' [Dd, N] output."""
        return [c.name for c in self.schema.columns if c.discrete].index(self.config.centre_by)

    def _enforce(self, values: np.ndarray) -> np.ndarray:
        """Clip to the observed bounds and round to the observed decimals, per column."""
        cols = [c for c in self.schema.columns if not c.discrete]
        lo, hi = (np.array([getattr(c, b) for c in cols], float)[:, None] for b in ("min", "max"))
        values = np.clip(values, lo, hi)
        for i, col in enumerate(cols):  # one vectorised np.round per column
            if col.decimals is not None:
                values[i] = np.round(values[i], col.decimals)
        return values

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "schema": self.schema.to_dict(),
            "config": dataclasses.asdict(self.config),
            "shift": self.shift,
            "scale": self.scale,
            "mixture": self.mixture._asdict(),
            "valid": self.valid,
            **({} if self.class_offsets is None else {"class_offsets": self.class_offsets}),
        }

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> TableTransformer:
        try:
            d = json.loads(Path(path).read_text())
            if d.get("format") != FORMAT:
                raise DataError(f"{path}: format {d.get('format')!r}; expected {FORMAT!r}")
            config = dict(d["config"])
            config["mixture"] = mixture.MixtureConfig(**config["mixture"])
            k = config["mixture"].n_components  # [C, K] even when C is 0 (JSON keeps no shape)
            arrays = {n: np.asarray(v, np.float32).reshape(-1, k) for n, v in d["mixture"].items()}
            return cls(
                schema=TableSchema.from_dict(d["schema"], str(path)),
                config=TransformerConfig(**config),
                shift=np.asarray(d["shift"], float),
                scale=np.asarray(d["scale"], float),
                mixture=mixture.Mixture(**arrays),
                valid=np.asarray(d["valid"], bool).reshape(arrays["means"].shape),
                class_offsets=_offsets_from_json(d.get("class_offsets"), len(d["shift"])),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise DataError(f"{path}: cannot read transformer ({type(e).__name__}: {e})") from e


def _centre_codes(name: str, schema: TableSchema, df: pd.DataFrame) -> np.ndarray:
    """The category codes [N] of the column the numeric columns are centred by."""
    discrete = [c.name for c in schema.columns if c.discrete]
    if name not in discrete:
        raise ConfigError(
            f"TransformerConfig.centre_by is {name!r}; expected one of the table's discrete"
            f" columns {discrete}"
        )
    return _codes(df, schema)[discrete.index(name)]


def _class_offsets(x, present, classes, schema: TableSchema, config: TransformerConfig):
    """[C, W] per numeric column and class: the class's mean less the column's mean, each class's
    mean shrunk towards the column's by `centre_prior` pseudo-rows (a class of one patient is not
    copied); a missing class value's slot gets 0."""
    col, prior = schema[config.centre_by], config.centre_prior
    width = len(col.categories) + col.missing
    hot = np.eye(width)[classes] * (classes < len(col.categories))[:, None]  # [N, W]
    mean = (x * present).sum(1, keepdims=True) / np.maximum(present.sum(1, keepdims=True), 1)
    count = present.astype(float) @ hot  # [C, W]
    total = np.where(present, x, 0.0) @ hot
    shrunk = (total + prior * mean) / np.maximum(count + prior, 1e-12)
    return np.where(count + prior > 0, shrunk - mean, 0.0)


def _offsets_from_json(value, columns: int) -> np.ndarray | None:
    return None if value is None else np.asarray(value, float).reshape(columns, -1)


def _chunk(n: int, chunk_rows: int) -> int:
    """Rows per jitted chunk: a power of two for small tables, so few shapes get compiled."""
    return min(chunk_rows, 1 << max(8, (max(n, 1) - 1).bit_length()))


class DecodeIndex(NamedTuple):
    """Positions in an encoded row that decoding reads."""

    scalar: np.ndarray  # [C] numeric columns' scalar
    mode: np.ndarray  # [C, K] each valid mode's one-hot entry, -1 if pruned
    missing: np.ndarray  # [C] the [present, missing] span's start, -1 if none
    disc: np.ndarray  # [Dd, W] discrete spans' entries, padded with -1
    # The same for rows given as one drawn entry per one-hot span (`choice_parts`), S spans:
    mode_span: np.ndarray  # [C] numeric columns' mode span
    mode_of: np.ndarray  # [C, K] the component index of each column's j-th valid mode
    missing_span: np.ndarray  # [C] the [present, missing] span, -1 if none
    disc_span: np.ndarray  # [Dd] discrete columns' span


def decode_parts(block, ix: DecodeIndex, xp=np):
    """Encoded rows [m, D] -> (scalars clipped to [-1, 1] [m, C], mode index [m, C], missing
    flags [m, C], category codes [m, Dd]): each span's argmax. `xp` is numpy, or jax.numpy to
    decode on the device inside the sampler's `jit` (the same integers and float32 scalars, so
    `TableTransformer.from_parts` gives the same table either way)."""
    block = xp.asarray(block, xp.float32)
    scalar = xp.clip(xp.take(block, ix.scalar, axis=1), -1.0, 1.0)
    start = xp.maximum(ix.missing, 0)
    nxt = xp.take(block, start + 1, axis=1, mode="clip")
    missing = (ix.missing >= 0) & (nxt > xp.take(block, start, axis=1))
    return scalar, _argmax_spans(block, ix.mode, xp), missing, _argmax_spans(block, ix.disc, xp)


def choice_parts(logits, choice, ix: DecodeIndex, xp=np):
    """`decode_parts` for rows given as generator logits [m, D] (float32) and each one-hot span's
    drawn entry choice [m, S] (`models.ctgan.sample_choices`), without building the one-hots:
    the same four arrays as `decode_parts` of those rows (`models.ctgan.rows_from_choices`)."""
    scalar = xp.clip(xp.tanh(xp.take(logits, ix.scalar, axis=1)), -1.0, 1.0)
    mode = ix.mode_of[xp.arange(len(ix.mode_span))[None, :], xp.take(choice, ix.mode_span, axis=1)]
    has = ix.missing_span >= 0
    missing = has & (xp.take(choice, xp.maximum(ix.missing_span, 0), axis=1) == 1)
    codes = xp.take(choice, ix.disc_span, axis=1).astype(xp.int32)
    return scalar, mode.astype(xp.int32), missing, codes


def _argmax_spans(block, positions, xp=np):
    """Argmax within each padded span: block [m, D], positions [S, W] (-1 pads) -> [m, S]."""
    if positions.shape[-1] == 0:  # no spans (a table without discrete columns)
        return xp.zeros((block.shape[0], positions.shape[0]), xp.int32)
    gathered = xp.take(block, xp.maximum(positions, 0), axis=1)
    return xp.where(positions >= 0, gathered, -xp.inf).argmax(-1).astype(xp.int32)


def _numeric_matrix(df: pd.DataFrame, schema: TableSchema) -> tuple[np.ndarray, np.ndarray]:
    """Numeric columns as float64 [C, N] (0 where missing) and the present mask [C, N]."""
    cols = [c for c in schema.columns if not c.discrete]
    pairs = [numeric_values(df[c.name], c.kind, f"column {c.name!r}") for c in cols]
    for col, (_, present) in zip(cols, pairs, strict=True):
        if not col.missing and not present.all():
            raise DataError(
                f"column {col.name!r} has {int((~present).sum())} missing values; expected none"
                " (the schema saw none, so the transformer has no missing indicator for it)"
            )
    n = len(df)
    x = np.array([v for v, _ in pairs]).reshape(len(cols), n)
    return x, np.array([p for _, p in pairs], bool).reshape(len(cols), n)


def _codes(df: pd.DataFrame, schema: TableSchema) -> np.ndarray:
    """Discrete columns' category codes [Dd, N]; a missing value gets the extra last slot."""
    out = []
    for col in (c for c in schema.columns if c.discrete):
        s = df[col.name]
        code = pd.Index(col.categories).get_indexer(s)
        missing = s.isna().to_numpy()
        unseen = np.flatnonzero((code < 0) & ~missing)
        if len(unseen):
            raise DataError(
                f"column {col.name!r} holds {s.iloc[unseen[0]]!r} (row {unseen[0]}), a value"
                f" the schema never saw; expected one of {list(col.categories)}"
            )
        if missing.any() and not col.missing:
            raise DataError(
                f"column {col.name!r} has {int(missing.sum())} missing values; expected none"
            )
        out.append(np.where(missing, len(col.categories), code))
    return np.array(out, int).reshape(len(out), len(df))
