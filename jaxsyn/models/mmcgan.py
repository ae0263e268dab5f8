"""MMCGAN: one shared generator for CT volumes and clinical rows (Ziegler et al., NeurIPS 2022
workshop, "Multi-Modal Conditional GAN: Data Synthesis in the Medical Domain").

    [z (1024); conditions] --shared G (HA-GAN's G^A)--> hypercube h [B, S/4, S/4, S/4, 64]
        image heads   G^L(h) -> 64³ volume,  G^H(h slab) -> sub-volume (whole volume at inference)
        tabular head  Bottleneck(h) -> v [B, 128];  CTGAN G([v; z[:128]; continuous], cond_tab) -> row
    critics: HA-GAN's D^H + D^L (spectral norm), CTGAN's PacGAN critic (WGAN-GP)
    encoders: E^H (slab -> hypercube slab), E^G (hypercube -> [z; conditions])

No public code exists; this follows the paper and reuses jaxsyn's HA-GAN and CTGAN networks.
Choices the paper leaves open (its Figs. A.1/A.2 are not available), each a config field:
  * conditions: one categorical column (one-hot, e.g. bmi_class 0-3) and any continuous ones,
    fed to the shared generator exactly as HA-GAN's conditions are; D's class/regression heads
    predict them (HA-GAN's auxiliary losses). The tabular head receives the class as CTGAN's
    condition vector (the class column's one-hot span in the encoded row's layout), so with
    hard conditions the row's class column is exactly the condition, and the continuous values
    beside the bottleneck vector.
  * bottleneck: `bottleneck_channels` stride-2 4³ convolutions (GroupNorm, ReLU; HA-GAN's block)
    from the hypercube, a global mean over the remaining voxels and a dense layer to
    `bottleneck_dim` = CTGAN's noise size (128). At S = 256: 64³×64 -> 32³×64 -> 16³×128 ->
    8³×128 -> mean -> 128.
  * row noise (ours; `row_noise`, 0 = the bottleneck alone): the tabular head also gets the first
    `row_noise` entries of the patient's z, the noise CTGAN's generator is built around. The
    bottleneck alone carries almost no per-patient variation: GroupNorm normalises each
    example's features, so their mean over the voxels is nearly the same for every patient,
    and a CTGAN generator without noise maps each class to one row (issue 22: 8 identical
    rows for one class, at the real cohort's extreme values). A slice of the same z keeps a
    patient's row and image one draw (and imputation reads it back from E^G's ẑ).
  * E^G ends in latent_dim + num_classes + num_continuous outputs: [ẑ; class logits; continuous];
    generation from an encoding feeds softmax(class logits) as the one-hot condition.
  * tabular auxiliary classifier (`lambda_row_class`; 0 = none, as runs from before the field):
    the paper's §2.4 adds "an auxiliary classifier ... to the discriminator" (AC-GAN). HA-GAN's
    D^H/D^L have theirs; the tabular critic gets one too, `RowClassifier`: an MLP beside the
    critic, in the tabular discriminator's parameters, that predicts the class from a row whose
    named condition columns are hidden (with hard conditions a fake's class column is the
    condition itself, so only the rest of the row can tell). It learns on real rows; the
    generator's loss adds `lambda_row_class` x its cross-entropy on fakes, so a class-k row must
    look like class k in its other columns (issue 22: BMI inside the class's range). Without it
    the critic, which sees [row; condition] as CTGAN's, was measured blind to the class in
    practice: after 400 steps a real row scored the same whatever class it was labelled with,
    up to a per-class offset, so nothing taught the generator BMI given the class. With it the
    class means come out ordered, but AC-GAN's push away from class boundaries sends the edge
    classes to the ends of the real range (the decoder clips there), so it is off by default
    (figures: tests/train/test_mmcgan_rows.py).
  * tabular projection critic (ours; `row_projection`, 0 = none, as runs from before the field):
    Miyato & Koyama's (2018) projection discriminator on CTGAN's critic. The critic's score of a
    row x under class y is CTGAN's plus row_projection x <embed(y), phi(x)>, phi an MLP of the
    critic's widths (LeakyReLU, no dropout) on the row with its named condition columns hidden,
    embed a [num_classes, width] table (`RowProjection`, under ROW_PROJECTION in the tabular
    discriminator's parameters, learning with the critic). `critic_score` is that critic, used
    for real rows, fakes, the gradient penalty's interpolates and the generator's term. It does
    make the critic use the class (the class-by-label score matrix of real rows gains a
    diagonal, +0.1 to +0.4 where CTGAN's critic gives 0.00), but the rows do not follow: at 400
    and 800 steps of the rows test's command some class still has almost no row in range and
    whole classes sit on the clip (figures: tests/train/test_mmcgan_rows.py), so it is off.
  * pac: the paper does not say; CTGAN's 10 would need 10 patients per device in a 3D batch, so
    the default is 1 (a plain WGAN-GP critic on single rows).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsyn.errors import ConfigError
from jaxsyn.models import ctgan, hagan
from jaxsyn.models.ctgan import CTGANConfig
from jaxsyn.models.hagan import EncoderGlobal, Generator, HAGANConfig
from jaxsyn.nn.dense import TorchDense, torch_uniform
from jaxsyn.nn.layers import ConvGNReLU

# The HA-GAN generator's parameters that form the shared generator (G^A); the rest are the heads.
SHARED_PREFIXES = ("fc", "trunk_")
# The keys of the tabular auxiliary classifier's and of the projection term's parameters inside
# the tabular discriminator's (beside CTGAN's critic).
ROW_CLASSIFIER = "row_classifier"
ROW_PROJECTION = "row_projection"


@dataclasses.dataclass(frozen=True, kw_only=True)
class MMCGANConfig:
    """Networks of an MMCGAN. `image` sets the HA-GAN architecture (its optimiser fields are not
    used: MMCGAN's optimisers are `jaxsyn.train.mmcgan.MMCGANTrainConfig`'s); `table` is bound to
    the clinical table's encoded layout when a run starts (`bind`)."""

    image: HAGANConfig = dataclasses.field(
        default_factory=lambda: HAGANConfig(num_classes=4)  # bmi_class 0-3 (the paper's Fig. 4)
    )
    table: CTGANConfig = dataclasses.field(default_factory=lambda: CTGANConfig(pac=1))
    bottleneck_channels: tuple[int, ...] = (64, 128, 128)  # ours (module docstring)
    bottleneck_dim: int = 128  # = CTGAN's embedding_dim (ctgan.py CTGAN(embedding_dim=128))
    row_noise: int = 128  # ours (module docstring): CTGAN's embedding_dim entries of z; 0 = off
    # weight of the tabular auxiliary classifier's loss in the generator's (module docstring;
    # paper §2.4's auxiliary classifier; 0.1, HA-GAN's image lambda_class, measured best of
    # 0.1 / 0.3 / 1); 0 = no classifier: the default (and runs from before it), as it was not
    # measured clearly better (issue 22; tests/train/test_mmcgan_rows.py)
    lambda_row_class: float = 0.0
    # weight of the tabular critic's projection term (module docstring; Miyato & Koyama 2018's
    # projection discriminator, ours on CTGAN's critic); 0 = none: the default (and runs from
    # before it)
    row_projection: float = 0.0
    # fields added after runs were saved without them: the value that trains as those runs did
    # (jaxsyn.checkpoint.added_fields; a class attribute, not a field)
    ADDED_FIELDS = {"row_noise": 0, "lambda_row_class": 0.0, "row_projection": 0.0}

    def __post_init__(self):
        object.__setattr__(self, "bottleneck_channels", tuple(self.bottleneck_channels))
        cube = self.image.size // 4
        if 2 ** len(self.bottleneck_channels) > cube:
            raise ConfigError(
                f"MMCGANConfig.bottleneck_channels has {len(self.bottleneck_channels)} stride-2 layers; "
                f"expected at most {cube.bit_length() - 1} for a {cube}³ hypercube"
            )
        if any(c % self.image.groups for c in self.bottleneck_channels):
            raise ConfigError(
                f"MMCGANConfig.bottleneck_channels {self.bottleneck_channels}: each must divide into {self.image.groups} groups"
            )
        if not 0 <= self.row_noise <= self.image.latent_dim:
            raise ConfigError(
                f"MMCGANConfig.row_noise is {self.row_noise}; expected 0..{self.image.latent_dim} (entries of z)"
            )
        if self.lambda_row_class < 0:
            raise ConfigError(
                f"MMCGANConfig.lambda_row_class is {self.lambda_row_class}; expected >= 0 (0 = no row classifier)"
            )
        if self.row_projection < 0:
            raise ConfigError(
                f"MMCGANConfig.row_projection is {self.row_projection}; expected >= 0 (0 = no projection term)"
            )
        want = self.bottleneck_dim + self.row_noise + self.image.num_continuous
        if self.table.embedding_dim != want:  # CTGAN's noise slot holds [v; z; continuous]
            object.__setattr__(self, "table", dataclasses.replace(self.table, embedding_dim=want))

    @property
    def cond_dim(self) -> int:
        return self.image.cond_dim

    @property
    def row_classifier(self) -> bool:
        """Whether the tabular discriminator has an auxiliary classifier (a class condition and
        a positive `lambda_row_class`)."""
        return self.lambda_row_class > 0 and self.image.num_classes > 0

    @property
    def projection(self) -> bool:
        """Whether the tabular critic has a projection term (a class condition and a positive
        `row_projection`)."""
        return self.row_projection > 0 and self.image.num_classes > 0

    def bind(self, layout: Any) -> MMCGANConfig:
        return dataclasses.replace(self, table=self.table.bind(layout))

    @classmethod
    def tiny(cls, **overrides) -> MMCGANConfig:
        """32³ volumes, widths of 8, a 32-wide tabular head: seconds per step on a CPU."""
        defaults = dict(
            image=HAGANConfig.tiny(num_classes=4),
            table=CTGANConfig(pac=1, generator_dim=(32, 32), discriminator_dim=(32, 32)),
            bottleneck_channels=(8, 8),
            bottleneck_dim=16,
            row_noise=16,  # all of tiny's z
        )
        return cls(**{**defaults, **overrides})


