"""MMCGAN's training config (the paper's Table 1 but the tabular head's rates), read by the step
(`train.mmcgan`) and the records (`train.mmcgan_data`); `jaxsyn.train.mmcgan.MMCGANTrainConfig`
is the same class."""

from __future__ import annotations

import dataclasses

from jaxsyn.checkpoint import ANY
from jaxsyn.data.tabular import TransformerConfig
from jaxsyn.errors import ConfigError
from jaxsyn.models.mmcgan import MMCGANConfig
from jaxsyn.train import ctgan as tab_train


@dataclasses.dataclass(frozen=True, kw_only=True)
class MMCGANTrainConfig:
    """What determines a run's numbers (checked on resume). Defaults: the paper's Table 1, but
    the tabular head's learning rates and `centre_rows` (ours, issue 22; see train.mmcgan)."""

    model: MMCGANConfig = dataclasses.field(default_factory=MMCGANConfig)
    transformer: TransformerConfig = dataclasses.field(default_factory=TransformerConfig)
    seed: int = 0
    class_column: str | None = "bmi_class"  # one-hot condition (paper: BMI class 0-3)
    continuous_columns: tuple[str, ...] = ()
    batch_size: int = 4  # records per step; the paper does not say (HA-GAN's reference: 4)
    lr_shared: float = 1e-4  # Table 1: shared generator 1e-4, betas (0, 0.999)
    betas_shared: tuple[float, float] = (0.0, 0.999)
    lr_image_g: float = 1e-4  # Table 1: image generators
    betas_image_g: tuple[float, float] = (0.0, 0.999)
    lr_image_d: float = 4e-4  # Table 1: image discriminators
    betas_image_d: tuple[float, float] = (0.0, 0.999)
    # the tabular head's rates are ours (issue 22; Table 1: G 2e-4, D 2e-4, bottleneck 2e-4): a
    # critic 20x as fast as the generator (TTUR) keeps the rows' BMI from drifting +-5 over the
    # run (module docstring of train.mmcgan)
    lr_tab_g: float = 1e-4
    betas_tab_g: tuple[float, float] = (0.5, 0.9)
    lr_tab_d: float = 2e-3
    betas_tab_d: tuple[float, float] = (0.5, 0.9)
    # the tabular discriminator's auxiliary row classifier (model.lambda_row_class > 0), not in
    # Table 1: a supervised classifier of real rows, faster than the critic (train.mmcgan)
    lr_row_class: float = 2e-3
    lr_bottleneck: float = 1e-4
    betas_bottleneck: tuple[float, float] = (0.5, 0.9)
    lr_encoders: float = 1e-4  # not in Table 1: HA-GAN's train.py
    betas_encoders: tuple[float, float] = (0.0, 0.999)
    tab_decay: float = 1e-6  # CTGAN's coupled L2 (generator_decay, discriminator_decay)
    gp_lambda: float = 10.0  # CTGAN's gradient penalty
    image_every: int = 5  # paper §2.5: image heads updated every 5th iteration
    image_d_every: int = 5  # not in the paper: see the module docstring
    # ours (issue 22): rows per step the tabular head also learns from, drawn uniformly from the
    # patient table beyond the batch's own (0 = the paper's one row per volume; see train.mmcgan)
    extra_rows: int = 0
    # ours (issue 22): the table's numeric columns are encoded relative to their class_column
    # class's mean (`TransformerConfig.centre_by`), so rows of a class start at its BMI; False =
    # the paper's (CTGAN's) encoding
    centre_rows: bool = True
    read_threads: int = 4
    # fields added after runs were saved without them: the value that trains as those runs did
    # (jaxsyn.checkpoint.added_fields; lr_row_class acts only with the row classifier)
    ADDED_FIELDS = {"extra_rows": 0, "lr_row_class": ANY, "centre_rows": False}

    def __post_init__(self):
        for name in ("betas_shared", "betas_image_g", "betas_image_d", "betas_tab_g",
                     "betas_tab_d", "betas_bottleneck", "betas_encoders"):  # fmt: skip
            object.__setattr__(self, name, tuple(float(b) for b in getattr(self, name)))
        object.__setattr__(self, "continuous_columns", tuple(self.continuous_columns))
        image = self.model.image
        if bool(self.class_column) != bool(image.num_classes):
            raise ConfigError(
                f"class_column is {self.class_column!r} and model.image.num_classes {image.num_classes}; expected both set or neither"
            )
        if len(self.continuous_columns) != image.num_continuous:
            raise ConfigError(
                f"continuous_columns has {len(self.continuous_columns)} names, model.image.num_continuous is {image.num_continuous}; expected equal"
            )
        for name in ("image_every", "image_d_every", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"MMCGANTrainConfig.{name} is {getattr(self, name)}; expected >= 1"
                )
        if self.extra_rows < 0 or self.extra_rows % self.model.table.pac:
            raise ConfigError(
                f"MMCGANTrainConfig.extra_rows is {self.extra_rows}; expected 0 or a positive multiple of model.table.pac ({self.model.table.pac})"
            )

    @property
    def condition_columns(self) -> tuple[str, ...]:
        return ((self.class_column,) if self.class_column else ()) + self.continuous_columns

    @property
    def tabular(self) -> tab_train.CTGANTrainConfig:
        """The tabular head's critic settings in CTGAN's terms (for its loss functions)."""
        t = self.model.table
        return tab_train.CTGANTrainConfig(model=t, batch_size=t.pac, gp_lambda=self.gp_lambda)

    @classmethod
    def tiny(cls, **overrides) -> MMCGANTrainConfig:
        return cls(**{"model": MMCGANConfig.tiny(), "batch_size": 2, **overrides})
