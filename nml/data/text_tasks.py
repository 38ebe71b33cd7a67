"""Labelled text tasks for chapter 05: a train split, an in-domain test split, OOD test splits.

A task's inputs are single texts or text pairs (GLUE's sentence-pair tasks). Encoders only ever
see single texts; :func:`nml.text_encoders.encode_split` turns a pair ``(a, b)`` into
``[u, v, |u − v|, u ⊙ v]`` of the two embeddings (SentEval / InferSent), so any frozen encoder —
including one reachable only as an embedding function — serves pair tasks the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