class Bottleneck(nn.Module):
    """Hypercube [B, n, n, n, C] -> [B, bottleneck_dim] (the tabular head's input)."""

    config: MMCGANConfig

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        c = self.config
        dt = c.image.compute_dtype
        x = h.astype(dt)
        for w in c.bottleneck_channels:
            x = ConvGNReLU(w, 4, 2, 1, c.image.groups, dt)(x)
        x = x.astype(jnp.float32).mean(axis=(1, 2, 3))
        return nn.Dense(c.bottleneck_dim)(x)


class RowClassifier(nn.Module):
    """Encoded rows [B, data_dim] (named columns hidden: `hide_named`) -> class logits
    [B, num_classes]: the critic's widths and LeakyReLU, no dropout (module docstring)."""

    config: MMCGANConfig

    @nn.compact
    def __call__(self, rows: jax.Array) -> jax.Array:
        t = self.config.table
        h = rows.astype(jnp.float32)
        for width in t.discriminator_dim:
            h = nn.leaky_relu(TorchDense(width)(h), t.negative_slope)
        return TorchDense(self.config.image.num_classes)(h)


class RowProjection(nn.Module):
    """The projection term <embed(y), phi(x)> [B] of encoded rows x [B, data_dim] (named columns
    hidden: `hide_named`) under class labels y [B]: phi the critic's widths and LeakyReLU, no
    dropout; embed [num_classes, last width], initialised as a PyTorch Linear's weights."""

    config: MMCGANConfig

    @nn.compact
    def __call__(self, rows: jax.Array, labels: jax.Array) -> jax.Array:
        t = self.config.table
        h = rows.astype(jnp.float32)
        for width in t.discriminator_dim:
            h = nn.leaky_relu(TorchDense(width)(h), t.negative_slope)
        shape = (self.config.image.num_classes, h.shape[-1])
        embed = self.param("embed", torch_uniform(h.shape[-1]), shape)
        return jnp.sum(embed[labels] * h, axis=-1)


