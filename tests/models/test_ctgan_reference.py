"""CTGAN's networks against the reference's (the `ctgan` package, PyTorch) with shared weights
(peers: needs torch and ctgan; issue 16, "Proven against the reference networks").

Every torch parameter of ctgan's Generator(embedding_dim + cond_dim, generator_dim, data_dim)
and Discriminator(data_dim + cond_dim, discriminator_dim, pac) is copied into our Flax trees,
then the two sides are run on the same inputs, all float32 on both sides:
  * the generator's raw output (torch in train mode, i.e. batch statistics; ours stats=None) and
    the gradient of a fixed projection of it w.r.t. every parameter;
  * the discriminator's scores with dropout off (torch .eval(), ours keys=None) and gradients;
  * the gradient penalty: ctgan's calc_gradient_penalty against our d_loss (train/ctgan.py) for
    the same real/fake rows and the same interpolation weights (one per pac group on both sides;
    ours recovered from d_loss's keys and handed to torch in place of its torch.rand draw), with
    dropout off (torch .eval(), ours dropout=0), and the gradient of the penalty and of the whole
    critic loss w.r.t. the discriminator's parameters (double backprop);
  * the activation: tanh spans against torch.tanh, Gumbel-softmax spans against ctgan's
    _apply_activate with the same Gumbel draws (reference's soft conditions), and cond_loss
    against ctgan's _cond_loss;
  * the parameter counts.
Errors are measured as max |ours - torch| / max |torch| over an array ("relative"), bound 1e-5.
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.models import ctgan as m
from jaxsyn.train import ctgan as train

torch = pytest.importorskip("torch")
pytest.importorskip("ctgan")
from ctgan.data_transformer import SpanInfo  # noqa: E402
from ctgan.synthesizers import ctgan as ref  # noqa: E402

pytestmark = pytest.mark.peers

RTOL = 1e-5

# numeric (scalar + 3 modes), discrete of 4, numeric (scalar + 2 modes), discrete of 3
SPANS = ((0, 1, "scalar"), (1, 3, "onehot"), (4, 4, "onehot"), (8, 1, "scalar"),
         (9, 2, "onehot"), (11, 3, "onehot"))  # fmt: skip
DISCRETE = (2, 5)
# the same row as ctgan's DataTransformer.output_info_list describes it (one list per column)
OUTPUT_INFO = [[SpanInfo(1, "tanh"), SpanInfo(3, "softmax")], [SpanInfo(4, "softmax")],
               [SpanInfo(1, "tanh"), SpanInfo(2, "softmax")], [SpanInfo(3, "softmax")]]  # fmt: skip
BATCH = 40


def config(pac=10, **kw):
    return m.CTGANConfig(spans=SPANS, discrete=DISCRETE, embedding_dim=16, generator_dim=(32, 32),
                         discriminator_dim=(32, 32), pac=pac, **kw)  # fmt: skip


def rel(ours, theirs):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape
    scale = np.abs(theirs).max()
    return float(np.abs(ours - theirs).max() / (scale if scale > 0 else 1.0))  # 0: absolute


def t2n(t):
    return t.detach().cpu().numpy()


# --- weights: torch -> Flax ------------------------------------------------------------------


def torch_paths(module):
    """{our param path: torch parameter name}. torch's Linear layers in module order are our
    TorchDense_0, 1, ...; its BatchNorm1d layers are BatchStats_0, 1, ... (weight -> scale)."""
    out, linear, batchnorm = {}, 0, 0
    for name, mod in module.named_modules():
        if isinstance(mod, torch.nn.Linear):
            out[(f"TorchDense_{linear}", "Dense_0", "kernel")] = f"{name}.weight"
            out[(f"TorchDense_{linear}", "Dense_0", "bias")] = f"{name}.bias"
            linear += 1
        elif isinstance(mod, torch.nn.BatchNorm1d):
            out[(f"BatchStats_{batchnorm}", "scale")] = f"{name}.weight"
            out[(f"BatchStats_{batchnorm}", "bias")] = f"{name}.bias"
            batchnorm += 1
    return out


def ours_layout(t):
    """A torch parameter (or its gradient) in our layout: Linear.weight [out, in] is the
    transpose of Dense's kernel [in, out]; vectors are as they are."""
    t = t.detach().cpu().numpy()
    return t.T if t.ndim == 2 else t


