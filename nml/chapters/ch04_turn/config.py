"""The params section of this chapter (validated before anything runs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    model_validator,
)

from nml._infra.schema import NoiseRatio, NonNegativeFloat, PositiveFloat, PositiveInt, Section
from nml._infra.training import OptimConfig

NoiseKind = Literal["symmetric", "uniform", "asymmetric", "instance"]
NOISY_LABEL_METHODS = ("ce-fft", "gce-fft", "elr-fft", "ce-lp", "gce-lp", "elr-lp", "dividemix-lp", "unicon-lp", "turn")
NoisyLabelMethod = Literal["ce-fft", "gce-fft", "elr-fft", "ce-lp", "gce-lp", "elr-lp", "dividemix-lp", "unicon-lp", "turn"]


class LabelNoise(Section):
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


class TurnBackbone(Section):
    """A pre-trained backbone of chapter 04 and, where it needs them, its own LP / FFT settings."""

    name: str = Field(description="'checkpoint' (01's clean supervised checkpoint), an nml encoder or a timm name")
    image_size: PositiveInt | None = Field(default=None, description="input size where the encoder's is settable")
    lp: OptimConfig | None = Field(default=None, description="null = turn.lp")
    fft: OptimConfig | None = Field(default=None, description="null = turn.fft")
    turn_lr: PositiveFloat | None = Field(default=None, description=(
        "TURN's FFT learning rate on this backbone (its head starts trained, not random: LP-FT practice "
        "is a smaller step); null = the fft lr"))


class TurnMethodConfig(Section):
    """TURN's own hyper-parameters (SPEC §2). Step 1 is the GCE-LP baseline: its epochs, batch
    size, optimiser, learning rate and q are ``turn.lp`` (or the backbone's ``lp``) and
    ``turn.gce_q``, so the two cannot drift apart."""

    epochs_fft: PositiveInt = 4
    tau: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.6


class ELRConfig(Section):
    lam: NonNegativeFloat = Field(default=3.0, description="weight of the ELR term (ELR paper: 3 for 10 classes, 7 for 100)")
    beta: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.7


class TwoNetworksConfig(Section):
    """DivideMix-LP and UNICON-LP: views, warm-up and semi-supervised weights."""

    views: Annotated[int, Field(ge=1)] = Field(default=4, description="feature views per sample: 1 clean + (views-1) augmented, extracted once")
    warmup_epochs: Annotated[int, Field(ge=1)] = 5
    batch_size: PositiveInt = 64
    lambda_u: NonNegativeFloat = 25.0
    p_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    lambda_c: NonNegativeFloat = 0.025


class AugmentConfig(Section):
    crop_pad: Annotated[int, Field(ge=0)] | None = Field(default=None, description="random translation in px (null: side/16)")
    flip: bool = True


class ComponentsConfig(Section):
    """Table 4 analog: TURN with / without LP and with cleansing none / once / every epoch."""

    enabled: bool = True
    backbones: list[str] = Field(min_length=1)
    noise: list[LabelNoise] = Field(min_length=1)


class SensitivityConfig(Section):
    """Fig. 3 analog: TURN's accuracy as E_LP, E_FFT and τ vary (one at a time)."""

    enabled: bool = True
    backbone: str
    noise: LabelNoise
    epochs_lp: list[PositiveInt] = Field(min_length=1)
    epochs_fft: list[PositiveInt] = Field(min_length=1)
    tau: list[Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(min_length=1)


class PurityConfig(Section):
    """Table 9 analog: size / purity of the selected subset vs τ; TURN vs confident learning as detectors."""

    enabled: bool = True
    backbone: str
    noise: list[LabelNoise] = Field(min_length=1)
    tau: list[Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(min_length=1)
    cv_folds: Annotated[int, Field(ge=2)] = 5


class TSNEConfig(Section):
    """Fig. 2 analog: t-SNE of test features before and after CE full fine-tuning."""

    enabled: bool = True
    backbones: list[str] = Field(min_length=1)
    noise: list[LabelNoise] = Field(min_length=1)
    n_points: PositiveInt = 600
    perplexity: PositiveFloat = 30.0


class TimingConfig(Section):
    """T4: TURN's training time against DivideMix-LP and UNICON-LP run the paper's way (the frozen
    encoder re-run on every augmented batch), one fit at a time so every method is timed alike."""

    enabled: bool = True
    backbone: str
    noise: LabelNoise = Field(description="the paper's Fig. 3a setting: symmetric 90%")
    epochs: Annotated[int, Field(ge=2)] = Field(default=5, description="epochs of DivideMix-LP / UNICON-LP (Fig. 3a: 5)")
    warmup_epochs: Annotated[int, Field(ge=1)] = 1


class DownstreamCandidate(Section):
    """A (downstream set, backbone) pair measured for the TURN regime (clean-label LP on validation)."""

    dataset: str
    backbone: str
    image_size: PositiveInt | None = None


class RegimeConfig(Section):
    """Which downstream set and backbones give TURN its regime (a strong linear probe), measured."""

    min_clean_lp: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=0.8, description="clean-label LP accuracy on the validation split a backbone must reach")
    candidates: list[DownstreamCandidate] = Field(default_factory=list)


class TurnSection(Section):
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
        "BatchNorm statistics during full fine-tuning, for TURN and the FFT baselines alike (nml.estimators.noisy_labels.full.BN_MODES)"))
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