def hide_named(rows: jax.Array, tab_cond: jax.Array, table: CTGANConfig) -> jax.Array:
    """Rows [B, data_dim] with the span of every discrete column that its condition vector
    [B, cond_dim] names set to 0 (condition slots follow `table.discrete`, as CTGAN's)."""
    keep = jnp.ones(rows.shape, jnp.float32)
    at = 0
    for i in table.discrete:
        start, width, _ = table.spans[i]
        named = tab_cond[:, at : at + width].sum(-1, keepdims=True) > 0
        keep = keep.at[:, start : start + width].set(jnp.where(named, 0.0, 1.0))
        at += width
    return rows * keep


def critic_params(tab_d: dict) -> dict:
    """The tabular discriminator's parameters without its auxiliary classifier and projection
    term: CTGAN's critic."""
    return {k: v for k, v in tab_d.items() if k not in (ROW_CLASSIFIER, ROW_PROJECTION)}


def critic_score(
    tab_d: dict, x: jax.Array, labels: jax.Array, keys: jax.Array | None, config: MMCGANConfig
) -> jax.Array:
    """The tabular critic's scores [B / pac] of inputs x = [row; condition] [B, data_dim +
    cond_dim] of class labels [B] (dropout keys [B / pac] or None): CTGAN's score, plus
    `row_projection` x the projection term of the row (named columns hidden) when the config has
    one, summed over each pac group. The signature `tab_train.d_loss` takes for its critic, so
    the gradient penalty's interpolates are scored by all of it."""
    t = config.table
    score = ctgan.Discriminator(t).apply({"params": critic_params(tab_d)}, x, keys)
    if not config.projection:
        return score
    rows = hide_named(x[:, : t.data_dim], x[:, t.data_dim :], t)
    term = RowProjection(config).apply({"params": tab_d[ROW_PROJECTION]}, rows, labels)
    return score + config.row_projection * term.reshape(-1, t.pac).sum(-1)


