"""The root of the params schema: one typed section per notebook (each owned by its chapter,
``nml/chapters/chNN_*/config.py``), validated before anything runs.

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
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nml._infra.paths import project_root
from nml._infra.runtime_config import ExecutorConfig, RuntimeConfig
from nml._infra.schema import ParamsError, Section
from nml.chapters.ch01_pretraining.config import PretrainSection
from nml.chapters.ch02_spectral.config import SpectralSection
from nml.chapters.ch03_nmtune.config import NMTuneSection
from nml.chapters.ch04_turn.config import TurnSection
from nml.chapters.ch05_language.config import LanguageSection

PROFILES = ("smoke", "cpu", "paper")


class Params(Section):
    """A whole params file."""

    profile: str
    description: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data_root: Path | None = None
    num_workers: Annotated[int, Field(ge=0)] = 0
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    pretrain: PretrainSection
    spectral: SpectralSection
    nmtune: NMTuneSection
    turn: TurnSection | None = None
    language: LanguageSection | None = None

    @field_validator("data_root")
    @classmethod
    def _data_root_exists(cls, root: Path | None) -> Path | None:
        """A ``data_root`` that is not a folder here (a typo, a disk not mounted) is refused on every
        profile, before anything runs; ``null`` means no paper-scale data."""
        if root is not None and not root.expanduser().is_dir():
            what = "is not a folder" if root.expanduser().exists() else "does not exist"
            raise ValueError(f"data_root {root} {what} on this machine; set data_root to the folder holding "
                             "the datasets (see README), or to null when no paper-scale data is used")
        return root

    @model_validator(mode="after")
    def _names_are_known(self) -> Params:
        from nml.data.catalog import DATASET_REGISTRY
        from nml.models.backbones import BACKBONE_REGISTRY

        problems = []
        for key, name in self.dataset_references():
            try:
                DATASET_REGISTRY.check(name)
            except KeyError as err:
                problems.append(f"{key}: {err.args[0]}")
        for key, name in (("pretrain.model", self.pretrain.model),):
            try:
                BACKBONE_REGISTRY.check(name)
            except KeyError as err:
                problems.append(f"{key}: {err.args[0]}")
        problems += self._nmtune_problems()
        problems += self._turn_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _nmtune_problems(self) -> list[str]:
        """Cross-section checks: 03 reads 01's checkpoints and 02's tasks, so they must exist."""
        from nml.models.image_encoders import ENCODER_REGISTRY

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
                ENCODER_REGISTRY.check(name)
            except KeyError as err:
                problems.append(f"nmtune.real_models.encoders[{i}]: {err.args[0]}")
        unknown = sorted(set(n.real_models.image_size) - set(n.real_models.encoders))
        if unknown:
            problems.append(f"nmtune.real_models.image_size: {unknown} are not in nmtune.real_models.encoders")
        for i, name in enumerate(n.runtime.encoders):
            if name != "checkpoint":
                try:
                    ENCODER_REGISTRY.check(name)
                except KeyError as err:
                    problems.append(f"nmtune.runtime.encoders[{i}]: {err.args[0]} (or 'checkpoint')")
        return problems

    def _turn_problems(self) -> list[str]:
        """04 reads 01's clean checkpoint: 'checkpoint' needs γ = 0 and the seed trained in 01."""
        from nml.models.image_encoders import ENCODER_REGISTRY

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
                ENCODER_REGISTRY.check(b.name)
            except KeyError as err:
                problems.append(f"turn.backbones[{i}].name: {err.args[0]} (or 'checkpoint')")
                continue
            if b.name == "opennsfw":
                problems.append(f"turn.backbones[{i}].name: 'opennsfw' is an ONNX black box; fine-tuning needs a torch module")
        for i, c in enumerate(t.regime.candidates):
            if c.backbone == "checkpoint":
                continue
            try:
                ENCODER_REGISTRY.check(c.backbone)
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
        from nml.data.catalog import missing_for_dataset

        out: dict[str, list[str]] = {}
        for _, name in self.dataset_references():
            if name not in out:
                missing = missing_for_dataset(name, self.data_root)
                if missing:
                    out[name] = missing
        return out

    def missing_models(self) -> dict[str, str]:
        """Models the params name whose weights this machine lacks (offline ones need none)."""
        # Pre-training starts from random weights, so notebooks 01-02 need no checkpoint; chapter
        # 03's published encoders are packaged assets (cpu) or timm weights (paper).
        from nml import assets
        from nml.models.hub import HFModel, TimmModel
        from nml.models.image_encoders import ENCODER_ASSETS, HF_PREFIX

        out: dict[str, str] = {}
        section = getattr(self, "nmtune", None)
        if section is None:
            return out
        names = list(section.real_models.encoders) if section.real_models.enabled else []
        names += [e for e in section.runtime.encoders if e != "checkpoint"] if section.runtime.enabled else []
        turn = getattr(self, "turn", None)
        if turn is not None and turn.enabled:
            names += [b.name for b in turn.backbones if b.name != "checkpoint"]
        for name in dict.fromkeys(names):
            if name.startswith(HF_PREFIX):
                problems = HFModel(name[len(HF_PREFIX):]).check()
                if problems:
                    out[name] = "; ".join(problems)
                continue
            if name in ENCODER_ASSETS:
                bad = [a for a in ENCODER_ASSETS[name] if not assets.verify(a).ok]
                if bad:
                    out[name] = f"assets {bad} not fetched (run: nml assets fetch {' '.join(bad)})"
            else:
                problems = TimmModel(name).check()
                if problems:
                    out[name] = "; ".join(problems)
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
