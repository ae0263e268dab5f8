"""Our PyTorch HA-GAN (benchmarks/hagan_torch.py): official parameter counts, shapes, one iteration.

Skipped without the `bench` extra (torch)."""

import importlib.util
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.peers  # make test-peers

torch = pytest.importorskip("torch")

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "hagan_torch.py"
_spec = importlib.util.spec_from_file_location("hagan_torch", _PATH)
ht = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ht)

# Counted on the official modules (shared/reference/hagan.md §1): latent 1024, unconditional.
OFFICIAL = {
    256: {"g": 52_518_210, "d": 7_402_258, "eh": 161_152, "eg": 19_663_264},
    128: {"g": 52_518_210, "d": 7_241_442, "eh": 161_152, "eg": 19_663_168},
}


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", [256, 128])
def test_parameter_counts_match_the_official_networks(size):
    with torch.device("meta"):  # shapes only, no memory
        nets = ht.build(size)
    assert {k: count(m) for k, m in nets.items()} == OFFICIAL[size]


@pytest.mark.parametrize("size", [256, 128, 64, 32])
def test_discriminators_end_at_one_voxel_at_every_size(size):
    with torch.device("meta"):
        nets = ht.build(size)
        slab = torch.empty(2, 1, size // 8, size, size)
        low = torch.empty(2, 1, size // 4, size // 4, size // 4)
        assert nets["d"].high(slab).shape == (2, 128, 1, 1, 1)
        assert nets["d"].low(low).shape == (2, 1, 1, 1, 1)
        assert nets["g"].trunk(torch.empty(2, 1024)).shape == (2, 64, *(3 * (size // 4,)))


def test_shapes_at_32_tiny():
    torch.manual_seed(0)
    b, w = 2, 0.125
    nets = ht.build(32, width=w)
    g, d = nets["g"], nets["d"]
    z = torch.randn(b, 1024)
    hyper = g.trunk(z)
    assert hyper.shape == (b, 64 * w, 8, 8, 8)
    assert g.low(hyper).shape == (b, 1, 8, 8, 8)
    slab, low = g(z, 8)
    assert slab.shape == (b, 1, 4, 32, 32) and low.shape == (b, 1, 8, 8, 8)
    # slab_index 8 → hypercube depth [2, 3) exactly (no offset). Not a crop of the full volume:
    # G^H's GroupNorm takes its statistics over whatever it is given, slab or whole hypercube.
    torch.testing.assert_close(g.high(hyper[:, :, 2:3]), slab)
    assert g.high(hyper).shape == (b, 1, 32, 32, 32)
    assert d.high(slab).shape == (b, 128 * w, 1, 1, 1)
    assert d.low(low).shape == (b, 1, 1, 1, 1)
    assert d(slab, low, 8).shape == (b,)
    assert nets["eh"](slab).shape == (b, 64 * w, 1, 8, 8)
    assert nets["eg"](hyper).shape == (b, 1024)
    assert ht.generate(nets, 1).shape == (1, 1, 32, 32, 32)


def test_conditional_discriminator_averages_class_logits():
    nets = ht.build(32, num_classes=3, width=0.125)
    slab, low = nets["g"](torch.randn(1, 1024 + 3), 0)  # batch 1 works (no squeeze)
    logit, cls = nets["d"](slab, low, 0)
    assert logit.shape == (1,) and cls.shape == (1, 3)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_one_iteration_trains_every_network(num_classes):
    torch.manual_seed(0)
    nets = ht.build(32, num_classes=num_classes, width=0.125)
    opts = ht.optimizers(nets)
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in nets.items()}
    real = torch.rand(2, 1, 32, 32, 32) * 2 - 1
    labels = torch.tensor([0, 2]) if num_classes else None
    losses = ht.iteration(nets, opts, real, 20, labels)
    assert set(losses) == {"d", "g", "eh", "eg"}
    assert all(math.isfinite(v) for v in losses.values())
    for k, m in nets.items():  # every parameter tensor of every network moved
        for p0, p in zip(before[k], m.parameters(), strict=True):
            assert not torch.equal(p0, p), k
        assert all(p.requires_grad for p in m.parameters())
    with pytest.raises(ValueError):
        ht.iteration(nets, opts, real, 2)  # not a multiple of 4