def row_class_logits(
    tab_d: dict, rows: jax.Array, tab_cond: jax.Array, config: MMCGANConfig
) -> jax.Array:
    """The auxiliary classifier's logits [B, num_classes] for encoded rows [B, data_dim] under
    their tabular conditions [B, cond_dim] (the columns these name are hidden from it)."""
    x = hide_named(rows, tab_cond, config.table)
    return RowClassifier(config).apply({"params": tab_d[ROW_CLASSIFIER]}, x)


def encoder_config(config: MMCGANConfig) -> HAGANConfig:
    """E^G's config: HA-GAN's, with room for the conditions after z in its output."""
    return dataclasses.replace(config.image, latent_dim=config.image.latent_dim + config.cond_dim)


def split_generator(g_params: dict) -> tuple[dict, dict]:
    """HA-GAN generator parameters -> (shared G^A, image heads G^L + G^H)."""
    shared = {k: v for k, v in g_params.items() if k.startswith(SHARED_PREFIXES)}
    heads = {k: v for k, v in g_params.items() if not k.startswith(SHARED_PREFIXES)}
    return shared, heads


@functools.partial(jax.jit, static_argnames="config")
def init(key: jax.Array, config: MMCGANConfig) -> dict[str, Any]:
    """{component: params}, plus "spectral" (D's vectors) and "batch_stats" (the tabular
    generator's running statistics). Components: shared, image_g, image_d, eh, eg, bottleneck,
    tab_g, tab_d (CTGAN's critic, and under ROW_CLASSIFIER the auxiliary classifier and under
    ROW_PROJECTION the projection term when the config has them). Compiled once per config, as `hagan.init`."""
    k_img, k_eg, k_b, k_tab = jax.random.split(key, 4)
    image = hagan.init(k_img, config.image)
    shared, heads = split_generator(image["g"]["params"])
    cube = config.image.size // 4
    h = jnp.zeros((1, cube, cube, cube, config.image.hypercube_channels))
    eg = EncoderGlobal(encoder_config(config)).init(k_eg, h)["params"]
    tab = ctgan.init(k_tab, config.table)
    tab_d = tab["d"]
    if config.row_classifier:  # its own key: the other components' draws stay as without it
        rows = jnp.zeros((1, config.table.data_dim))
        k_c = jax.random.fold_in(k_tab, 1)
        tab_d = {**tab_d, ROW_CLASSIFIER: RowClassifier(config).init(k_c, rows)["params"]}
    if config.projection:  # its own key too
        rows, labels = jnp.zeros((1, config.table.data_dim)), jnp.zeros((1,), jnp.int32)
        k_p = jax.random.fold_in(k_tab, 2)
        tab_d = {**tab_d, ROW_PROJECTION: RowProjection(config).init(k_p, rows, labels)["params"]}
    return {
        "params": {
            "shared": shared,
            "image_g": heads,
            "image_d": image["d"]["params"],
            "eh": image["eh"]["params"],
            "eg": eg,
            "bottleneck": Bottleneck(config).init(k_b, h)["params"],
            "tab_g": tab["g"],
            "tab_d": tab_d,
        },
        "spectral": image["d"]["spectral"],
        "batch_stats": ctgan.init_stats(config.table),
    }


