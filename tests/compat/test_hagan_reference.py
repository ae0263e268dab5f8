"""Imported reference checkpoints against the reference networks in PyTorch (peers: needs torch).

tests/compat/reference_torch.py holds the reference's modules under its own names. Their state
dicts are saved as train.py saves them (`{'model': DataParallel(net).state_dict(), 'optimizer':
...}` in G_iterN.pth, D_iterN.pth, E_iterN.pth, Sub_E_iterN.pth), imported with
`jaxsyn.compat.hagan.import_run`, read back from the run as `jaxsyn generate` reads it, and
compared with the same noise and inputs. Errors are max |ours - torch| / max |torch| <= 1e-4
(STYLE.md's tolerance for complex modules). GroupNorm affines and SN vectors are randomised so
that a scale/bias or u mix-up shows. The training iteration runs with narrower networks under
the same names (the reference's width arguments) to stay within a CPU minute; its losses are held
to 1e-4, D's update to 1e-4 of torch's, and every update to 10x torch's own float32 error against
the same iteration in float64 (G's, E^H's and E^G's gradients sum ~10^5 cancelling terms: torch's
float32 updates are 0.1-1% from float64, ours up to 5x further, by summation order).
"""

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsyn.checkpoint import restore_subtree
from jaxsyn.compat import hagan as compat
from jaxsyn.infer import hagan as infer
from jaxsyn.models.hagan import (
    Discriminator,
    EncoderGlobal,
    EncoderHigh,
    Generator,
    HAGANConfig,
    init,
)
from jaxsyn.train import hagan as train_hagan
from jaxsyn.train import parallel
from jaxsyn.train import state as state_lib
from tests.compat import reference_format

torch = pytest.importorskip("torch")
from tests.compat import reference_torch as R  # noqa: E402  (after torch is known to be there)

pytestmark = [pytest.mark.peers, pytest.mark.xdist_group("hagan_reference")]
TOL = 1e-4
# D's update against torch's float32 one, in units of D's largest update. float32 summation order
# alone moves single bias leaves (sums over every output voxel) by this much, and which leaf and
# variant depends on the CPU: measured 2026-12-07, the conditional step's dl_conv1 bias 4.5e-4 on
# an AVX-512 EPYC (the unconditional within 1e-4), the unconditional step 7.8e-4 on an AVX2 EPYC
# (the conditional within 1e-4). A wrong function is off by O(1).
D_TOL = 1e-3
IT = 80000
CROP = 48  # a multiple of 4: the reference's fake slab then starts where the real crop does


def rel_err(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def last(x: "torch.Tensor") -> np.ndarray:
    """[B, C, D, H, W] torch -> [B, D, H, W, C] numpy."""
    return x.detach().permute(0, 2, 3, 4, 1).numpy()


def first(x: np.ndarray) -> "torch.Tensor":
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1)))


def randomise(*nets) -> None:
    """GroupNorm affines away from (1, 0), SN vectors fresh: every tensor carries information."""
    with torch.no_grad():
        for net in nets:
            for m in net.modules():
                if isinstance(m, torch.nn.GroupNorm):
                    m.weight.normal_(1.0, 0.2)
                    m.bias.normal_(0.0, 0.2)


def save_as_train_py(nets: dict, folder, iteration: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in nets.items():
        opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.0, 0.999))
        wrapped = torch.nn.DataParallel(net)  # CPU: keeps the module, names get `module.`
        state = {"model": wrapped.state_dict(), "optimizer": opt.state_dict()}
        torch.save(state, folder / f"{name}_iter{iteration}.pth")


def reference_nets(size: int, num_class: int = 0, **widths) -> dict:
    g = widths.get("g", 32)
    latent = widths.get("latent", 1024)
    nets = {
        "G": R.Generator(size, "train", latent, g, num_class),
        "D": R.Discriminator(size, num_class, widths.get("d", 512), widths.get("dl", 256)),
        "E": R.Encoder(widths.get("e", 64)),
        "Sub_E": R.Sub_Encoder(size, widths.get("eg", 256), latent),
    }
    randomise(*nets.values())
    return nets


@pytest.fixture(scope="module")
def run128(tmp_path_factory):
    """The reference's S=128 networks saved by train.py's rule, imported as a run."""
    torch.manual_seed(0)
    nets = reference_nets(128)
    root = tmp_path_factory.mktemp("ha_gan")
    save_as_train_py(nets, root / "checkpoint" / "HA_GAN_run1", IT)
    run = compat.import_run(root / "checkpoint" / "HA_GAN_run1", IT, root / "run")
    config, g_params, _ = infer.load_generator(run)  # what `jaxsyn generate` reads
    shapes = jax.eval_shape(functools.partial(init, config=config), jax.random.key(0))
    target = {
        "params": {k: shapes[k]["params"] for k in ("d", "eh", "eg")},
        "stats": {"spectral": shapes["d"]["spectral"]},
    }
    return config, nets, g_params, restore_subtree(run / "checkpoints", target)


