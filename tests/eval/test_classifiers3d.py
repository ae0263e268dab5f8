"""The 3D ResNet (MedicalNet layout): shapes, parameter count, gradients, determinism, a label it
must learn, and MedicalNet weights read from a torch file."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.errors import DataError
from jaxsyn.eval import classifiers as C
from jaxsyn.eval.classifiers3d import ResNet3D, ResNet3DConfig, load_medicalnet
from jaxsyn.eval.utility import roc_auc

TINY = ResNet3DConfig.tiny()


def blobs(n: int, seed: int, size: int = 16):
    """Noise volumes [n, S, S, S, 1]; label 1 puts a bright cube in the upper half along D,
    label 0 in the lower half: separable by where the cube is, not by overall brightness."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.3, (n, size, size, size, 1)).astype(np.float32)
    y = rng.integers(0, 2, n)
    q = size // 4
    for i in range(n):
        d = rng.integers(size // 2, size - q) if y[i] else rng.integers(0, size // 2 - q)
        h, w = rng.integers(0, size - q, 2)
        x[i, d : d + q, h : h + q, w : w + q] = 1.0
    return x, y.astype(np.float32)[:, None]


def test_medicalnet_resnet10_parameter_count():
    # MedicalNet resnet10, 1 channel: conv1 21,952 + bn1 128; layer1 221,440; layer2 672,512;
    # layer3 2,688,512; layer4 10,750,976 (3^3 convs, BN scale+shift, 1^3 projections + BN);
    # our head Dense(512 -> 1) 513.
    assert C.param_count(ResNet3DConfig(), 16) == 14_355_520 + 513
    assert C.param_count(ResNet3DConfig(medicalnet=True), 16) == 14_355_520 + 513  # same shapes


def test_shapes_and_every_parameter_gets_a_gradient():
    variables = C.init(jax.random.key(0), TINY, (16, 12, 8))
    x = jnp.asarray(blobs(2, 0)[0][:, :, :12, :8])

    @jax.jit
    def loss(params):
        (logits, feats), _ = ResNet3D(TINY).apply(
            {"params": params, "batch_stats": variables["batch_stats"]}, x,
            use_running_average=False, mutable=["batch_stats"],
        )  # fmt: skip
        return (logits**2).sum() + (feats**2).sum(), (logits, feats)

    grads, (logits, feats) = jax.grad(loss, has_aux=True)(variables["params"])
    assert logits.shape == (2, 1) and feats.shape == (2, 8) and logits.dtype == jnp.float32
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert float(jnp.abs(g).max()) > 0, jax.tree_util.keystr(path)
    with pytest.raises(DataError, match=r"\[N, D, H, W, C\]"):
        C.embed(variables, TINY, np.zeros((2, 16, 16, 1), np.float32))


def test_learns_a_separable_label_deterministically():
    x, y = blobs(48, 1)
    x_test, y_test = blobs(32, 2)
    a = C.train_classifier(TINY, x, y, epochs=12, batch_size=16, lr=3e-3, seed=0)
    b = C.train_classifier(TINY, x, y, epochs=12, batch_size=16, lr=3e-3, seed=0)
    assert all(
        np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    probs = C.predict(a, TINY, x_test)
    assert probs.shape == (32, 1) and roc_auc(y_test[:, 0], probs[:, 0]) > 0.9
    assert C.embed(a, TINY, x_test, batch=7).shape == (32, 8)  # padded last batch


@pytest.mark.peers  # imports torch (~10 s): make test-peers
def test_medicalnet_weights_from_a_torch_file(tmp_path):
    torch = pytest.importorskip("torch")
    config = ResNet3DConfig(stage_sizes=(1, 1), width=4, medicalnet=True)
    shapes = jax.tree.map(np.shape, C.init(jax.random.key(0), config, 16))
    rng = np.random.default_rng(0)
    state, stem = {}, None
    names = {"stem_conv": "conv1", "stem_norm": "bn1"} | {
        f"stage{s}_block0/{a}": f"layer{s + 1}.0.{b}"
        for s in (0, 1)
        for a, b in (
            ("conv1", "conv1"),
            ("norm1", "bn1"),
            ("conv2", "conv2"),
            ("norm2", "bn2"),
            ("down_conv", "downsample.0"),
            ("down_norm", "downsample.1"),
        )  # fmt: skip
    }
    for ours, theirs in names.items():
        node = shapes["params"]
        for part in ours.split("/"):
            node = node.get(part, {})
        if "kernel" in node:
            k = node["kernel"]  # [kD, kH, kW, in, out] -> torch [out, in, kD, kH, kW]
            w = rng.normal(size=(k[4], k[3], *k[:3])).astype(np.float32)
            state[f"module.{theirs}.weight"] = torch.from_numpy(w)
            stem = w if ours == "stem_conv" else stem
        elif "scale" in node:
            for t in ("weight", "bias", "running_mean", "running_var"):
                v = rng.uniform(0.5, 1.5, node["scale"]).astype(np.float32)
                state[f"module.{theirs}.{t}"] = torch.from_numpy(v)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "medicalnet.pth")
    variables = load_medicalnet(tmp_path / "medicalnet.pth", config)
    bn = state["module.layer2.0.bn2.running_var"].numpy()
    assert np.array_equal(variables["batch_stats"]["stage1_block0"]["norm2"]["var"], bn)
    x = rng.normal(size=(1, 1, 9, 8, 7)).astype(np.float32)  # torch NCDHW
    want = torch.nn.functional.conv3d(torch.from_numpy(x), torch.from_numpy(stem), stride=2,
                                      padding=3).numpy()  # fmt: skip
    from flax import linen as nn

    conv = nn.Conv(4, (7, 7, 7), (2, 2, 2), ((3, 3),) * 3, use_bias=False)
    got = conv.apply({"params": variables["params"]["stem_conv"]}, x.transpose(0, 2, 3, 4, 1))
    np.testing.assert_allclose(np.asarray(got).transpose(0, 4, 1, 2, 3), want, rtol=1e-4, atol=1e-4)
    del state["module.layer1.0.conv2.weight"]
    torch.save({"state_dict": state}, tmp_path / "broken.pth")
    with pytest.raises(DataError, match="layer1.0.conv2.weight"):
        load_medicalnet(tmp_path / "broken.pth", config)