def generator_params(params: dict) -> dict:
    """The HA-GAN generator's parameter tree (shared + image heads) from MMCGAN's components."""
    return {**params["shared"], **params["image_g"]}


def hypercube(params: dict, zc: jax.Array, config: MMCGANConfig) -> jax.Array:
    return Generator(config.image).apply(
        {"params": generator_params(params)}, zc, method=Generator.hypercube
    )


def table_logits(
    params: dict,
    h: jax.Array,
    z: jax.Array,
    continuous: jax.Array,
    tab_cond: jax.Array,
    config: MMCGANConfig,
    *,
    stats: Any = None,
    update: bool = False,
    axis_name: str | None = None,
):
    """The tabular head's raw CTGAN logits [B, data_dim] for hypercubes `h` made from noise `z`
    [B, latent_dim] (its first `row_noise` entries feed the head); with `stats` and `update`,
    also the updated BatchNorm running statistics (as `ctgan.apply_generator`)."""
    v = Bottleneck(config).apply({"params": params["bottleneck"]}, h)
    noise = z[:, : config.row_noise].astype(jnp.float32)
    zt = jnp.concatenate([v, noise, continuous.astype(jnp.float32)], axis=-1)
    return ctgan.apply_generator(
        params["tab_g"], zt, tab_cond, config.table, axis_name, stats=stats, update=update
    )


def encode(params: dict, volume: jax.Array, config: MMCGANConfig) -> jax.Array:
    """Whole volumes [B, S, S, S, 1] in [-1, 1] -> E^G's output [B, L + N + M] (E^H as in
    training: `hagan.encode_high`); `split_encoding` names its parts."""
    h = hagan.encode_high({"params": params["eh"]}, volume, config.image)
    return encode_hypercube(params, h, config)


def encode_hypercube(params: dict, h: jax.Array, config: MMCGANConfig) -> jax.Array:
    return EncoderGlobal(encoder_config(config)).apply({"params": params["eg"]}, h)


def split_encoding(out: jax.Array, config: MMCGANConfig):
    """E^G's output -> (ẑ [B, L], class logits [B, N], continuous [B, M])."""
    latent, n = config.image.latent_dim, config.image.num_classes
    return out[:, :latent], out[:, latent : latent + n], out[:, latent + n :]


def encoded_zc(out: jax.Array, config: MMCGANConfig) -> jax.Array:
    """[ẑ; softmax(class logits); continuous]: the shared generator's input from an encoding."""
    z, logits, cont = split_encoding(out, config)
    return jnp.concatenate([z, jax.nn.softmax(logits, axis=-1), cont], axis=-1)