def test_reference_names_and_shapes_are_the_format_spec():
    """The torch modules' state dicts are what tests/compat/reference_format.py (the default
    suite's files) writes, at both reference sizes and with classes."""
    for size, classes in ((128, 0), (256, 3)):
        nets = reference_nets(size, classes)
        config = compat.reference_config(size, classes)
        for name, net in nets.items():
            got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
            assert got == reference_format.SHAPES[name](config), (size, name)


def test_generator_sub_volume_and_low_res(run128):
    config, nets, g_params, _ = run128
    G = nets["G"].train()
    z = torch.randn(2, 1024, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        slab, low = G(z, crop_idx=CROP)
    ours_low, ours_slab = Generator(config).apply({"params": g_params}, z.numpy(), CROP)
    assert rel_err(ours_slab, last(slab)) <= TOL
    assert rel_err(ours_low, last(low)) <= TOL


def test_full_volume_one_pass_and_chunked(run128):
    """The reference's inference (mode='eval': G^H over the whole hypercube, one pass) against
    our one pass and our chunked generation (jaxsyn.infer.hagan)."""
    config, nets, g_params, _ = run128
    G = nets["G"]
    z = torch.randn(1, 1024, generator=torch.Generator().manual_seed(2))
    G.mode = "eval"
    try:
        with torch.no_grad():
            full = G(z, 0)[:, 0].numpy()
    finally:
        G.mode = "train"
    assert rel_err(infer.one_pass(g_params, z.numpy(), config), full) <= TOL
    chunks = np.concatenate([b for _, b in infer.generate_chunks(g_params, z.numpy(), config)], 1)
    assert rel_err(chunks, full) <= TOL


def test_discriminator_logits_and_power_iteration(run128):
    config, nets, _, rest = run128
    D = nets["D"]
    rng = np.random.default_rng(3)
    slab = rng.uniform(-1, 1, (2, 16, 128, 128, 1)).astype(np.float32)
    low = rng.uniform(-1, 1, (2, 32, 32, 32, 1)).astype(np.float32)
    variables = {"params": rest["params"]["d"], "spectral": rest["stats"]["spectral"]}
    (logit, _, _), new = Discriminator(config).apply(
        variables, slab, low, jnp.full((2,), CROP), mutable=["spectral"]
    )
    D.train()  # the reference's D steps run in training mode: u0 advances
    with torch.no_grad():
        theirs = D(first(slab), first(low), CROP)[:, 0].numpy()
    assert rel_err(logit, theirs) <= TOL
    after = compat.convert("d", _strip(D.state_dict()), config, "torch D")["spectral"]
    for path, u in jax.tree_util.tree_flatten_with_path(new["spectral"])[0]:
        assert rel_err(u, _get(after, path)) <= TOL, jax.tree_util.keystr(path)


def test_encoders(run128):
    config, nets, _, rest = run128
    rng = np.random.default_rng(4)
    slab = rng.uniform(-1, 1, (2, 16, 128, 128, 1)).astype(np.float32)
    hyper = rng.uniform(0, 1, (2, 32, 32, 32, 64)).astype(np.float32)
    with torch.no_grad():
        h = nets["E"](first(slab))
        z = nets["Sub_E"](first(hyper))
    ours_h = EncoderHigh(config).apply({"params": rest["params"]["eh"]}, slab)
    ours_z = EncoderGlobal(config).apply({"params": rest["params"]["eg"]}, hyper)
    assert rel_err(ours_h, last(h)) <= TOL
    assert rel_err(ours_z, z.numpy()) <= TOL


@pytest.mark.slow
def test_generator_256_sub_volume_and_low_res(tmp_path):
    torch.manual_seed(5)
    G = R.Generator(256, "train")
    randomise(G)
    save_as_train_py({"G": G}, tmp_path / "ckpt", 500)
    config, variables, _ = compat.load_reference(tmp_path / "ckpt", 500, size=256)
    z = torch.randn(1, 1024, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        slab, low = G(z, crop_idx=CROP)
    ours_low, ours_slab = Generator(config).apply(variables["g"], z.numpy(), CROP)
    assert rel_err(ours_slab, last(slab)) <= TOL
    assert rel_err(ours_low, last(low)) <= TOL


def _strip(state) -> dict:
    return {k.removeprefix("module."): v.detach().numpy().copy() for k, v in state.items()}


def _get(tree, path):
    for k in path:
        tree = tree[k.key]
    return tree


# --- one training iteration, SGD, against train.py's loop -----------------------------------------

NARROW = dict(g=16, d=128, dl=64, e=32, eg=128, latent=32)
# train.py's learning rates x 10, so that every update is far above the float32 resolution of the
# parameters it changes (at x 1 many updates are a few ulps of their parameter)
LR = {"g": 1e-3, "d": 4e-3, "eh": 1e-3, "eg": 1e-3}


def narrow_config(num_classes: int) -> HAGANConfig:
    """Our config for reference_nets(128, **NARROW): the reference's width rules at these widths."""
    return HAGANConfig(
        size=128,
        latent_dim=32,
        num_classes=num_classes,
        trunk_channels=(256, 256, 128, 64, 32),
        low_channels=(16, 8),
        high_channels=16,
        dh_channels=(4, 8, 16, 32, 64, 128, 32),
        dh_hidden=16,
        dl_channels=(8, 16, 32, 64),
        eh_channels=(16, 16, 32),
        eg_channels=(16, 32, 64, 128),
        batch_size=2,
    )


def torch_iteration(nets, real, labels, z_d, z_g, num_class, lambda_class=0.1) -> dict:
    """train.py's loop body for one iteration with SGD and crop_idx = CROP: the D step, the G
    step, the E^H step, the E^G step (E^H over the 8 slabs, concatenated)."""
    G, D, E, Sub_E = (nets[k] for k in ("G", "D", "E", "Sub_E"))
    for net in nets.values():
        net.train()
        for p in net.parameters():
            p.requires_grad = False
    opt = {
        "d": torch.optim.SGD(D.parameters(), lr=LR["d"]),
        "g": torch.optim.SGD(G.parameters(), lr=LR["g"]),
        "eh": torch.optim.SGD(E.parameters(), lr=LR["eh"]),
        "eg": torch.optim.SGD(Sub_E.parameters(), lr=LR["eg"]),
    }
    bce, l1 = torch.nn.BCEWithLogitsLoss(), torch.nn.L1Loss()
    ones, zeros = torch.ones(2, 1, dtype=real.dtype), torch.zeros(2, 1, dtype=real.dtype)
    onehot = torch.nn.functional.one_hot(labels, num_class).to(real.dtype) if num_class else None
    small = torch.nn.functional.interpolate(real, scale_factor=0.25)
    crop = real[:, :, CROP : CROP + 16]
    losses = {}

    def d_out(*args):
        out = D(*args)
        return out if num_class else (out, None)

    for p in D.parameters():
        p.requires_grad = True
    D.zero_grad()
    y_real, c_real = d_out(crop, small, CROP)
    loss = bce(y_real, ones)
    if num_class:
        loss = loss + torch.nn.functional.cross_entropy(c_real, labels)
    fake, fake_small = G(z_d, crop_idx=CROP, class_label=onehot)
    y_fake, _ = d_out(fake, fake_small, CROP)
    losses["d_loss"] = loss + bce(y_fake, zeros)
    losses["d_loss"].backward()
    opt["d"].step()

    for p in D.parameters():
        p.requires_grad = False
    for p in G.parameters():
        p.requires_grad = True
    G.zero_grad()
    fake, fake_small = G(z_g, crop_idx=CROP, class_label=onehot)
    y, c = d_out(fake, fake_small, CROP)
    losses["g_loss"] = bce(y, ones)
    if num_class:
        losses["g_loss"] = losses["g_loss"] + lambda_class * torch.nn.functional.cross_entropy(
            c, labels
        )
    losses["g_loss"].backward()
    opt["g"].step()

    for p in E.parameters():
        p.requires_grad = True
    for p in G.parameters():
        p.requires_grad = False
    E.zero_grad()
    losses["eh_l1"] = l1(G(E(crop), crop_idx=None), crop)
    losses["eh_l1"].backward()
    opt["eh"].step()

    for p in Sub_E.parameters():
        p.requires_grad = True
    for p in E.parameters():
        p.requires_grad = False
    Sub_E.zero_grad()
    with torch.no_grad():
        h = torch.cat([E(real[:, :, i : i + 16]) for i in range(0, 128, 16)], dim=2)
    rec, rec_small = G(Sub_E(h), crop_idx=CROP, class_label=onehot)
    losses["eg_l1"] = (l1(rec, crop) + l1(rec_small, small)) / 2.0
    losses["eg_l1"].backward()
    opt["eg"].step()
    return {k: float(v) for k, v in losses.items()}


def _variables(nets, config) -> dict:
    names = {"g": "G", "d": "D", "eh": "E", "eg": "Sub_E"}
    return {
        ours: compat.convert(ours, _strip(nets[theirs].state_dict()), config, theirs)
        for ours, theirs in names.items()
    }


@pytest.mark.parametrize(
    "num_class",
    [
        0,
        # the conditional D step on the AVX-512 EPYC: every D leaf within 7e-6 of float64 torch
        # but dl_conv1's bias (a sum over 2 x 16^3 positions), 4.5e-4 of D's largest update
        pytest.param(3, marks=pytest.mark.slow),
    ],
    ids=["unconditional", "conditional"],
)
def test_one_training_iteration_matches_train_py(monkeypatch, num_class):
    """Losses and each network's SGD update (after - before) of our train_step against train.py's
    iteration, on the same batch, noise and slab (one crop for the whole batch, as train.py)."""
    config = narrow_config(num_class)
    torch.manual_seed(7)
    nets = reference_nets(128, num_class, **NARROW)
    before = _variables(nets, config)
    monkeypatch.setattr(
        train_hagan, "optimizers", lambda c: {k: optax.sgd(lr) for k, lr in LR.items()}
    )
    rng = np.random.default_rng(8)
    volume = rng.uniform(-1, 1, (2, 128, 128, 128, 1)).astype(np.float32)
    labels = np.array([2, 0]) if num_class else np.zeros(2, int)
    key = jax.random.key(9)
    state = state_lib.create(
        {k: v["params"] for k, v in before.items()},
        train_hagan.optimizers(config),
        key,
        stats={"spectral": before["d"]["spectral"]},
    )
    # train_step's noise: example i draws z_d from fold_in(fold_in(k, i), 0), z_g from (.., 1),
    # k = fold_in(state key, step)
    k = jax.random.fold_in(key, 0)
    z = [
        np.stack(
            [
                jax.random.normal(jax.random.fold_in(jax.random.fold_in(k, i), j), (32,))
                for i in range(2)
            ]
        )
        for j in (0, 1)
    ]
    batch = {
        "volume": volume,
        "slab": volume[:, CROP : CROP + 16],
        "low": volume[:, ::4, ::4, ::4],  # F.interpolate(scale_factor=0.25): nearest, index 4i
        "slab_index": np.full(2, CROP, np.int32),
        "conditions": labels[:, None].astype(np.float32)
        if num_class
        else np.zeros((2, 0), np.float32),
    }
    mesh = parallel.make_mesh(jax.devices()[:1])
    step = parallel.data_parallel(functools.partial(train_hagan.train_step, config=config), mesh)
    with jax.set_mesh(mesh):
        state = jax.device_put(state, parallel.replicated(mesh))
        new, metrics = step(state, parallel.shard_batch(batch, mesh))
    nets64 = {k: copy.deepcopy(v).double() for k, v in nets.items()}
    before_sd = {
        k: {n: t.detach().clone() for n, t in v.state_dict().items()} for k, v in nets.items()
    }
    inputs = (
        first(volume),
        torch.from_numpy(labels),
        *(torch.from_numpy(np.asarray(x)) for x in z),
    )
    theirs = torch_iteration(nets, *inputs, num_class)
    torch_iteration(  # the same iteration in float64: what float32 approximates
        nets64, inputs[0].double(), inputs[1], inputs[2].double(), inputs[3].double(), num_class
    )
    for name, value in theirs.items():
        assert abs(float(metrics[name]) - value) <= TOL * abs(value), (name, metrics[name], value)
    for net, ref_name in {"g": "G", "d": "D", "eh": "E", "eg": "Sub_E"}.items():
        d32, d64 = (_delta(net, x[ref_name], before_sd[ref_name], config) for x in (nets, nets64))
        ours = jax.tree.map(lambda a, b: np.asarray(a) - b, new.params[net], before[net]["params"])
        scale = max(np.abs(w).max() for w in jax.tree.leaves(d64))

        def err(a, b, scale=scale):
            pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
            return max(np.abs(x - y).max() for x, y in pairs) / scale

        # float32 itself: torch's float32 update is err(d32, d64) from the exact one; ours may be
        # further by float32 summation order (measured up to 5x for G), not by another function
        floor = D_TOL if net == "d" else TOL
        assert err(ours, d64) <= max(floor, 10 * err(d32, d64)), (
            net,
            err(ours, d64),
            err(d32, d64),
        )
        if net == "d":  # a well-conditioned gradient: held to torch's float32 update
            assert err(ours, d32) <= D_TOL, err(ours, d32)
    after = _variables(nets, config)
    for path, u in jax.tree_util.tree_flatten_with_path(new.stats["spectral"])[0]:
        assert rel_err(u, _get(after["d"]["spectral"], path)) <= TOL, jax.tree_util.keystr(path)


def _delta(net: str, model, before: dict, config) -> dict:
    """model's parameters minus `before`, computed in float64, in our layout (float32)."""
    state = model.state_dict()
    change = {
        k.removeprefix("module."): (state[k].double() - before[k].double()).numpy() for k in state
    }
    return compat.convert(net, change, config, "change")["params"]
