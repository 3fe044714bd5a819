"""The chapters' exercise answers, against closed forms worked out by hand."""

import math

from lnbook.experiments import foundations


def test_chapter1_exercise_answers():
    a = foundations.exercise_answers()
    # x = (1, 0, 0, 0): μ = 1/4, σ² = 3/16, so x̂ = (√3, −1/√3, −1/√3, −1/√3); float64 rounding only.
    assert math.isclose(a["onehot_big"], math.sqrt(3), rel_tol=1e-14)
    assert math.isclose(a["onehot_small"], -1 / math.sqrt(3), rel_tol=1e-14)
    # Eigenvalues of J at ε = 0: 0 on 1 and on x̂, 1/σ = 4/√3 on the rest (n − 2 = 2 of them).
    assert a["onehot_eig_zero_count"] == 2
    assert math.isclose(a["onehot_eig_max"], 4 / math.sqrt(3), rel_tol=1e-12)
    # LayerNorm and RMSNorm differ in exactly one column of the invariance table.
    assert a["ln_vs_rms_column"] == "weight matrix re-centering"
