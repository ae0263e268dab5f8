"""A drop-in for the `ctgan` package's `CTGAN` class (ctgan 0.12.1), over jaxsyn's CTGAN.

    from jaxsyn.compat.ctgan import CTGAN       # instead of: from ctgan import CTGAN
    model = CTGAN(epochs=300)
    model.fit(df, discrete_columns=["sex"])     # a DataFrame, or a 2-D array with column indices
    rows = model.sample(1000)                   # a DataFrame (an array when fitted on an array)
    rows = model.sample(1000, "sex", "F")       # every row has sex == "F"
    model.save("model.ctgan"); model = CTGAN.load("model.ctgan")

The constructor takes ctgan's arguments with ctgan's defaults and `fit` trains
`jaxsyn.train.ctgan` with them (embedding and layer widths, learning rates and L2 decays, batch
size, pac, log_frequency for the training conditions, epochs); sampling goes through
`jaxsyn.infer.ctgan.TableSynthesizer`. `loss_values` is ctgan's frame: one row per epoch with
`Epoch`, `Generator Loss` (the last step's adversarial loss plus conditional cross-entropy) and
`Discriminator Loss` (the last step's Wasserstein term, without the gradient penalty, as ctgan
records it). Bad input raises ctgan's exception types with ctgan's messages: TypeError for
input that is neither a DataFrame nor an array, ValueError for unknown discrete columns and for
sampling conditions that name an unknown column or value, AssertionError for an odd batch size.
Columns that cannot be modelled (all missing, not numbers in a continuous column) raise
`InvalidDataError`, which is also a `jaxsyn.errors.DataError`.

What differs from ctgan, on purpose:
  * The model is jaxsyn's: several conditions per training row, generators that produce exactly
    the category a condition names, BatchNorm running statistics at sampling, clipping to the
    observed range and rounding to the observed decimals (README "Tables: CTGAN"). So
    `sample(n, column, value)` returns n rows that all carry `value`, where ctgan only makes it
    likelier.
  * Free samples draw their conditions with the empirical category frequencies; ctgan draws them
    with the log-frequency training probabilities when `log_frequency=True` (its default), which
    inflates rare categories in what it samples. `log_frequency` here sets the training
    conditions only; `sample_log_frequency=True` (ours) samples as ctgan does.
  * Missing values in continuous columns are modelled (an indicator per column) where ctgan
    refuses them with InvalidDataError. Columns of bool dtype are two categories, datetime
    columns are datetimes; ctgan feeds both to its Gaussian mixture.
  * `discriminator_steps` must be 1 (the train step makes one critic update per generator update).
  * `save` writes our own file: a zip of JSON (arguments, transformer, losses, random state) and
    an .npz of the generator's arrays, never a pickle, so loading runs no code. Files written by
    ctgan's `save` (torch pickles of the whole object) are refused by `load` with a message.
  * `sample(n)` generates a power-of-two number of rows (a multiple of 4096 above 4096) and
    returns the first n, so different n reuse a few compiled samplers.
  * `enable_gpu` picks JAX's default device (a GPU when JAX has one), False the CPU; one device
    trains. The random state is a numpy RandomState from which each `fit` and `sample` draws a
    JAX seed; without one, the seed comes from numpy's global generator.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd
from flax import traverse_util

from jaxsyn import files
from jaxsyn.data.tabular import TableSchema, TableTransformer, condition_vector, infer_schema
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.infer.ctgan import COUNTS_FILE, TRANSFORMER_FILE, TableSynthesizer
from jaxsyn.models import ctgan as model
from jaxsyn.models.ctgan import CTGANConfig
from jaxsyn.train import ctgan as train
from jaxsyn.train.loop import read_metrics

FORMAT = "jaxsyn.compat.ctgan/1"
META, ARRAYS = "ctgan.json", "generator.npz"  # the members of a saved file
LOSS_COLUMNS = ["Epoch", "Generator Loss", "Discriminator Loss"]  # ctgan's loss_values


class InvalidDataError(DataError):
    """The table cannot be modelled (ctgan's `ctgan.errors.InvalidDataError`, and a DataError)."""


class CTGAN:
    """ctgan's `CTGAN(...)` with its arguments and defaults (ctgan/synthesizers/ctgan.py)."""

    def __init__(
        self,
        embedding_dim=128,
        generator_dim=(256, 256),
        discriminator_dim=(256, 256),
        generator_lr=2e-4,
        generator_decay=1e-6,
        discriminator_lr=2e-4,
        discriminator_decay=1e-6,
        batch_size=500,
        discriminator_steps=1,
        log_frequency=True,
        verbose=False,
        epochs=300,
        pac=10,
        enable_gpu=True,
        cuda=None,
        *,
        sample_log_frequency=False,
    ):
        assert batch_size % 2 == 0  # ctgan's own check, kept so the same input fails alike
        if discriminator_steps != 1:
            raise ConfigError(
                f"discriminator_steps is {discriminator_steps}; jaxsyn's CTGAN makes one critic "
                "update per generator update, expected 1"
            )
        self._args = {
            "embedding_dim": int(embedding_dim),
            "generator_dim": [int(w) for w in generator_dim],
            "discriminator_dim": [int(w) for w in discriminator_dim],
            "generator_lr": float(generator_lr),
            "generator_decay": float(generator_decay),
            "discriminator_lr": float(discriminator_lr),
            "discriminator_decay": float(discriminator_decay),
            "batch_size": int(batch_size),
            "discriminator_steps": 1,
            "log_frequency": bool(log_frequency),
            "verbose": bool(verbose),
            "epochs": int(epochs),
            "pac": int(pac),
            "enable_gpu": bool(_enable_gpu(enable_gpu, cuda)),
            "sample_log_frequency": bool(sample_log_frequency),
        }
        self._config = train.CTGANTrainConfig(  # errors for bad sizes now, as ctgan's asserts
            model=CTGANConfig(
                embedding_dim=embedding_dim,
                generator_dim=tuple(generator_dim),
                discriminator_dim=tuple(discriminator_dim),
                pac=pac,
            ),
            batch_size=batch_size,
            g_lr=generator_lr,
            g_decay=generator_decay,
            d_lr=discriminator_lr,
            d_decay=discriminator_decay,
            log_frequency=log_frequency,
        )
        self.pac = pac
        self._epochs = epochs
        self._verbose = verbose
        self._device = _device(self._args["enable_gpu"])
        self.random_states = None  # numpy RandomState, or None: numpy's global generator
        self._synth: TableSynthesizer | None = None
        self._counts: dict[str, list[int]] = {}  # training rows per category, per discrete column
        self._columns: list = []  # the training data's column labels, in order
        self._dataframe = True  # fitted on a DataFrame (else an array: sample returns arrays)
        self.loss_values: pd.DataFrame | None = None

    # --- ctgan's methods ---------------------------------------------------------------------

    def fit(self, train_data, discrete_columns=(), epochs=None):
        """Train on `train_data` (DataFrame, or a 2-D array with `discrete_columns` as indices)."""
        _check_discrete_columns(train_data, discrete_columns)
        if epochs is None:
            epochs = self._epochs
        else:
            warnings.warn(
                "`epochs` argument in `fit` method has been deprecated and will be removed in a "
                "future version. Please pass `epochs` to the constructor instead",
                DeprecationWarning,
                stacklevel=2,
            )
        if epochs < 1:
            raise ConfigError(f"epochs is {epochs}; expected >= 1")
        frame, self._columns, self._dataframe = _as_frame(train_data)
        discrete = {str(c) for c in discrete_columns}
        config = dataclasses.replace(self._config, seed=self._seed())
        with tempfile.TemporaryDirectory(prefix="jaxsyn-ctgan-") as tmp:
            run_dir = Path(tmp) / "run"
            try:
                schema = _schema(frame, discrete)
                state = train.run(
                    run_dir, frame, epochs=epochs, config=config, schema=schema,
                    checkpoint_every=1 << 30, keep=1, progress=self._verbose,
                    devices=[self._device],
                )  # fmt: skip
            except DataError as e:
                raise InvalidDataError(str(e)) from e
            transformer = TableTransformer.load(run_dir / TRANSFORMER_FILE)
            counts = json.loads((run_dir / COUNTS_FILE).read_text())
            metrics = read_metrics(run_dir / "metrics.jsonl")
        per_epoch = train.steps_per_epoch(len(frame), config.batch_size)
        self.loss_values = _loss_values(metrics, per_epoch, epochs)
        g = jax.device_get({"params": state.params["g"], "stats": state.stats["batch_stats"]})
        self._synth = self._synthesizer(transformer, counts, g)
        return None  # ctgan's fit returns nothing

    def sample(self, n, condition_column=None, condition_value=None):
        """n rows; with a discrete `condition_column` and `condition_value`, all carry it."""
        if self._synth is None:
            raise ConfigError("this CTGAN is not fitted; call fit(train_data) before sample")
        conditions = {}
        if condition_column is not None and condition_value is not None:
            conditions = self._condition(condition_column, condition_value)
        seed = self._seed()
        with jax.default_device(self._device):
            rows = self._synth.sample(_rows_to_draw(n), conditions, key=seed, ids=False)
        rows = rows.iloc[:n].reset_index(drop=True)
        rows.columns = self._columns
        return rows if self._dataframe else rows.to_numpy()

    def set_random_state(self, random_state):
        """An int seed, a tuple (numpy RandomState, torch Generator) as ctgan takes (the
        generator is not used), or None for numpy's global generator."""
        if random_state is None:
            self.random_states = None
        elif isinstance(random_state, int) and not isinstance(random_state, bool):
            self.random_states = np.random.RandomState(seed=random_state)
        elif isinstance(random_state, tuple) and isinstance(random_state[0], np.random.RandomState):
            self.random_states = random_state[0]
        else:
            raise TypeError(
                f"`random_state` {random_state} expected to be an int or a tuple of "
                "(`np.random.RandomState`, `torch.Generator`)"
            )

    def set_device(self, device):
        """A jax.Device, or "cpu" / "gpu" / "cuda": the first device of that platform."""
        if isinstance(device, str):
            device = jax.devices("gpu" if device.startswith("cuda") else device)[0]
        self._device = device

    def save(self, path):
        """Write this model to `path` (our format: JSON and .npz in a zip; no pickle)."""
        meta = {"format": FORMAT, "args": self._args, "fitted": self._synth is not None}
        if self.random_states is not None:
            meta["random_state"] = list(self.random_states.get_state())
        arrays = {}
        if self._synth is not None:
            synth = self._synth
            meta |= {
                "columns": [_label(c) for c in self._columns],
                "dataframe": self._dataframe,
                "model": dataclasses.asdict(synth.config),
                "counts": self._counts,
                "transformer": synth.transformer.to_dict(),
                "loss_values": self.loss_values.to_dict(orient="list"),
            }
            g = {"params": synth.params, "stats": synth.stats}
            arrays = {k: np.asarray(v) for k, v in traverse_util.flatten_dict(g, sep="/").items()}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        text = json.dumps(meta, default=lambda a: a.tolist())  # numpy arrays and scalars
        with files.atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(META, text)
            z.writestr(ARRAYS, buffer.getvalue())

    @classmethod
    def load(cls, path):
        """A model written by `save`. ctgan's own files (torch pickles) are refused."""
        meta, arrays = _read(Path(path))
        args = dict(meta["args"])
        self = cls(**args)
        if "random_state" in meta:
            state = meta["random_state"]
            self.random_states = np.random.RandomState()
            self.random_states.set_state((state[0], np.asarray(state[1], np.uint32), *state[2:]))
        if not meta["fitted"]:
            return self
        self._columns, self._dataframe = list(meta["columns"]), bool(meta["dataframe"])
        self.loss_values = pd.DataFrame(meta["loss_values"], columns=LOSS_COLUMNS)
        with tempfile.TemporaryDirectory() as tmp:  # TableTransformer reads from a file
            files.write_json(Path(tmp) / TRANSFORMER_FILE, meta["transformer"])
            transformer = TableTransformer.load(Path(tmp) / TRANSFORMER_FILE)
        config = CTGANConfig(**meta["model"])
        expected = jax.eval_shape(
            lambda: {"params": model.init(jax.random.key(0), config)["g"],
                     "stats": model.init_stats(config)}
        )  # fmt: skip
        self._synth = self._synthesizer(
            transformer, meta["counts"], _unflatten(arrays, expected, path)
        )
        return self

    # --- helpers -----------------------------------------------------------------------------

    def _synthesizer(self, transformer, counts, g) -> TableSynthesizer:
        config = self._config.model.bind(transformer.layout)
        self._counts, weights = counts, counts
        if self._args["sample_log_frequency"]:  # ctgan's sampling: log-frequency conditions
            weights = {k: np.log1p(v).tolist() for k, v in counts.items()}
        synth = TableSynthesizer(
            transformer, config, g["params"], weights, stats=g["stats"],
            batch_size=self._config.batch_size,
        )  # fmt: skip
        return synth

    def _condition(self, column, value) -> dict:
        """{column: value} for TableSynthesizer, or ctgan's ValueError."""
        names = {str(c): c for c in self._columns}
        name = str(column)
        if column not in self._columns and name not in names:
            raise ValueError(f"The column_name `{column}` doesn't exist in the data.")
        if not self._synth.transformer.schema[name].discrete:
            raise ValueError(
                f"The column_name `{column}` is a continuous column; expected one of the "
                "discrete_columns given to fit"
            )
        try:
            condition_vector(self._synth.transformer, {name: value})
        except ConfigError:
            raise ValueError(
                f"The value `{value}` doesn't exist in the column `{column}`."
            ) from None
        return {name: value}

    def _seed(self) -> int:
        rng = self.random_states if self.random_states is not None else np.random
        return int(rng.randint(0, 2**31 - 1))


def _rows_to_draw(n: int) -> int:
    """n rounded up to a power of two (at most 4096, then to a multiple of 4096), so that
    calls with different n reuse a few compiled samplers instead of compiling one per n."""
    if n <= 4096:
        return 1 << max(n - 1, 0).bit_length()
    return -(-n // 4096) * 4096


def _enable_gpu(enable_gpu, cuda) -> bool:
    """ctgan's rule for its deprecated `cuda` argument (synthesizers/_utils.py)."""
    if cuda is None:
        return enable_gpu
    warnings.warn(
        "`cuda` parameter is deprecated and will be removed in a future release. "
        "Please use `enable_gpu` instead.",
        FutureWarning,
        stacklevel=3,
    )
    if not enable_gpu:
        raise ValueError(
            "Cannot resolve the provided values of `cuda` and `enable_gpu` parameters. "
            "Please use only `enable_gpu`."
        )
    return cuda


def _device(enable_gpu: bool) -> jax.Device:
    return jax.devices()[0] if enable_gpu else jax.devices("cpu")[0]


def _check_discrete_columns(train_data, discrete_columns) -> None:
    """ctgan's checks and messages: the input's type, then every discrete column exists."""
    if isinstance(train_data, pd.DataFrame):
        invalid = set(discrete_columns) - set(train_data.columns)
    elif isinstance(train_data, np.ndarray):
        if train_data.ndim != 2:
            raise ValueError(f"``train_data`` has shape {train_data.shape}; expected 2-D")
        invalid = [c for c in discrete_columns if c < 0 or c >= train_data.shape[1]]
    else:
        raise TypeError("``train_data`` should be either pd.DataFrame or np.array.")
    if invalid:
        raise ValueError(f"Invalid columns found: {invalid}")


def _as_frame(train_data) -> tuple[pd.DataFrame, list, bool]:
    """(a DataFrame with string column names, the original labels, was it a DataFrame).
    An array's columns are named "0", "1", ... and their dtypes inferred, as ctgan does."""
    if isinstance(train_data, pd.DataFrame):
        frame = train_data.reset_index(drop=True)
        labels = list(frame.columns)
        frame.columns = [str(c) for c in labels]
        return frame, labels, True
    frame = pd.DataFrame(train_data, columns=[str(i) for i in range(train_data.shape[1])])
    return frame.infer_objects(), list(range(train_data.shape[1])), False


def _schema(frame: pd.DataFrame, discrete: set[str]) -> TableSchema:
    """Every column modelled (no id column); the discrete ones categorical, the rest numeric
    (integer for integer dtypes), bool columns binary and datetimes datetime."""
    kinds = {}
    for name in frame.columns:
        s = frame[name]
        if name in discrete:
            kinds[name] = "categorical"
        elif pd.api.types.is_bool_dtype(s):
            kinds[name] = "binary"
        elif pd.api.types.is_datetime64_any_dtype(s):
            kinds[name] = "datetime"
        else:
            kinds[name] = "integer" if pd.api.types.is_integer_dtype(s) else "float"
    return infer_schema(frame, kinds=kinds, detect_id=False)


def _loss_values(metrics: list[dict], per_epoch: int, epochs: int) -> pd.DataFrame:
    """ctgan's loss frame from the metrics log: each epoch's last step."""
    by_step = {row["step"]: row for row in metrics}
    last = [by_step[(e + 1) * per_epoch] for e in range(epochs)]
    return pd.DataFrame(
        {
            "Epoch": np.arange(epochs, dtype=np.int64),
            "Generator Loss": [_float(r["g_loss"]) for r in last],
            "Discriminator Loss": [_float(r["wasserstein"]) for r in last],
        }
    )


def _float(v) -> float:
    return float("nan") if v is None else float(v)


def _label(c) -> Any:
    """A column label as JSON keeps it (ints and strings; anything else as its string)."""
    if isinstance(c, np.integer | int) and not isinstance(c, bool):
        return int(c)
    return c if isinstance(c, str) else str(c)


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a saved file; DataError for anything else, naming ctgan's pickles."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected a model written by CTGAN.save")
    head = path.read_bytes()[:2]
    torch_file = DataError(
        f"{path}: a PyTorch pickle (ctgan's CTGAN.save); jaxsyn never unpickles files, so it "
        "cannot read it: expected a file written by jaxsyn.compat.ctgan.CTGAN.save (retrain "
        "with it)"
    )
    if head[:1] == b"\x80":  # pickle protocol 2+: torch's legacy format
        raise torch_file
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a zip file; expected a model written by CTGAN.save")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if META not in names:
            if any(n.endswith("data.pkl") for n in names):  # torch.save's zip layout
                raise torch_file
            raise DataError(f"{path}: no {META}; expected a model written by CTGAN.save")
        try:
            meta = json.loads(z.read(META))
            with np.load(io.BytesIO(z.read(ARRAYS)), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (KeyError, ValueError, OSError) as e:
            raise DataError(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DataError(f"{path}: format {found!r}; expected {FORMAT!r}")
    return meta, arrays


def _unflatten(arrays: dict, expected: Any, path) -> Any:
    """The saved arrays as the generator's pytree, checked against its expected shapes."""
    want = traverse_util.flatten_dict(expected, sep="/")
    if set(arrays) != set(want) or any(arrays[k].shape != want[k].shape for k in want):
        raise DataError(
            f"{path}: the generator's arrays do not match its config "
            f"({len(arrays)} arrays, expected {len(want)} of the config's shapes)"
        )
    return traverse_util.unflatten_dict({k: np.asarray(v) for k, v in arrays.items()}, sep="/")
