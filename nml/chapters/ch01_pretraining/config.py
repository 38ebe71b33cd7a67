"""The params section of this chapter (validated before anything runs)."""

from __future__ import annotations

from pydantic import (
    Field,
    field_validator,
)

from nml._infra.schema import NoiseRatio, PositiveFloat, PositiveInt, Section
from nml._infra.training import OptimConfig


class SupervisedPretrainConfig(Section):
    """Track 1: supervised pre-training with symmetric label noise (flip to another class)."""

    enabled: bool = True
    noise_ratios: list[NoiseRatio] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    optim: OptimConfig


class ContrastivePretrainConfig(Section):
    """Track 2: CLIP-style pre-training of the image encoder against frozen text embeddings."""

    enabled: bool = True
    noise_ratios: list[NoiseRatio] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    dataset: str | None = Field(
        default=None,
        description="image-text pairs; null = the pre-training images with captions from class names",
    )
    n_train: PositiveInt | None = None
    text_encoder: str = "all-minilm-l6-v2"
    caption_templates: list[str] = Field(min_length=1)
    embed_dim: PositiveInt = 128
    temperature_init: PositiveFloat = 0.07
    optim: OptimConfig

    @field_validator("caption_templates")
    @classmethod
    def _templates_name_the_class(cls, templates: list[str]) -> list[str]:
        bad = [t for t in templates if "{label}" not in t]
        if bad:
            raise ValueError(f"every caption template must contain '{{label}}'; these do not: {bad}")
        return templates


class PretrainSection(Section):
    """Notebook 01: pre-training on noisy labels."""

    dataset: str
    model: str
    image_size: PositiveInt
    n_train: PositiveInt | None = None
    n_test: PositiveInt | None = None
    data_seed: int = 0
    augment: bool = True
    supervised: SupervisedPretrainConfig
    contrastive: ContrastivePretrainConfig

    def checkpoints(self) -> list[tuple[str, float, int]]:
        """Every (track, noise ratio, seed) notebook 01 trains and notebook 02 reads."""
        grid = []
        if self.supervised.enabled:
            grid += [("supervised", g, s) for g in self.supervised.noise_ratios for s in self.supervised.seeds]
        if self.contrastive.enabled:
            grid += [("contrastive", g, s) for g in self.contrastive.noise_ratios for s in self.contrastive.seeds]
        return grid
