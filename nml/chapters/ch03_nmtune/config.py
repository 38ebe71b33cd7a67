"""The params section of this chapter (validated before anything runs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
)

from nml._infra.schema import NoiseRatio, NonNegativeFloat, PositiveFloat, PositiveInt, Section

TunerName = Literal["lp", "mlp", "nmtune"]


class TunerConfig(Section):
    """The MLP / NMTune head: a preset of ``nml.estimators.frozen.NMTUNE_PRESETS`` plus overrides (null = preset)."""

    preset: Literal["paper", "official"] = "official"
    epochs: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    lr: PositiveFloat | None = None
    weight_decay: NonNegativeFloat | None = None
    hidden_mult: PositiveFloat | None = None
    standardize: bool = Field(default=False, description="z-score features first (a deviation: the authors' head reads raw features)")

    def kwargs(self) -> dict:
        """Keyword arguments for ``MLPTuner`` / ``NMTune`` (unset keys fall back to the preset)."""
        return {k: v for k, v in self.model_dump().items() if v is not None and k != "preset"}


class ViewsConfig(Section):
    """Augmented views for the tuners that read two views per step (NMTune's official loop).

    The authors re-run the encoder on every batch with their train transform,
    ``RandomResizedCrop(scale=(0.8, 1.0))`` + horizontal flip; here each training image gets a
    bank of ``n`` augmented copies, extracted once, and every step draws two of them.
    """

    n: Annotated[int, Field(ge=2)] = Field(default=4, description="augmented views extracted per training image")
    scale: tuple[Annotated[float, Field(gt=0.0, le=1.0)], Annotated[float, Field(gt=0.0, le=1.0)]] = Field(
        default=(0.8, 1.0), description="RandomResizedCrop area range (the authors': 0.8-1.0)")
    flip: bool = Field(default=True, description="horizontal flip (the authors': true)")

    @field_validator("scale")
    @classmethod
    def _ordered(cls, scale: tuple[float, float]) -> tuple[float, float]:
        if scale[0] > scale[1]:
            raise ValueError(f"expected [low, high] with low <= high, got {list(scale)}")
        return scale

    @property
    def augment_id(self) -> str:
        return f"rrc{self.scale[0]:g}-{self.scale[1]:g}{'+flip' if self.flip else ''}"


class CheckpointSelection(Section):
    """Which chapter-01 checkpoints a section reads (null = every one 01 trained)."""

    tracks: list[Literal["supervised", "contrastive"]] = ["supervised", "contrastive"]
    noise_ratios: list[NoiseRatio] | None = None
    seeds: list[int] | None = None


class RealModelsConfig(Section):
    """Table 2 analog: published pre-trained encoders (``nml.models.image_encoders``) on the downstream tasks."""

    enabled: bool = True
    encoders: list[str] = Field(min_length=1)
    image_size: dict[str, PositiveInt] = Field(default_factory=dict, description="encoder -> input size (where settable)")
    seeds: list[int] = Field(min_length=1)
    max_train_per_class: PositiveInt | None = None
    max_test_per_class: PositiveInt | None = None
    ood_tests_per_pairing: PositiveInt | None = Field(default=None, description="first k test domains of each OOD pairing")
    tuner: TunerConfig | None = Field(default=None, description="null = nmtune.tuner")
    views: Annotated[int, Field(ge=2)] | None = Field(default=None, description=(
        "augmented views per training image for two-view tuners; null = nmtune.views.n"))


class AblationConfig(Section):
    """Tables 15/16 analog on the noisy checkpoints (ID tasks)."""

    enabled: bool = True
    checkpoints: CheckpointSelection
    heads: list[tuple[Annotated[int, Field(ge=1)], Literal["relu", "gelu", "none"]]] = Field(
        default=[(2, "relu"), (2, "none"), (3, "relu"), (4, "relu")], min_length=1,
        description="[depth, activation] of the NMTune head; the paper's Table 15 rows by default")
    loss_weights: list[tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat]] = Field(
        min_length=1, description="[consistency, covariance, dominant_sv] triples")


class NoisyDownstreamConfig(Section):
    """Fig. 15/16 analog: label noise in the downstream training split as well."""

    enabled: bool = True
    checkpoints: CheckpointSelection
    noise_kind: Literal["symmetric", "uniform"] = "symmetric"
    noise_ratios: list[NoiseRatio] = Field(min_length=1)
    methods: list[TunerName] = ["lp", "nmtune"]


class RuntimeConfig(Section):
    """Table 14 analog: tuners on cached features vs the encoder re-run on every batch."""

    enabled: bool = True
    task: str
    encoders: list[str] = Field(default=["checkpoint"], min_length=1,
                                description="'checkpoint' (01's clean supervised one) or encoder names")
    epochs: PositiveInt = 30
    max_train: PositiveInt | None = None
    augment: bool = True


class NMTuneSection(Section):
    """Notebook 03: LP vs MLP vs NMTune on frozen features."""

    methods: list[TunerName] = ["lp", "mlp", "nmtune"]
    tuner: TunerConfig = TunerConfig()
    views: ViewsConfig = ViewsConfig()
    checkpoints: CheckpointSelection = CheckpointSelection()
    n_jobs: PositiveInt = 1
    real_models: RealModelsConfig
    ablation: AblationConfig
    noisy_downstream: NoisyDownstreamConfig
    runtime: RuntimeConfig
