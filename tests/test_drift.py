import numpy as np
import pandas as pd

from nml.drift import DriftReport, _compare_claims, _perturb, format_drift_report


def _claims(verdicts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"claim": [f"C{i}" for i in range(len(verdicts))], "scope": "ID",
                         "verdict": verdicts, "effect": np.arange(len(verdicts), dtype=float)})


def test_perturbation_is_at_float32_rounding_scale():
    x = np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32)
    y = _perturb(x, 1e-6, np.random.default_rng(1))
    rel = np.abs(y - x) / np.abs(x)
    assert y.dtype == np.float32 and not np.array_equal(x, y)
    assert np.median(rel) < 2e-6 and rel.max() < 1e-5


def test_only_holds_to_does_not_hold_counts_as_a_flip():
    before = _claims(["holds", "holds", "inconclusive", "does not hold", "not testable"])
    after = _claims(["holds", "inconclusive", "holds", "holds", "not testable"])
    both = _compare_claims(before, after)
    assert both["changed"].tolist() == [False, True, True, True, False]
    assert both["flipped"].tolist() == [False, False, False, True, False]


def test_report_names_every_changed_verdict():
    before, after = _claims(["holds", "inconclusive"]), _claims(["inconclusive", "inconclusive"])
    scores = pd.DataFrame({"delta_pts": [0.0, -0.5, 1.0]})
    text = format_drift_report({"02": DriftReport(scores, _compare_claims(before, after))}, 1e-6)
    assert "1 of 2 changed, 0 between holds and does not hold" in text
    assert "C0 [ID]: holds -> inconclusive" in text and "max 1.00 pts" in text
