"""The params section of this chapter (validated before anything runs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
)

from nml._infra.schema import NonNegativeFloat, PositiveFloat, PositiveInt, Section


class ProbeConfig(Section):
    """Linear probing on frozen features (NMTune App. A.2: AdamW, cosine, 30 epochs)."""

    epochs: PositiveInt = 30
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 0.01
    weight_decay: NonNegativeFloat = 1e-4
    standardize: bool = Field(default=False, description="z-score features with training statistics (a deviation: the authors' probe reads raw features)")


class OODPairing(Section):
    """Train a linear probe on ``train``, test it on each of ``test``."""

    name: str
    train: str
    test: list[str] = Field(min_length=1)
    family: str | None = Field(default=None, description=(
        "dataset family for OOD averages (each family weighs once); null = the pairing's name"))

    @property
    def family_name(self) -> str:
        return self.family or self.name


class SpectralSection(Section):
    """Notebook 02: linear probing ID / OOD and the feature spectrum of every checkpoint."""

    id_tasks: list[str] = Field(min_length=1)
    ood: list[OODPairing] = Field(min_length=1)
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.3
    max_per_class: PositiveInt | None = None
    heldout_train: PositiveInt = 2000
    heldout_test: PositiveInt = 2000
    corruption_severity: Annotated[int, Field(ge=1, le=5)] = 3
    split_seed: int = 0
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(default=0.15, description=(
        "share of each downstream training split held out for validation (every choice is made on it)"))
    probe: ProbeConfig = ProbeConfig()
    spectrum_variant: Literal["authors", "raw", "centered"] = Field(default="authors", description=(
        "how features are prepared before the SVD (nml.metrics.singular_values); 'authors' = their analysis code"))
    claims_variants: list[Literal["authors", "raw", "centered"]] = Field(default=["authors", "raw"], min_length=1,
                                                                       description="spectrum variants C3a-C3c are judged under")
    spectrum_edges: tuple[PositiveInt, PositiveInt] = (20, 500)
    feature_batch_size: PositiveInt = 512

    @field_validator("spectrum_edges")
    @classmethod
    def _edges_increase(cls, edges: tuple[int, int]) -> tuple[int, int]:
        if edges[0] >= edges[1]:
            raise ValueError(f"expected two increasing indices [top, middle_end], got {list(edges)}")
        return edges
