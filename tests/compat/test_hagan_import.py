"""Importing the reference HA-GAN's train.py checkpoints (jaxsyn.compat.hagan), without torch.

The files are written in the reference's format (tests/torchwriter.py: torch.save's zip layout;
`module.` names; {'model', 'optimizer'}) with random values, for our tiny 32³ config under the
reference's names (tests/compat/reference_format.py). Random values are all distinct, so a tensor
found with the same sorted values in our tree is the same tensor. The networks at the reference's
own sizes are compared with torch in tests/compat/test_hagan_reference.py (peers).
"""

import functools
import json

import jax
import jax.numpy as jnp
import nibabel as nib
import numpy as np
import pytest

from jaxsyn.cli import main
from jaxsyn.compat import hagan as compat
from jaxsyn.data.volumes import unwindow
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.models.hagan import Discriminator, Generator, HAGANConfig, init
from tests.compat import reference_format as ref

pytestmark = pytest.mark.xdist_group("hagan_import")
CONFIG = HAGANConfig.tiny(num_classes=2)
IT = 7
NETS = {"G": "g", "D": "d", "E": "eh", "Sub_E": "eg"}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    states = ref.write_checkpoints(folder, CONFIG, IT)
    config, variables, paths = compat.load_reference(folder, IT, config=CONFIG)
    return folder, states, variables, paths


def _leaf(tree, *path):
    for k in path:
        tree = tree[k]
    return np.asarray(tree)


def test_trees_are_the_models_and_every_tensor_is_used_once(imported):
    """Same tree and shapes as the model's init; each reference tensor's values in one leaf."""
    _, states, variables, paths = imported
    assert {n: p.name for n, p in paths.items()} == {
        "g": "G_iter7.pth",
        "d": "D_iter7.pth",
        "eh": "E_iter7.pth",
        "eg": "Sub_E_iter7.pth",
    }
    shapes = jax.eval_shape(functools.partial(init, config=CONFIG), jax.random.key(0))
    for ref_net, net in NETS.items():
        expected = jax.tree.map(lambda s: (s.shape, np.dtype(s.dtype)), shapes[net])
        got = jax.tree.map(lambda a: (a.shape, a.dtype), variables[net])
        assert got == expected, net
        theirs = sorted(np.sort(v.ravel()).tobytes() for v in states[ref_net].values())
        ours = sorted(np.sort(v.ravel()).tobytes() for v in jax.tree.leaves(variables[net]))
        assert ours == theirs, net


def test_tensors_land_in_their_places(imported):
    _, states, v, _ = imported
    g, d, eh, eg = (states[k] for k in ("G", "D", "E", "Sub_E"))
    gp, dp, ds = v["g"]["params"], v["d"]["params"], v["d"]["spectral"]
    # convolutions: reference [out, in, d, h, w] -> ours [d, h, w, in, out]
    assert (
        _leaf(gp, "trunk_1", "UpConv3d_0", "kernel")[2, 1, 0, 3, 5]
        == g["tp_conv2.weight"][5, 3, 2, 1, 0]
    )
    assert (
        _leaf(gp, "trunk_0", "Conv_0", "kernel")[0, 1, 2, 4, 1]
        == g["tp_conv1.weight"][1, 4, 0, 1, 2]
    )
    np.testing.assert_array_equal(_leaf(gp, "high_out", "bias"), g["tp_conv7.bias"])
    np.testing.assert_array_equal(_leaf(gp, "low_1", "GroupNorm_0", "scale"), g["sub_G.bn2.weight"])
    np.testing.assert_array_equal(
        _leaf(gp, "low_out", "kernel")[..., 0, 0], g["sub_G.tp_conv3.weight"][0, 0]
    )
    np.testing.assert_array_equal(_leaf(gp, "high_norm", "bias"), g["bn6.bias"])
    # D at 32³: D^H conv4..7 (conv1..3 dropped), D^L sub_D.conv4 then conv5; SN vectors
    assert _leaf(dp, "dh_conv4", "kernel")[1, 3, 2, 0, 6] == d["conv4.weight"][6, 0, 1, 3, 2]
    np.testing.assert_array_equal(_leaf(dp, "dh_class", "kernel"), d["fc2_class.weight"].T)
    np.testing.assert_array_equal(_leaf(dp, "dl_out", "bias"), d["sub_D.conv5.bias"])
    np.testing.assert_array_equal(
        _leaf(dp, "dl_conv1", "kernel")[..., 0, :].transpose(3, 0, 1, 2),
        d["sub_D.conv4.weight"][:, 0],
    )
    u = {k: w for inner in ds.values() for k, w in inner.items()}
    np.testing.assert_array_equal(u["dh_conv5/kernel/u"], d["conv5.u0"])
    np.testing.assert_array_equal(u["dl_out/kernel/u"], d["sub_D.conv5.u0"])
    assert u["dh_fc1/kernel/sigma"] == d["fc1.sv0"][0]
    # encoders: E conv1..3; Sub_E at 32³ keeps conv4 (one stride-2 layer) and conv5 -> z
    np.testing.assert_array_equal(
        _leaf(v["eh"]["params"], "ConvGNReLU_1", "GroupNorm_0", "bias"), eh["bn2.bias"]
    )
    assert (
        _leaf(v["eh"]["params"], "ConvGNReLU_1", "Conv_0", "kernel")[0, 2, 1, 3, 4]
        == eh["conv2.weight"][4, 3, 0, 2, 1]
    )
    egp = v["eg"]["params"]
    np.testing.assert_array_equal(_leaf(egp, "ConvGNReLU_0", "Conv_0", "bias"), eg["conv4.bias"])
    assert _leaf(egp, "Conv_0", "kernel")[3, 0, 1, 2, 9] == eg["conv5.weight"][9, 2, 3, 0, 1]


