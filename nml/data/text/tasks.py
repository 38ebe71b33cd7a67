"""Labelled text tasks for chapter 05: a train split, an in-domain test split, OOD test splits.

A task's inputs are single texts or text pairs (GLUE's sentence-pair tasks). Encoders only ever
see single texts; :func:`nml.models.text_encoders.encode_split` turns a pair ``(a, b)`` into
``[u, v, |u − v|, u ⊙ v]`` of the two embeddings (SentEval / InferSent), so any frozen encoder —
including one reachable only as an embedding function — serves pair tasks the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

METRICS = ("accuracy", "mcc", "pearson")


@dataclass
class TextSplit:
    """Texts (or text pairs) and their integer labels.

    ``groups`` names what must not straddle train and test (a movie, a speaker); ``scores`` holds
    a continuous gold value where the task's metric reads one (STS-B's similarity, for Pearson).
    ``name`` identifies the split in caches and tables (``"sentiment/train"``, ``"whissell"``).
    """

    name: str
    texts: list[str] | list[tuple[str, str]]
    labels: np.ndarray
    groups: np.ndarray | None = None
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.texts) != len(self.labels):
            raise ValueError(f"split {self.name!r}: {len(self.texts)} texts but {len(self.labels)} labels")
        for what, arr in (("groups", self.groups), ("scores", self.scores)):
            if arr is not None and len(arr) != len(self.labels):
                raise ValueError(f"split {self.name!r}: {what} has {len(arr)} entries, expected {len(self.labels)}")

    @property
    def is_pair(self) -> bool:
        return bool(self.texts) and isinstance(self.texts[0], tuple)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def data_id(self) -> str:
        """Stable id of the split's content (name, texts, labels): the ``test_id`` under which
        claims resample its samples, the same for every method, seed and encoder."""
        from nml._infra.cache import stable_hash

        return f"{self.name}:" + stable_hash({"texts": [list(t) if isinstance(t, tuple) else t for t in self.texts],
                                               "labels": self.labels.tolist()}, length=12)

    def take(self, idx: np.ndarray, name: str | None = None) -> TextSplit:
        idx = np.asarray(idx, dtype=np.int64)
        return TextSplit(name or self.name, [self.texts[i] for i in idx], self.labels[idx],
                         None if self.groups is None else np.asarray(self.groups)[idx],
                         None if self.scores is None else np.asarray(self.scores)[idx])


@dataclass
class TextTask:
    """One downstream task: ``classes[k]`` names label ``k``; ``metric`` is one of :data:`METRICS`.

    ``ood`` maps an OOD test set's name to its split, labelled in the same class space (a
    classifier trained on ``train`` is scored on it unchanged). ``ood_metric`` overrides ``metric``
    per OOD set where its benchmark uses another one.
    """

    name: str
    classes: list[str]
    metric: str
    train: TextSplit
    test: TextSplit
    ood: dict[str, TextSplit] = field(default_factory=dict)
    ood_metric: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        for m in [self.metric, *self.ood_metric.values()]:
            if m not in METRICS:
                raise ValueError(f"task {self.name!r}: metric {m!r} is not one of {METRICS}")
        for split in [self.train, self.test, *self.ood.values()]:
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= len(self.classes)):
                raise ValueError(f"task {self.name!r}: split {split.name!r} has labels outside 0..{len(self.classes) - 1}")

    def metric_of(self, ood_name: str | None = None) -> str:
        return self.ood_metric.get(ood_name, self.metric) if ood_name else self.metric


def carve_validation(split: TextSplit, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, validation)`` of a training split (:func:`nml.data.validation.validation_split`).

    The validation side is disjoint from the fit side in the way the test split is from the
    training split: with ``groups`` (movies, speakers) no group is on both sides. When every group
    carries a single label (a speaker has one party), the groups of each class are split
    separately, so the validation side keeps both classes in about their training shares; when
    groups mix labels (a movie has fresh and rotten reviews), the split is by groups alone.
    Without groups it is stratified by label (a class with a single sample stays in the fit part).
    """
    from nml.data.validation import validation_split

    labels = split.labels
    if split.groups is None:
        # a class with a single training sample cannot be on both sides: it stays in the fit part
        classes, counts = np.unique(labels, return_counts=True)
        rare = np.isin(labels, classes[counts < 2])
        if not rare.any():
            return validation_split(labels, fraction, seed)
        idx = np.flatnonzero(~rare)
        fit, val = validation_split(labels[idx], fraction, seed)
        return np.sort(np.concatenate([idx[fit], np.flatnonzero(rare)])), idx[val]
    groups = np.asarray(split.groups)
    if (pd.Series(labels).groupby(groups).nunique() > 1).any():
        return validation_split(labels, fraction, seed, groups=groups)
    fit, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(np.unique(groups[idx])) < 2:
            raise ValueError(f"split {split.name!r}: class {c} has a single group; a group-disjoint validation "
                             f"split needs at least 2 groups per class")
        f, v = validation_split(labels[idx], fraction, seed, groups=groups[idx])
        fit.append(idx[f])
        val.append(idx[v])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))
