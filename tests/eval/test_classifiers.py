"""DenseNet-121 and ResNet-18: parameter counts against the papers' architectures (torchvision's
counts), shapes for 1 / 9 channels, and a tiny DenseNet that learns the cxr phantom's enlarged
heart, deterministically from its seed."""

import jax
import numpy as np
import pytest

from jaxsyn.data.phantoms import cxr
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import classifiers as C
from jaxsyn.eval.utility import roc_auc


def densenet_count(c_in=3, k=32, blocks=(6, 12, 24, 16), bn_size=4, stem=64, classes=1000):
    """DenseNet-BC parameters from the architecture (Huang et al. 2017): conv weights, BN
    scale + shift, the linear head."""
    n, c = c_in * stem * 49 + 2 * stem, stem  # 7x7 stem conv + BN
    for b, layers in enumerate(blocks):
        for _ in range(layers):  # BN, 1x1 conv to 4k, BN, 3x3 conv to k
            n += 2 * c + c * bn_size * k + 2 * bn_size * k + bn_size * k * k * 9
            c += k
        if b < len(blocks) - 1:  # BN, 1x1 conv to c / 2
            n += 2 * c + c * (c // 2)
            c //= 2
    return n + 2 * c + c * classes + classes  # final BN, head


def resnet18_count(c_in=3, classes=1000):
    n, c = c_in * 64 * 49 + 2 * 64, 64
    for s, w in enumerate((64, 128, 256, 512)):
        for i in range(2):
            n += c * w * 9 + 2 * w + w * w * 9 + 2 * w
            if s > 0 and i == 0:
                n += c * w + 2 * w  # 1x1 projection + BN
            c = w
    return n + c * classes + classes


def test_densenet121_parameter_count_is_torchvision_densenet121():
    assert densenet_count() == 7_978_856  # torchvision.models.densenet121()
    assert C.param_count(C.DenseNetConfig()) == 7_978_856
    assert C.param_count(C.DenseNetConfig(in_channels=9, num_outputs=3)) == densenet_count(
        9, classes=3
    )


def test_resnet18_parameter_count_is_torchvision_resnet18():
    assert resnet18_count() == 11_689_512  # torchvision.models.resnet18()
    assert C.param_count(C.ResNetConfig()) == 11_689_512
    assert C.param_count(C.ResNetConfig(in_channels=9, num_outputs=3)) == resnet18_count(9, 3)


@pytest.mark.parametrize("channels", [1, 9])
@pytest.mark.parametrize(
    "config, features",
    [(C.DenseNetConfig(), 1024), (C.ResNetConfig(), 512)],
    ids=["densenet121", "resnet18"],
)
def test_full_models_output_shapes(config, features, channels):
    config = C.DenseNetConfig(in_channels=channels, num_outputs=6) if features == 1024 else (
        C.ResNetConfig(in_channels=channels, num_outputs=6)
    )  # fmt: skip
    model = C.build(config)
    variables = jax.eval_shape(lambda key: C.init(key, config, 64), jax.random.key(0))
    x = jax.ShapeDtypeStruct((2, 64, 64, channels), np.float32)
    logits, feats = jax.eval_shape(model.apply, variables, x)
    assert (logits.shape, feats.shape) == ((2, 6), (2, features))
    assert logits.dtype == feats.dtype == np.float32


@pytest.mark.parametrize("make", [C.DenseNetConfig.tiny, C.ResNetConfig.tiny])
@pytest.mark.parametrize("channels", [1, 9])
def test_tiny_models_shapes(make, channels):
    config = make(in_channels=channels, num_outputs=3)
    variables = jax.eval_shape(lambda key: C.init(key, config, 16), jax.random.key(0))
    assert set(variables) == {"params", "batch_stats"}
    x = jax.ShapeDtypeStruct((5, 16, 16, channels), np.float32)
    logits, feats = jax.eval_shape(C.build(config).apply, variables, x)
    assert logits.shape == (5, 3) and feats.shape[0] == 5


def test_tiny_resnet_trains_multiclass_on_9_channels():
    config = C.ResNetConfig.tiny(in_channels=9, num_outputs=3)
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 16, 16, 9), np.float32), rng.integers(0, 3, 20)
    variables = C.train_classifier(config, x, y, task="multiclass", epochs=2, batch_size=8)
    probs = C.predict(variables, config, x[:5], task="multiclass", batch=8)  # a padded batch
    assert probs.shape == (5, 3) and np.allclose(probs.sum(-1), 1, atol=1e-6)
    feats = C.embed(variables, config, x[:5], batch=8)
    assert feats.shape == (5, 16) and np.isfinite(feats).all()
    # a padded batch gives each image the answer it gets in a full one (no batch statistics)
    assert np.allclose(C.embed(variables, config, x[:8], batch=8)[:5], feats, atol=1e-5)


