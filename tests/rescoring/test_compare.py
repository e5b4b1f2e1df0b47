"""Paired selection statistics of lab.rescoring.compare: exact values on tiny inputs."""

import numpy as np
from nbest_examples import nbest_example

from lab.rescoring.compare import cross_fitted_errors, paired_bootstrap, sign_test, split_figures
from rescoring.combine import Combination, list_features


def _example(i, asr, errors, language="en"):
    return nbest_example(asr, errors, id=f"dev-{i:06d}", language=language)


def test_sign_test_counts_and_exact_p():
    a, b = np.array([0, 1, 2, 3, 0]), np.array([1, 1, 3, 2, 2])
    s = sign_test(a, b)
    assert (s["candidate_better"], s["candidate_worse"]) == (3, 1)
    assert s["p_two_sided"] == 0.625  # 2 * (1 + 4) / 16
    assert sign_test(a, a)["p_two_sided"] == 1.0


def test_paired_bootstrap_sign_and_interval():
    a, b = np.zeros(50), np.ones(50)
    r = paired_bootstrap(a, b, np.full(50, 4.0), draws=200)
    assert r["wer_difference"] == -25.0
    assert r["ci95"] == [-25.0, -25.0] and r["p_candidate_not_better"] == 0.0
    assert paired_bootstrap(b, a, np.full(50, 4.0), draws=200)["p_candidate_not_better"] == 1.0


def test_cross_fitted_errors_and_test_figures():
    # The second reading is right everywhere and the rescorer prefers it: any lambda > 0.1 wins.
    examples = [_example(i, [-0.1, -0.2], [2, 0], "en" if i % 2 else "es") for i in range(20)]
    scores = [np.asarray([0.0, 1.0], dtype=np.float32) for _ in examples]
    features = [list_features(e.texts) for e in examples]
    assert cross_fitted_errors(examples, scores, features, ()).tolist() == [0.0] * 20
    t = split_figures(examples, scores, features, Combination(weight=1.0))
    assert t["all"]["wer_first_pass"] == 50.0 and t["all"]["wer_rescored"] == 0.0
    assert t["en"]["gap_closed_pct"] == 100.0 and t["es"]["relative_wer_reduction_pct"] == 100.0