def torch_to_flax(module, params):
    """Our param tree `params` with every leaf replaced by the torch module's parameter, and the
    {path: torch name} mapping; every torch parameter fills exactly one leaf and vice versa."""
    paths = torch_paths(module)
    theirs = dict(module.named_parameters())
    assert sorted(paths.values()) == sorted(theirs)
    leaves = jax.tree_util.tree_leaves_with_path(params)
    assert sorted(tuple(k.key for k in path) for path, _ in leaves) == sorted(paths)

    def leaf(path, x):
        value = ours_layout(theirs[paths[tuple(k.key for k in path)]])
        assert value.shape == x.shape and value.dtype == np.float32
        return jnp.asarray(value)

    return jax.tree_util.tree_map_with_path(leaf, params), paths


def get(tree, path):
    for p in path:
        tree = tree[p]
    return np.asarray(tree)


def assert_grads_match(ours, module, paths, zero=()):
    """Every parameter's gradient within RTOL (relative), ours against torch's `.grad`.

    `zero`: torch names whose exact gradient is 0 (a Linear bias right before batch-statistics
    BatchNorm: the mean subtraction removes it). Both sides then hold only rounding noise, so
    each is bounded by RTOL times the largest gradient of the layer's weight instead."""
    theirs = dict(module.named_parameters())
    errors = {}
    for path, name in paths.items():
        g, t = get(ours, path), ours_layout(theirs[name].grad)
        if name in zero:
            scale = np.abs(ours_layout(theirs[name.replace(".bias", ".weight")].grad)).max()
            errors[name] = max(np.abs(g).max(), np.abs(t).max()) / scale
        else:
            errors[name] = rel(g, t)
    assert max(errors.values()) <= RTOL, errors
    return errors


# --- fixtures ----------------------------------------------------------------------------------


def conditions(rng, c, n):
    """Reference-style training conditions: each row names one discrete column, one category;
    also ctgan's mask m [n, n_discrete]."""
    cond = np.zeros((n, c.cond_dim), np.float32)
    mask = np.zeros((n, len(c.discrete)), np.float32)
    widths = [c.spans[i][1] for i in c.discrete]
    starts = np.cumsum([0, *widths])
    for r in range(n):
        j = rng.integers(len(widths))
        cond[r, starts[j] + rng.integers(widths[j])] = 1
        mask[r, j] = 1
    return cond, mask


def networks(c):
    torch.manual_seed(0)
    g = ref.Generator(c.embedding_dim + c.cond_dim, c.generator_dim, c.data_dim)
    d = ref.Discriminator(c.data_dim + c.cond_dim, c.discriminator_dim, c.pac)
    ours = m.init(jax.random.key(0), c)
    g_params, g_paths = torch_to_flax(g, ours["g"])
    d_params, d_paths = torch_to_flax(d, ours["d"])
    return g, d, g_params, d_params, g_paths, d_paths


def encoded_rows(rng, c, n):
    """Rows in the encoded space: scalars in [-1, 1], one-hot spans."""
    x = np.zeros((n, c.data_dim), np.float32)
    for start, width, kind in c.spans:
        if kind == "scalar":
            x[:, start] = rng.uniform(-0.99, 0.99, n)
        else:
            x[np.arange(n), start + rng.integers(width, size=n)] = 1
    return x


# --- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pac", [10, 4])
def test_parameter_counts(pac):
    c = config(pac)
    g = ref.Generator(c.embedding_dim + c.cond_dim, c.generator_dim, c.data_dim)
    d = ref.Discriminator(c.data_dim + c.cond_dim, c.discriminator_dim, c.pac)
    ours = m.init(jax.random.key(0), c)
    assert m.param_count(ours["g"]) == sum(p.numel() for p in g.parameters())
    assert m.param_count(ours["d"]) == sum(p.numel() for p in d.parameters())


