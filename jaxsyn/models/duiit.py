"""DUIIT's predictor (Wang, Xie et al., ICLR 2021 submission): a ResNet regressor of one scalar
label (physiological age, MSE), its multi-task heads, DANN's domain classifier and gradient
reversal, and the joint model's config with each setting's defaults from the paper's appendix A.

`jaxsyn train duiit --target phantom:head-ct:64 --source phantom:head-mri:256 --label age
--out runs/duiit --steps 2000`

Predictor: ResNet-18 (basic blocks 2-2-2-2) or ResNet-50 (bottlenecks 3-4-6-3) of He et al.
2016, a 7x7/2 stem and 3x3/2 max pool, global average pooling, then one linear output per head
(head 0 is the target modality's; MTL adds one per source). One input channel. Deviation: group
norm (32 groups, fewer below 64 channels; Wu & He 2018) instead of batch norm, so a prediction does not depend
on the batch or on running statistics, and 8 devices compute what 1 does.
Domain classifier (DANN, Ganin & Lempitsky 2015, section 5.2.2's 1024-1024 MLP): the pooled
features through `reverse_gradient` (forward identity, backward -factor x cotangent), two
hidden ReLU layers, logits over the domains (target, then each source).
Precision: `dtype` is the convolutions' compute dtype; parameters, group-norm statistics, the
pooled features, the heads and the domain classifier stay float32. Memory (ours): `remat`
checkpoints the stem and each residual block under its stage's `jaxsyn.nn.remat` policy.

The translator lives in `jaxsyn.models.cyclegan`; the losses and steps in `jaxsyn.train.duiit`.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsyn.errors import ConfigError
from jaxsyn.models.cyclegan import CycleGANConfig
from jaxsyn.nn.remat import checkpointed, field_error, per_stage, remat

SETTINGS = ("joint", "pure", "cyclegan", "tl", "mtl", "dann", "augment", "autoaugment", "erasing")
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3))}  # He et al. table 1


@jax.custom_vjp
def _scale(x, factor):
    return x


def _scale_fwd(x, factor):
    return x, factor


def _scale_bwd(factor, g):
    return jax.tree.map(lambda t: t * factor.astype(t.dtype), g), jnp.zeros_like(factor)


_scale.defvjp(_scale_fwd, _scale_bwd)


def scale_gradient(x, factor):
    """Identity forward; the backward pass multiplies the cotangent by `factor` (a number or a
    traced scalar, e.g. a schedule's value; it gets no gradient itself)."""
    return _scale(x, jnp.asarray(factor, jnp.float32))


def reverse_gradient(x, factor: float = 1.0):
    """DANN's gradient reversal layer: identity forward, -factor x cotangent backward."""
    return scale_gradient(x, -factor)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PredictorConfig:
    """ResNet regressor; defaults: the paper's section 4.2 (ResNet-50) and He et al. 2016."""

    depth: int = 50  # section 4.2: ResNet-50 backbone (appendix A.4/A.5: ResNet-18 with PET)
    width: int = 64  # He et al.: 64 channels after the stem
    channels: int = 1  # grey images
    heads: int = 1  # outputs: 1, or 1 + sources for MTL (head 0 = target)
    domains: int = 0  # DANN: domains the classifier tells apart (0 = no domain classifier)
    domain_hidden: int = 1024  # DANN section 5.2.2: 1024-1024 domain classifier
    dtype: str = "float32"  # compute dtype; params and norm statistics stay float32
    # Ours (memory, not numbers): activation checkpointing, one jaxsyn.nn.remat policy ("none",
    # "nothing_saveable", "dots_saveable") for the whole network or one per stage: the stem (7x7
    # convolution and max pool), then He et al.'s conv2_x .. conv5_x (each block checkpointed on
    # its own). Same parameters and values.
    remat: str | tuple[str, ...] = "none"

    def __post_init__(self):
        if self.depth not in DEPTHS:
            raise ConfigError(f"PredictorConfig.depth is {self.depth}; expected 18 or 50")
        for name in ("width", "channels", "heads", "domain_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"PredictorConfig.{name} is {getattr(self, name)}; expected >= 1")
        if self.domains == 1 or self.domains < 0:
            raise ConfigError(f"PredictorConfig.domains is {self.domains}; expected 0 or >= 2")
        if self.dtype not in ("float32", "bfloat16"):  # no float16: DUIIT has no loss scaling
            raise ConfigError(
                f"PredictorConfig.dtype is {self.dtype!r}; expected float32 or bfloat16"
            )
        if error := field_error(self, 5, "the stem, then each of the 4 stages"):
            raise ConfigError(error)

    @property
    def remat_stages(self) -> tuple[str, ...] | None:
        """`remat` as one policy per stage: stem, conv2_x .. conv5_x (None: invalid)."""
        return per_stage(self.remat, 5)

    @classmethod
    def tiny(cls, **overrides) -> PredictorConfig:
        fields = dict(depth=18, width=4, domain_hidden=8)
        return cls(**{**fields, **overrides})


def group_norm(x: jax.Array, name: str) -> jax.Array:
    """Wu & He's 32 groups, fewer where there are fewer than 64 channels: at least 2 channels a
    group, so a 1 x 1 map (small images' last stage) is not normalised to 0."""
    c = x.shape[-1]
    groups = max(1, min(math.gcd(32, c), c // 2))
    return nn.GroupNorm(num_groups=groups, dtype=jnp.float32, name=name)(x).astype(x.dtype)


class Block(nn.Module):
    """A residual block: basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1 x4), projection shortcut
    where the shape changes (He et al. option B)."""

    features: int
    stride: int
    kind: str
    dtype: str

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
        s = (self.stride, self.stride)
        if self.kind == "basic":
            out_features = self.features
            h = nn.relu(group_norm(conv(self.features, (3, 3), s)(x), "norm1"))
            h = group_norm(conv(self.features, (3, 3))(h), "norm2")
        else:
            out_features = self.features * 4
            h = nn.relu(group_norm(conv(self.features, (1, 1))(x), "norm1"))
            h = nn.relu(group_norm(conv(self.features, (3, 3), s)(h), "norm2"))
            h = group_norm(conv(out_features, (1, 1))(h), "norm3")
        if x.shape[-1] != out_features or self.stride != 1:
            x = group_norm(conv(out_features, (1, 1), s, name="proj")(x), "proj_norm")
        return nn.relu(x + h)


def _stem(module, x):
    """7x7/2 convolution (Conv_0), group norm, ReLU, 3x3/2 max pool."""
    c = module.config
    h = nn.Conv(c.width, (7, 7), (2, 2), use_bias=False, dtype=c.dtype, name="Conv_0")(x)
    h = nn.relu(group_norm(h, "stem_norm"))
    return nn.max_pool(h, (3, 3), (2, 2), padding=((1, 1), (1, 1)))


class Predictor(nn.Module):
    """images [B, S, S, C] -> (features [B, F] float32, outputs [B, heads] float32, domain logits
    [B, domains] float32 or None). `reverse` is the gradient reversal factor before the domain
    classifier. Named as flax names the layers inline (Conv_0, Block_0 ..): the tree of
    checkpoints saved before `remat` existed."""

    config: PredictorConfig

    @nn.compact
    def __call__(self, x, reverse: float = 1.0):
        c = self.config
        kind, stages = DEPTHS[c.depth]
        policies = c.remat_stages
        h = checkpointed(_stem, policies[0])(self, x.astype(c.dtype))
        index = 0
        for i, n in enumerate(stages):
            block = remat(Block, policies[1 + i])
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                h = block(c.width * 2**i, stride, kind, c.dtype, name=f"Block_{index}")(h)
                index += 1
        features = h.astype(jnp.float32).mean(axis=(1, 2))
        outputs = nn.Dense(c.heads, name="heads")(features)
        domain = None
        if c.domains:
            d = reverse_gradient(features, reverse)
            for k in range(2):
                d = nn.relu(nn.Dense(c.domain_hidden, name=f"domain{k}")(d))
            domain = nn.Dense(c.domains, name="domain_out")(d)
        return features, outputs, domain


def init(key: jax.Array, config: PredictorConfig, size: int) -> dict:
    """Predictor parameters for `size` x `size` images."""
    x = jnp.zeros((1, size, size, config.channels), jnp.float32)
    return Predictor(config).init(key, x)["params"]


def apply(params, images: jax.Array, config: PredictorConfig, reverse: float = 1.0):
    """(features [B, F], outputs [B, heads], domain logits [B, domains] | None)."""
    return Predictor(config).apply({"params": params}, images, reverse)


def predict(params, images: jax.Array, config: PredictorConfig) -> jax.Array:
    """The target head's output [B] (standardised label units; see DUIITConfig.label_*)."""
    return apply(params, images, config)[1][:, 0]


# The appendix's tables, by setting: (backbone depth, predictor lr, batch size, weight decay).
# (The PET mixtures: A.4/A.5/A.13 use ResNet-18, A.10-A.12 batch 32, A.11 lr 1e-4 without
# weight decay, A.12 MTL weights 0.1/0.9: `setting_defaults(..., pet=True)`.)
APPENDIX = {
    "joint": dict(depth=50, p_lr=1e-3, batch_size=16, weight_decay=0.0),  # A.1, section 4.2
    "pure": dict(depth=50, p_lr=1e-4, batch_size=64, weight_decay=0.0),  # A.2
    "cyclegan": dict(depth=50, p_lr=1e-4, batch_size=64, weight_decay=0.0),  # A.9
    "tl": dict(depth=50, p_lr=1e-4, batch_size=64, weight_decay=0.0),  # A.6
    "mtl": dict(depth=50, p_lr=1e-4, batch_size=32, weight_decay=0.0),  # A.8
    "dann": dict(depth=50, p_lr=1e-5, batch_size=64, weight_decay=1e-3),  # A.7
    "augment": dict(depth=50, p_lr=1e-3, batch_size=64, weight_decay=0.0),  # A.14
    "autoaugment": dict(depth=18, p_lr=1e-4, batch_size=32, weight_decay=0.0),  # A.15
    "erasing": dict(depth=18, p_lr=1e-4, batch_size=64, weight_decay=0.0),  # A.16
}
PET = {
    "joint": dict(depth=18),  # A.4, A.5
    "cyclegan": dict(depth=18),  # A.13
    "tl": dict(batch_size=32),  # A.10
    "mtl": dict(batch_size=32, mtl_target_weight=0.9, mtl_source_weight=0.1),  # A.12
    "dann": dict(p_lr=1e-4, batch_size=32, weight_decay=0.0),  # A.11
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DUIITConfig:
    """The joint model and its baselines: translators (one per source), predictor, weights.

    Defaults are the joint setting's (section 4.2, appendix A.1); `setting_defaults` gives
    each baseline's.
    """

    setting: str = "joint"  # one of SETTINGS
    sources: int = 1  # source modalities (one translator each); MIX-CT-MRI-PET has 2
    translator: CycleGANConfig = dataclasses.field(default_factory=CycleGANConfig)
    predictor: PredictorConfig = dataclasses.field(default_factory=PredictorConfig)
    lam: float = 1e-3  # section 4.2 / A.1: lambda of L = L_trans + lambda L_pred
    lam_cyc: float = 10.0  # section 4.2 / A.1: lambda_cyc
    # CycleGAN's identity loss weight, times lam_cyc (train_options lambda_identity 0.5); the
    # paper does not use it: 0
    lam_idt: float = 0.0
    mtl_target_weight: float = 0.95  # A.8: lambda_ct
    mtl_source_weight: float = 0.05  # A.8: lambda_mri (per source)
    dann_lambda: float = 1.0  # DANN: reversal factor's limit, ramped 2/(1+exp(-10p))-1
    predict: bool = True  # False: the cyclegan setting without labels (the translators alone)
    pool_size: int = 50  # CycleGAN (Shrivastava et al. 2017): 50 stored fakes per D
    label_mean: float = 0.0  # the predictor regresses (label - mean) / scale; set from the data
    label_scale: float = 1.0

    def __post_init__(self):
        if self.setting not in SETTINGS:
            raise ConfigError(
                f"DUIITConfig.setting is {self.setting!r}; expected one of {SETTINGS}"
            )
        if self.sources < 0:
            raise ConfigError(f"DUIITConfig.sources is {self.sources}; expected >= 0")
        for name in ("lam", "lam_cyc", "lam_idt", "mtl_target_weight", "mtl_source_weight",
                     "dann_lambda"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ConfigError(f"DUIITConfig.{name} is {getattr(self, name)}; expected >= 0")
        if self.pool_size < 0:
            raise ConfigError(f"DUIITConfig.pool_size is {self.pool_size}; expected >= 0")
        if self.label_scale <= 0:
            raise ConfigError(f"DUIITConfig.label_scale is {self.label_scale}; expected > 0")
        if not self.predict and self.setting != "cyclegan":
            raise ConfigError(
                f"DUIITConfig.predict is False for setting {self.setting!r}; expected True (only "
                "the cyclegan setting trains without labels)"
            )
        # the predictor's heads and domains follow the setting: MTL a head per modality, DANN
        # a domain per modality
        heads = 1 + self.sources if self.setting == "mtl" else 1
        domains = 1 + self.sources if self.setting == "dann" else 0
        if (self.predictor.heads, self.predictor.domains) != (heads, domains):
            predictor = dataclasses.replace(self.predictor, heads=heads, domains=domains)
            object.__setattr__(self, "predictor", predictor)
        if self.setting in ("joint", "cyclegan", "tl", "mtl", "dann") and self.sources < 1:
            raise ConfigError(
                f"DUIITConfig.sources is 0 for setting {self.setting!r}; expected >= 1 source "
                "modality"
            )
        if self.predictor.channels != self.translator.channels:
            raise ConfigError(
                f"DUIITConfig.predictor.channels is {self.predictor.channels} and "
                f"translator.channels {self.translator.channels}; expected equal"
            )

    @classmethod
    def from_json(cls, d: dict) -> DUIITConfig:
        """The config saved in a run's config.json ("model")."""
        fields = dict(d)
        fields["translator"] = CycleGANConfig(**fields["translator"])
        fields["predictor"] = PredictorConfig(**fields["predictor"])  # remat lists: tuples
        return cls(**fields)

    @property
    def size(self) -> int:
        return self.translator.size

    @property
    def has_translator(self) -> bool:
        return self.setting in ("joint", "cyclegan")