def test_fc1_outputs_become_our_channels_last_cube(imported):
    """The reference views fc1's output as [C, 4, 4, 4]; ours as [4, 4, 4, C]: the same numbers."""
    _, states, v, _ = imported
    w, b = states["G"]["fc1.weight"], states["G"]["fc1.bias"]
    zc = np.random.default_rng(1).standard_normal((2, w.shape[1])).astype(np.float32)
    theirs = (zc @ w.T + b).reshape(2, -1, 4, 4, 4).transpose(0, 2, 3, 4, 1)
    fc = v["g"]["params"]["fc"]
    ours = (zc @ fc["kernel"] + fc["bias"]).reshape(2, 4, 4, 4, -1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_module_prefix_and_wrapper_are_optional(tmp_path, imported):
    _, states, variables, _ = imported
    ref.save_train_py(states["G"], tmp_path / "G_iter3.pth", prefix="")
    _, plain, _ = compat.load_reference(tmp_path, 3, config=CONFIG)
    ref.save_torch(states["G"], tmp_path / "G_iter3.pth")  # a bare state dict
    _, bare, _ = compat.load_reference(tmp_path, 3, config=CONFIG)
    for got in (plain, bare):
        assert list(got) == ["g"]
        jax.tree.map(np.testing.assert_array_equal, got["g"], variables["g"])


@pytest.mark.parametrize(
    ("net", "edit", "message"),
    [
        (
            "D",
            lambda s: s.pop("conv5.u0"),
            r"D_iter7.pth: no tensor 'conv5.u0'; expected shape \[1, 8\]",
        ),
        (
            "G",
            lambda s: s.update({"tp_conv2.weight": s["tp_conv2.weight"][:, :8]}),
            r"G_iter7.pth: 'tp_conv2.weight' has shape \[16, 8, 3, 3, 3\]; expected \[16, 16, 3, 3, 3\]",
        ),
        (
            "Sub_E",
            lambda s: s.update({"conv3.weight": s["conv4.weight"]}),
            r"Sub_E_iter7.pth: unexpected tensors \['conv3.weight'\]",
        ),
    ],
    ids=["missing", "misshaped", "unexpected"],
)
def test_key_errors_name_the_key_file_and_shape(tmp_path, net, edit, message):
    states = ref.write_checkpoints(tmp_path, CONFIG, IT)
    edit(states[net])
    ref.save_train_py(states[net], tmp_path / f"{net}_iter{IT}.pth")
    with pytest.raises(DataError, match=message) as err:
        compat.load_reference(tmp_path, IT, config=CONFIG)
    assert "\n" not in str(err.value)


def test_missing_or_unreadable_generator(tmp_path):
    ref.write_checkpoints(tmp_path, CONFIG, IT, nets=("G",))
    with pytest.raises(
        DataError, match=r"G_iter8.pth: no such file; generator files here: \['G_iter7.pth'\]"
    ):
        compat.load_reference(tmp_path, 8, config=CONFIG)
    (tmp_path / "G_iter8.pth").write_text("<html>Google Drive: virus scan warning</html>")
    with pytest.raises(DataError, match=r"G_iter8.pth: not a PyTorch file"):
        compat.load_reference(tmp_path, 8, config=CONFIG)


def test_size_and_classes_come_from_the_files_or_are_refused(tmp_path):
    """At the reference sizes: G's tensors do not tell 128 from 256, D's conv1 does; fc1's input
    width is latent + classes."""
    ref.save_train_py({"fc1.weight": np.zeros((32768, 1026), np.float32)}, tmp_path / "G_iter1.pth")
    with pytest.raises(ConfigError, match="--size is needed"):
        compat.load_reference(tmp_path, 1)
    with pytest.raises(
        DataError, match=r"no tensor 'fc1.bias'.*HA-GAN 128³, latent 1024, 2 classes"
    ):
        compat.load_reference(tmp_path, 1, size=128)
    with pytest.raises(
        DataError, match=r"'fc1.weight' has shape \[32768, 1026\]; expected \[\*, 1024 \+ 3\]"
    ):
        compat.load_reference(tmp_path, 1, size=128, num_classes=3)
    ref.save_train_py(
        {"conv1.weight": np.zeros((16, 1, 4, 4, 4), np.float32)}, tmp_path / "D_iter1.pth"
    )
    with pytest.raises(ConfigError, match=r"D_iter1.pth: holds a 256³ network; --size is 128"):
        compat.load_reference(tmp_path, 1, size=128)
    with pytest.raises(DataError, match=r"no tensor 'fc1.bias'.*HA-GAN 256³"):
        compat.load_reference(tmp_path, 1)


@pytest.fixture
def tiny_reference(monkeypatch):
    """The CLI's reference config replaced by the tiny one (the reference's are 52M-parameter G's:
    those are imported in the peers tests)."""
    monkeypatch.setattr(
        compat,
        "reference_config",
        lambda size, num_classes, latent_dim: HAGANConfig.tiny(num_classes=num_classes),
    )


def test_cli_imports_a_run_that_generate_uses(tmp_path, imported, tiny_reference):
    folder, states, variables, _ = imported
    run = tmp_path / "run"
    argv = ["import", "hagan", "--checkpoint-dir", str(folder), "--iteration", "7"]
    argv += ["--latent-dim", "16", "--window=-1000,500", "--out", str(run)]
    assert main(argv) == 0
    info = json.loads((run / "config.json").read_text())
    assert info["family"] == "hagan" and info["class_column"] == "label"
    assert info["model"]["num_classes"] == 2 and info["window"] == [-1000.0, 500.0]
    assert info["imported_from"]["iteration"] == 7
    assert set(info["imported_from"]["files"]) == {"g", "d", "eh", "eg"}
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["7"]
    out = tmp_path / "gen"
    assert (
        main(
            ["generate", "--run", str(run), "--n", "1", "--condition", "label=1", "--out", str(out)]
        )
        == 0
    )
    hu = np.asarray(nib.load(out / "syn_000000.nii.gz").dataobj).transpose(2, 1, 0)  # [D, H, W]
    # what the imported generator makes from generate's noise for volume 0, in one pass
    z = jax.random.normal(jax.random.fold_in(jax.random.key(0), 0), (1, 16))
    zc = jnp.concatenate([z, jnp.asarray([[0.0, 1.0]])], axis=1)
    g = Generator(CONFIG)
    params = {"params": variables["g"]["params"]}
    x = g.apply(params, g.apply(params, zc, method=Generator.hypercube), method=Generator.high_res)
    want = unwindow(np.asarray(x)[0, ..., 0], -1000, 500)
    assert hu.shape == want.shape and hu.std() > 10
    assert np.abs(hu - want).max() <= 1.0  # rounded to int16 HU; chunked vs one pass


def test_imported_discriminator_runs_with_its_vectors(imported):
    _, _, variables, _ = imported
    s = CONFIG.size
    slab = jnp.zeros((1, CONFIG.slab_depth, s, s, 1))
    low = jnp.zeros((1, s // 4, s // 4, s // 4, 1))
    logit, cls, _ = Discriminator(CONFIG).apply(
        variables["d"], slab, low, jnp.int32(0), update_stats=False
    )
    assert logit.shape == (1,) and cls.shape == (1, 2) and np.isfinite(np.asarray(logit)).all()


def test_failed_import_leaves_no_folder(tmp_path, tiny_reference):
    folder = tmp_path / "ckpt"
    states = ref.write_checkpoints(folder, CONFIG, IT)
    del states["E"]["bn3.bias"]
    ref.save_train_py(states["E"], folder / f"E_iter{IT}.pth")
    argv = ["import", "hagan", "--checkpoint-dir", str(folder), "--iteration", "7"]
    assert main([*argv, "--latent-dim", "16", "--out", str(tmp_path / "run")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    (tmp_path / "run").mkdir()
    with pytest.raises(ConfigError, match="exists; expected a new folder"):
        compat.import_run(folder, IT, tmp_path / "run", config=CONFIG)