def test_configs_and_inputs_are_checked():
    with pytest.raises(ConfigError, match="block_layers"):
        C.DenseNetConfig(block_layers=())
    with pytest.raises(ConfigError, match="compression"):
        C.DenseNetConfig(compression=0.0)
    with pytest.raises(ConfigError, match="in_channels"):
        C.ResNetConfig(in_channels=0)
    config = C.DenseNetConfig.tiny(in_channels=1, num_outputs=2)
    x = np.zeros((4, 16, 16, 3), np.float32)
    with pytest.raises(DataError, match="in_channels"):
        C.train_classifier(config, x, np.zeros((4, 2)), epochs=1)
    with pytest.raises(DataError, match="0/1"):
        C.train_classifier(config, x[..., :1], np.zeros((4, 3)), epochs=1)
    with pytest.raises(ConfigError, match="task"):
        C.train_classifier(config, x[..., :1], np.zeros(4, int), task="ranking")


def cxr_set(n: int, seed: int, size: int = 32):
    """Phantom radiographs float32 [n, size, size, 1] in [0, 1] and their label table."""
    table = cxr.labels(n, seed)
    rows = table.to_dict("records")
    images = [cxr.radiograph(r, size, cxr.image_seed(seed, i))[0] for i, r in enumerate(rows)]
    return (np.stack(images)[..., None] / 255.0).astype(np.float32), table


@pytest.fixture(scope="module")
def heart():
    images, table = cxr_set(480, seed=0)
    y = table[["enlarged_heart"]].to_numpy()
    return (images[:320], y[:320]), (images[320:], y[320:])


def test_tiny_densenet_learns_enlarged_heart_deterministically(heart):
    (x, y), (xt, yt) = heart
    config = C.DenseNetConfig.tiny(in_channels=1, num_outputs=1)
    aucs = []
    for _ in range(2):
        variables = C.train_classifier(config, x, y, epochs=8, batch_size=32, lr=3e-3, seed=0)
        aucs.append(roc_auc(yt[:, 0], C.predict(variables, config, xt, batch=32)[:, 0]))
    assert aucs[0] > 0.75, aucs
    assert aucs[0] == aucs[1]  # same seed, same data: the same classifier


def test_validation_keeps_the_best_epoch_and_stops_early(heart):
    (x, y), (xt, yt) = heart
    config = C.DenseNetConfig.tiny(in_channels=1, num_outputs=1)
    history = []
    variables = C.train_classifier(
        config, x[:64], y[:64], epochs=40, batch_size=32, lr=3e-2, val=(xt[:40], yt[:40]),
        patience=2, history=history,
    )  # fmt: skip
    losses = [h["val_loss"] for h in history]
    best = int(np.argmin(losses))
    assert len(history) == best + 3 < 40  # stopped two epochs after the best one
    probs = C.predict(variables, config, xt[:40], batch=32)[:, 0].astype(np.float64)
    bce = -np.mean(yt[:40, 0] * np.log(probs) + (1 - yt[:40, 0]) * np.log1p(-probs))
    assert bce == pytest.approx(losses[best], rel=1e-4)  # the returned variables are the best
