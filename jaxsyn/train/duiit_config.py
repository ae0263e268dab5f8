"""DUIIT's training config and each setting's defaults (the paper's appendix A), read by the steps
and `run` (`jaxsyn.train.duiit`, which re-exports the names here) and by the CLI.

A setting's defaults: `setting_defaults("tl", sources=2, pet=False)`; a tiny config for tests and
smoke runs: `DUIITTrainConfig.tiny("joint")`.
"""

from __future__ import annotations

import dataclasses

from jaxsyn.errors import ConfigError
from jaxsyn.models import cyclegan
from jaxsyn.models import duiit as model

# the settings that train on source cohorts, and those that train in two phases (first_phase)
NEEDS_SOURCES = ("joint", "cyclegan", "tl", "mtl", "dann")
TWO_PHASES = ("cyclegan", "tl")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DUIITTrainConfig:
    """`jaxsyn train duiit --target DIR --source DIR --label age --out RUN --steps N`

    What determines a run's numbers (a resumed run must have the same). Defaults: the joint
    setting (appendix A.1, section 4.2); `setting_defaults` gives each baseline's.
    """

    model: model.DUIITConfig = dataclasses.field(default_factory=model.DUIITConfig)
    seed: int = 0  # data order, weights and every random draw of the run
    batch_size: int = 16  # A.1: batch 16 (per cohort: target and each source; split over devices)
    g_lr: float = 2e-4  # section 4.2 / A.1: translator lr 2e-4
    d_lr: float = 2e-4  # CycleGAN train_options: the discriminators' lr is the generators'
    b1: float = 0.5  # CycleGAN train_options: Adam beta1 0.5
    p_lr: float = 1e-3  # section 4.2 / A.1: predictor lr 1e-3 (Adam, betas 0.9, 0.999)
    weight_decay: float = 0.0  # A.1; A.7 (DANN) 1e-3, as torch Adam's (added to the gradient)
    # the run's length, which the lr decay and the phases are planned over; None: `run` sets it
    # to its `steps` (set it to stop a run early and resume it later with the same plan)
    steps: int | None = None
    first_phase: float = 0.5  # cyclegan and tl: share of the steps of the first phase

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"DUIITTrainConfig.batch_size is {self.batch_size}; expected >= 1")
        for name in ("g_lr", "d_lr", "p_lr", "steps"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"DUIITTrainConfig.{name} is {getattr(self, name)}; expected > 0")
        if self.weight_decay < 0:
            raise ConfigError(
                f"DUIITTrainConfig.weight_decay is {self.weight_decay}; expected >= 0"
            )
        if not 0 < self.first_phase < 1:
            raise ConfigError(
                f"DUIITTrainConfig.first_phase is {self.first_phase}; expected in (0, 1)"
            )

    @property
    def planned(self) -> int:
        """`steps`, which must be set by now."""
        if self.steps is None:
            raise ConfigError("DUIITTrainConfig.steps is None; expected the run's length")
        return self.steps

    @property
    def phase_steps(self) -> int:
        """Steps of the first phase (cyclegan with labels, tl); the rest is the second."""
        steps = self.planned
        return min(max(1, round(self.first_phase * steps)), steps - 1)

    @property
    def two_phases(self) -> bool:
        m = self.model
        return m.setting in TWO_PHASES and m.predict and self.planned > 1

    @classmethod
    def tiny(cls, setting: str = "joint", **overrides) -> DUIITTrainConfig:
        return setting_defaults(setting, tiny=True, **overrides)


def setting_defaults(
    setting: str = "joint", *, sources: int = 1, pet: bool = False, tiny: bool = False, **overrides
) -> DUIITTrainConfig:
    """A setting's config with the appendix's values (`pet`: the PET mixtures' tables); `tiny`
    at 16 px, widths 4-8, batch 4. `overrides` set fields of the train config; `model=` too."""
    if setting not in model.SETTINGS:
        raise ConfigError(f"setting is {setting!r}; expected one of {model.SETTINGS}")
    table = {**model.APPENDIX[setting], **(model.PET.get(setting, {}) if pet else {})}
    depth = table.pop("depth")
    mtl = {k: table.pop(k) for k in ("mtl_target_weight", "mtl_source_weight") if k in table}
    translator = cyclegan.CycleGANConfig.tiny() if tiny else cyclegan.CycleGANConfig()
    predictor = (model.PredictorConfig.tiny if tiny else model.PredictorConfig)(depth=depth)
    if tiny:
        predictor = dataclasses.replace(predictor, depth=18)
        table["batch_size"] = 4
    sources = sources if setting in NEEDS_SOURCES else 0
    m = model.DUIITConfig(setting=setting, sources=sources, translator=translator,
                          predictor=predictor, **mtl)  # fmt: skip
    return DUIITTrainConfig(**{"model": m, **table, **overrides})