def test_generator_output_and_gradients():
    c = config()
    g, _, g_params, _, paths, _ = networks(c)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((BATCH, c.embedding_dim)).astype(np.float32)
    cond, _ = conditions(rng, c, BATCH)
    proj = rng.standard_normal((BATCH, c.data_dim)).astype(np.float32)

    g.train()  # batch statistics, as the reference always runs it
    raw_t = g(torch.cat([torch.from_numpy(z), torch.from_numpy(cond)], dim=1))
    (raw_t * torch.from_numpy(proj)).sum().backward()

    def projected(params):
        raw = m.apply_generator(params, jnp.asarray(z), jnp.asarray(cond), c)  # stats None
        return jnp.sum(raw * proj), raw

    (_, raw), grads = jax.value_and_grad(projected, has_aux=True)(g_params)
    assert rel(raw, t2n(raw_t)) <= RTOL
    before_bn = {f"seq.{i}.fc.bias" for i in range(len(c.generator_dim))}
    errors = assert_grads_match(grads, g, paths, zero=before_bn)
    assert "seq.0.fc.weight" in errors  # the first layer's weights among them


@pytest.mark.parametrize("pac", [10, 4])
def test_discriminator_output_and_gradients(pac):
    c = config(pac)
    _, d, _, d_params, _, paths = networks(c)
    rng = np.random.default_rng(1)
    x = encoded_rows(rng, c, BATCH)
    cond, _ = conditions(rng, c, BATCH)
    proj = rng.standard_normal(BATCH // pac).astype(np.float32)

    d.eval()  # dropout off
    score_t = d(torch.cat([torch.from_numpy(x), torch.from_numpy(cond)], dim=1))
    assert tuple(score_t.shape) == (BATCH // pac, 1)
    (score_t[:, 0] * torch.from_numpy(proj)).sum().backward()

    def projected(params):
        score = m.apply_discriminator(params, jnp.asarray(x), jnp.asarray(cond), c, None)
        return jnp.sum(score * proj), score

    (_, score), grads = jax.value_and_grad(projected, has_aux=True)(d_params)
    assert rel(score, t2n(score_t)[:, 0]) <= RTOL
    errors = assert_grads_match(grads, d, paths)
    assert "seq.0.weight" in errors


@pytest.mark.parametrize("pac", [10, 4])
def test_gradient_penalty_and_critic_loss(pac, monkeypatch):
    """ctgan's calc_gradient_penalty(lambda_=10) and loss_d against our d_loss, dropout off."""
    c = config(pac, dropout=0.0)  # ours: no masks whatever the keys; torch: .eval()
    tc = train.CTGANTrainConfig(model=c, batch_size=BATCH)
    _, d, _, d_params, _, paths = networks(c)
    rng = np.random.default_rng(2)
    real, fake = encoded_rows(rng, c, BATCH), rng.uniform(0, 1, (BATCH, c.data_dim))
    fake = fake.astype(np.float32)
    real_cond, _ = conditions(rng, c, BATCH)
    fake_cond, _ = conditions(rng, c, BATCH)
    groups = BATCH // pac
    group_keys = jax.random.split(jax.random.key(3), groups)

    # our interpolation weights, one per pac group, as d_loss derives them from its keys
    k_alpha = train.split_each(group_keys, 4)[3]
    alpha = np.asarray(jax.vmap(jax.random.uniform)(k_alpha), np.float32)
    assert alpha.min() > 0 and alpha.max() < 1 and len(np.unique(alpha)) == groups

    def rand(*shape, **_):  # the reference draws torch.rand(B // pac, 1, 1): ours instead
        assert shape == (groups, 1, 1), shape
        return torch.from_numpy(alpha.copy()).reshape(groups, 1, 1)

    d.eval()
    real_t = torch.cat([torch.from_numpy(real), torch.from_numpy(real_cond)], dim=1)
    # in the reference the fake rows come out of the generator: they require grad, and so do the
    # interpolates calc_gradient_penalty differentiates by (a leaf stands in for G here)
    fake_t = torch.cat([torch.from_numpy(fake), torch.from_numpy(fake_cond)], dim=1)
    fake_t.requires_grad_(True)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "rand", rand)
        pen = d.calc_gradient_penalty(real_t, fake_t, "cpu", pac)
    pen.backward(retain_graph=True)
    # the last layer's bias does not reach the input gradient: torch leaves its grad None
    gp_grads_t = {n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
                  for n, p in d.named_parameters()}  # fmt: skip
    assert gp_grads_t["seq.6.bias"].abs().max() == 0
    loss_d = -(torch.mean(d(real_t)) - torch.mean(d(fake_t)))
    loss_d.backward()  # the reference's D step: grads of pen + loss_d

    args = (jnp.asarray(real), jnp.asarray(real_cond), jnp.asarray(fake), jnp.asarray(fake_cond))

    def gp_only(params):
        return train.d_loss(params, *args, group_keys, tc)[1]["gp"]

    gp, gp_grads = jax.value_and_grad(gp_only)(d_params)
    (loss, aux), grads = jax.value_and_grad(
        lambda p: train.d_loss(p, *args, group_keys, tc), has_aux=True
    )(d_params)
    assert rel(gp, t2n(pen)) <= RTOL
    assert rel(aux["wasserstein"], t2n(loss_d)) <= RTOL
    assert rel(loss, t2n(pen + loss_d)) <= RTOL
    assert_grads_match(grads, d, paths)  # the whole critic loss
    for n, p in d.named_parameters():
        p.grad = gp_grads_t[n]
    errors = assert_grads_match(gp_grads, d, paths)  # the penalty alone (double backprop)
    assert "seq.0.weight" in errors


def test_activation_and_cond_loss():
    """tanh spans = torch.tanh; Gumbel-softmax spans = ctgan's _apply_activate given the same
    Gumbel draws (reference's soft conditions); cond_loss = ctgan's _cond_loss."""
    c = config(hard_conditions=False)
    g, _, g_params, _, _, _ = networks(c)
    rng = np.random.default_rng(4)
    z = rng.standard_normal((BATCH, c.embedding_dim)).astype(np.float32)
    cond, mask = conditions(rng, c, BATCH)
    g.train()
    with torch.no_grad():
        raw_t = g(torch.cat([torch.from_numpy(z), torch.from_numpy(cond)], dim=1))
    raw = np.asarray(m.apply_generator(g_params, jnp.asarray(z), jnp.asarray(cond), c))
    assert rel(raw, t2n(raw_t)) <= RTOL

    this = types.SimpleNamespace(_transformer=types.SimpleNamespace(output_info_list=OUTPUT_INFO),
                                 _gumbel_softmax=ref.CTGAN._gumbel_softmax)  # fmt: skip
    torch.manual_seed(5)
    act_t = t2n(ref.CTGAN._apply_activate(this, raw_t))
    # the Gumbel noise torch drew: one exponential_() per softmax span, in row order
    torch.manual_seed(5)
    g_t = np.zeros_like(raw)
    for start, width, kind in c.spans:
        if kind == "onehot":
            g_t[:, start : start + width] = t2n(-torch.empty(BATCH, width).exponential_().log())
    # ours draws its Gumbel noise from one key per row; shift the logits so that the noise it
    # adds becomes torch's (logits + g_ours' = raw + g_torch)
    keys = jax.random.split(jax.random.key(6), BATCH)
    g_ours = np.asarray(jax.vmap(lambda k: jax.random.gumbel(k, (c.data_dim,)))(keys))
    onehot = ~np.asarray(c.index.is_scalar)
    shifted = np.where(onehot, raw + g_t - g_ours, raw)
    act = np.asarray(m.activate(jnp.asarray(shifted), jnp.asarray(cond), keys, c))

    scalars = np.asarray(c.index.is_scalar)
    np.testing.assert_array_equal(act_t[:, scalars], t2n(torch.tanh(raw_t))[:, scalars])
    assert rel(act[:, scalars], act_t[:, scalars]) <= RTOL
    assert rel(act[:, onehot], act_t[:, onehot]) <= RTOL

    ce_t = ref.CTGAN._cond_loss(this, raw_t, torch.from_numpy(cond), torch.from_numpy(mask))
    ce = jnp.mean(m.cond_loss(jnp.asarray(raw), jnp.asarray(cond), c))
    assert rel(ce, t2n(ce_t)) <= RTOL
