"""Evaluation metric math on synthetic scores with known answers."""

import math

import numpy as np
import pytest

from provisioning.face_metrics import (
    Scores,
    bootstrap,
    clopper_pearson,
    eer,
    rates_at,
    summarise,
    tar_at_far,
    threshold_at_far,
)


def test_threshold_at_far_counts_impostors_above():
    impostor = np.arange(10_000) / 10_000  # 0.0000 .. 0.9999
    for far, allowed in [(1e-2, 100), (1e-3, 10), (1e-4, 1)]:
        t = threshold_at_far(impostor, far)
        assert (impostor > t).sum() == allowed
        assert (impostor > t - 1e-4).sum() > allowed  # lowest such threshold


def test_unmeasurable_far_is_nan():
    assert math.isnan(threshold_at_far(np.arange(500.0), 1e-3))
    assert all(math.isnan(v) for v in tar_at_far(np.ones(3), np.arange(500.0), 1e-3))


def test_ties_are_never_split():
    impostor = np.array([0.9] * 5 + [0.1] * 995)
    t = threshold_at_far(impostor, 1e-3)  # one false accept allowed, but five tie at 0.9
    assert t == pytest.approx(0.9)


def test_tar_and_eer_on_known_distributions():
    genuine = np.array([0.2, 0.6, 0.7, 0.8, 0.9])
    impostor = np.arange(1000) / 1000 * 0.5  # all below 0.5
    tar, t = tar_at_far(genuine, impostor, 1e-3)
    assert tar == pytest.approx(0.8) and t < 0.5
    assert eer(np.array([0.8, 0.9]), np.array([0.1, 0.2])) == 0.0
    assert eer(np.array([0.6, 0.7, 0.8]), np.array([0.1, 0.2, 0.65])) == pytest.approx(1 / 3)


def test_weights_equal_duplication():
    rng = np.random.default_rng(1)
    genuine, impostor = rng.normal(1, 0.5, 50), rng.normal(0, 0.5, 3000)
    gw, iw = rng.integers(0, 3, 50).astype(float), rng.integers(0, 3, 3000).astype(float)
    dup_g, dup_i = np.repeat(genuine, gw.astype(int)), np.repeat(impostor, iw.astype(int))
    assert tar_at_far(genuine, impostor, 1e-2, gw, iw)[1] == pytest.approx(tar_at_far(dup_g, dup_i, 1e-2)[1])
    assert tar_at_far(genuine, impostor, 1e-2, gw, iw)[0] == pytest.approx(tar_at_far(dup_g, dup_i, 1e-2)[0])
    assert eer(genuine, impostor, gw, iw) == pytest.approx(eer(dup_g, dup_i), abs=1e-9)


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(2)
    n_ids = 20
    gen_ids = np.repeat(np.arange(n_ids), 10)
    genuine = rng.normal(1.0, 0.4, gen_ids.size) + rng.normal(0, 0.3, n_ids)[gen_ids]
    imp_ids = np.array([(a, b) for a in range(n_ids) for b in range(n_ids) if a != b for _ in range(10)])
    impostor = rng.normal(0, 0.3, len(imp_ids))
    scores = Scores(genuine, gen_ids, impostor, imp_ids, n_ids)
    summary = summarise(scores, fars=(1e-2,))
    ci = bootstrap(scores, fars=(1e-2,), rounds=200)
    lo, hi = ci["tar@0.01"]
    assert lo <= summary["tar"]["0.01"] <= hi and hi - lo > 0.01


def test_paired_difference_sees_a_consistent_gain():
    from provisioning.face_metrics import paired_difference

    rng = np.random.default_rng(3)
    n_ids = 15
    gen_ids = np.repeat(np.arange(n_ids), 20)
    imp_ids = np.array([(x, y) for x in range(n_ids) for y in range(n_ids) if x != y for _ in range(10)])
    person = rng.normal(0, 0.4, n_ids)[gen_ids]  # shared per-identity difficulty
    base_g = 1.0 + person + rng.normal(0, 0.5, gen_ids.size)
    impostor = rng.normal(0, 0.3, len(imp_ids))
    worse = Scores(base_g, gen_ids, impostor, imp_ids, n_ids)
    better = Scores(base_g + 0.3, gen_ids, impostor, imp_ids, n_ids)
    result = paired_difference(better, worse, fars=(1e-2,), rounds=200)["0.01"]
    assert result["difference"] > 0 and result["ci"][0] > 0
    with pytest.raises(ValueError):
        paired_difference(better, Scores(base_g[:-1], gen_ids[:-1], impostor, imp_ids, n_ids))


def test_group_breakdown_counts_within_group_false_accepts():
    from provisioning.face_eval import group_breakdown

    scores = Scores(genuine=np.array([0.9, 0.3, 0.8]), genuine_ids=np.array([0, 1, 2]),
                    impostor=np.array([0.7, 0.1, 0.2, 0.6]), impostor_ids=np.array([[0, 1], [1, 2], [0, 2], [1, 0]]),
                    n_identities=3)
    out = group_breakdown(scores, {"a": [0, 1], "b": [2]}, threshold=0.5)
    assert out["a"]["tar"] == 0.5 and out["a"]["within_group_impostors"] == 2
    assert out["a"]["within_group_false_accepts"] == 2 and out["b"]["within_group_impostors"] == 0


def test_rates_at_a_fixed_threshold_with_exact_intervals_and_the_rule_of_three():
    scores = Scores(np.array([0.9, 0.8, 0.3, -1e9]), np.array([0, 1, 2, 2]), np.full(3000, 0.1),
                    np.array([(0, 1), (1, 2), (2, 0)] * 1000), 3)
    r = rates_at(scores, 0.5, far_target=1e-4)
    assert r["false_accepts"] == 0 and r["far_upper95_rule_of_three"] == pytest.approx(1e-3)
    assert r["identity_pairs"] == 3 and r["far_upper95_rule_of_three_identity_pairs"] == pytest.approx(1.0)
    assert not r["enough_impostors_for_target"]
    assert r["false_rejects"] == 2 and r["failures_to_acquire_genuine"] == 1 and r["frr"] == pytest.approx(0.5)
    lo, hi = clopper_pearson(1, 10302)
    assert lo == pytest.approx(2.4576e-6, rel=1e-3) and hi == pytest.approx(5.4071e-4, rel=1e-3)  # scipy beta
    assert clopper_pearson(0, 2550) == (0.0, pytest.approx(1.4456e-3, rel=1e-3))
