"""Verification metrics on comparison scores: ROC, TAR at a FAR, EER, and identity-bootstrap CIs.

Why weights: confidence intervals resample *identities* (scores of one person are correlated, so
resampling pairs would pretend to far more independent evidence than 12 people give). Drawing an
identity k times multiplies its genuine pairs by k and its impostor pairs with another drawn identity
by the product of their counts; every metric here therefore takes optional per-score weights.
A score is "accept" when strictly greater than the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Scores:
    """Comparison scores with the identities behind them (higher score = more alike)."""

    genuine: np.ndarray
    genuine_ids: np.ndarray  # identity index of each genuine comparison
    impostor: np.ndarray
    impostor_ids: np.ndarray  # (n, 2) identity indices (reference, probe) of each impostor comparison
    n_identities: int
    failures: dict[str, int] = field(default_factory=dict)


def threshold_at_far(impostor: np.ndarray, far: float, weights: np.ndarray | None = None) -> float:
    """Lowest threshold whose (weighted) false-accept rate is at most ``far`` (accept: score > threshold).

    Returns ``nan`` when the impostor set is too small to measure ``far`` (fewer than 1/far comparisons).
    """
    impostor = np.asarray(impostor, np.float64)
    weights = np.ones_like(impostor) if weights is None else np.asarray(weights, np.float64)
    if impostor.size == 0 or far * weights.sum() < 1 - 1e-9:
        return math.nan
    order = np.argsort(-impostor, kind="stable")
    descending, w = impostor[order], weights[order]
    total = w.sum()
    if total <= 0:
        return math.nan
    # false-accept weight at threshold descending[k]: everything strictly greater, i.e. before the
    # first element of k's tie group
    excl = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    first_of_tie = np.searchsorted(-descending, -descending, side="left")
    false_accepts = excl[first_of_tie]
    ok = np.nonzero(false_accepts <= far * total + 1e-12)[0]
    return float(descending[ok[-1]])


def rate_above(scores: np.ndarray, threshold: float, weights: np.ndarray | None = None) -> float:
    """(Weighted) fraction of scores strictly above ``threshold``."""
    scores = np.asarray(scores, np.float64)
    weights = np.ones_like(scores) if weights is None else np.asarray(weights, np.float64)
    total = weights.sum()
    return float(weights[scores > threshold].sum() / total) if total > 0 else math.nan


def tar_at_far(genuine, impostor, far, genuine_w=None, impostor_w=None) -> tuple[float, float]:
    """(TAR, threshold) at the given FAR; both ``nan`` when FAR is not measurable."""
    threshold = threshold_at_far(impostor, far, impostor_w)
    if math.isnan(threshold):
        return math.nan, math.nan
    return rate_above(genuine, threshold, genuine_w), threshold


def eer(genuine, impostor, genuine_w=None, impostor_w=None) -> float:
    """Equal error rate: where the false-reject and false-accept rates cross (mean of the two there)."""
    genuine = np.asarray(genuine, np.float64)
    impostor = np.asarray(impostor, np.float64)
    gw = np.ones_like(genuine) if genuine_w is None else np.asarray(genuine_w, np.float64)
    iw = np.ones_like(impostor) if impostor_w is None else np.asarray(impostor_w, np.float64)
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    g_order, i_order = np.argsort(genuine), np.argsort(impostor)
    g_sorted, g_cum = genuine[g_order], np.cumsum(gw[g_order]) / gw.sum()
    i_sorted, i_cum = impostor[i_order], np.cumsum(iw[i_order]) / iw.sum()
    # FRR(t) = weight of genuine <= t ; FAR(t) = 1 - weight of impostor <= t
    g_idx = np.searchsorted(g_sorted, thresholds, side="right")
    i_idx = np.searchsorted(i_sorted, thresholds, side="right")
    frr = np.where(g_idx > 0, g_cum[np.maximum(g_idx - 1, 0)], 0.0)
    far = 1.0 - np.where(i_idx > 0, i_cum[np.maximum(i_idx - 1, 0)], 0.0)
    best = int(np.argmin(np.abs(frr - far)))
    return float((frr[best] + far[best]) / 2)


def decidability(genuine, impostor) -> float:
    """d' = |mean_g − mean_i| / sqrt((var_g + var_i)/2): separation that still shows when TAR saturates."""
    genuine = np.asarray(genuine, np.float64)
    impostor = np.asarray(impostor, np.float64)
    genuine, impostor = genuine[genuine > -1e8], impostor[impostor > -1e8]  # drop failure markers
    if genuine.size < 2 or impostor.size < 2:
        return math.nan
    return float(abs(genuine.mean() - impostor.mean()) / math.sqrt((genuine.var() + impostor.var()) / 2))


def roc_curve(genuine, impostor, points: int = 200) -> list[tuple[float, float]]:
    """(FAR, TAR) pairs on a log-spaced FAR grid, for plotting or JSON reports."""
    out = []
    for far in np.logspace(-5, 0, points):
        tar, _ = tar_at_far(genuine, impostor, far)
        if not math.isnan(tar):
            out.append((float(far), tar))
    return out


def summarise(scores: Scores, fars=(1e-2, 1e-3, 1e-4)) -> dict:
    """Point estimates: TAR and threshold at each FAR, EER, counts."""
    result = {"d_prime": decidability(scores.genuine, scores.impostor), "min_genuine": float(scores.genuine.min()) if scores.genuine.size else math.nan,
              "max_impostor": float(scores.impostor.max()) if scores.impostor.size else math.nan,
              "n_identities": scores.n_identities, "n_genuine": int(scores.genuine.size),
              "n_impostor": int(scores.impostor.size), "failures": dict(scores.failures),
              "eer": eer(scores.genuine, scores.impostor), "tar": {}, "threshold": {}}
    for far in fars:
        tar, threshold = tar_at_far(scores.genuine, scores.impostor, far)
        result["tar"][f"{far:g}"] = tar
        result["threshold"][f"{far:g}"] = threshold
    return result


def bootstrap(scores: Scores, fars=(1e-2, 1e-3, 1e-4), rounds: int = 1000, seed: int = 0,
              level: float = 0.95) -> dict:
    """Percentile confidence intervals of TAR@FAR, threshold@FAR and EER, resampling identities."""
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {f"tar@{f:g}": [] for f in fars}
    samples.update({f"threshold@{f:g}": [] for f in fars})
    samples["eer"] = []
    for _ in range(rounds):
        counts = np.bincount(rng.integers(0, scores.n_identities, scores.n_identities),
                             minlength=scores.n_identities).astype(np.float64)
        gw = counts[scores.genuine_ids]
        iw = counts[scores.impostor_ids[:, 0]] * counts[scores.impostor_ids[:, 1]]
        if gw.sum() == 0 or iw.sum() == 0:
            continue
        keep_g, keep_i = gw > 0, iw > 0
        g, gw, imp, iw = scores.genuine[keep_g], gw[keep_g], scores.impostor[keep_i], iw[keep_i]
        for far in fars:
            tar, threshold = tar_at_far(g, imp, far, gw, iw)
            samples[f"tar@{far:g}"].append(tar)
            samples[f"threshold@{far:g}"].append(threshold)
        samples["eer"].append(eer(g, imp, gw, iw))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {}
    for key, values in samples.items():
        arr = np.array([v for v in values if not math.isnan(v)])
        out[key] = [float(np.percentile(arr, lo)), float(np.percentile(arr, hi))] if arr.size else None
    return out


def paired_difference(a: Scores, b: Scores, fars=(1e-3, 1e-4), rounds: int = 500, seed: int = 0,
                      level: float = 0.95) -> dict:
    """CI of TAR(a) − TAR(b) at each FAR, with the *same* identity resamples for both systems.

    ``a`` and ``b`` must score the same comparisons in the same order (two systems, one protocol run):
    pairing removes the shared identity-to-identity variation, so the interval is far narrower than
    comparing two separate intervals.
    """
    if not (np.array_equal(a.genuine_ids, b.genuine_ids) and np.array_equal(a.impostor_ids, b.impostor_ids)):
        raise ValueError("paired_difference needs two score sets over the same comparisons")
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[float]] = {f"{f:g}": [] for f in fars}
    for _ in range(rounds):
        counts = np.bincount(rng.integers(0, a.n_identities, a.n_identities),
                             minlength=a.n_identities).astype(np.float64)
        gw = counts[a.genuine_ids]
        iw = counts[a.impostor_ids[:, 0]] * counts[a.impostor_ids[:, 1]]
        for far in fars:
            ta, _ = tar_at_far(a.genuine, a.impostor, far, gw, iw)
            tb, _ = tar_at_far(b.genuine, b.impostor, far, gw, iw)
            if not (math.isnan(ta) or math.isnan(tb)):
                diffs[f"{far:g}"].append(ta - tb)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {}
    for far in fars:
        tar_a, _ = tar_at_far(a.genuine, a.impostor, far)
        tar_b, _ = tar_at_far(b.genuine, b.impostor, far)
        values = np.array(diffs[f"{far:g}"])
        out[f"{far:g}"] = {"difference": tar_a - tar_b,
                           "ci": [float(np.percentile(values, lo)), float(np.percentile(values, hi))]
                           if values.size else None}
    return out


# ----------------------------------------------------------------------------- rates at a fixed threshold


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (n up to millions is fine)."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def clopper_pearson(errors: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval of a rate ``errors``/``n``. With 0 errors the upper end
    at 95% is ≈ 3.7/n (two-sided 2.5% tail; the one-sided "rule of three" is 3/n)."""
    if n <= 0:
        return math.nan, math.nan
    alpha = (1 - level) / 2

    def solve(target: float, k: int) -> float:  # p with P(X <= k | p) = target, cdf falls with p
        lo, hi = 0.0, 1.0
        for _ in range(80):
            mid = (lo + hi) / 2
            if _binom_cdf(k, n, mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if errors == 0 else _lower(errors, n, alpha)
    upper = 1.0 if errors >= n else solve(alpha, errors)
    return lower, upper


def _lower(errors: int, n: int, alpha: float) -> float:
    """p with P(X >= errors | p) = alpha."""
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 1.0 - _binom_cdf(errors - 1, n, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def rule_of_three(n: int) -> float:
    """One-sided 95% upper bound of a rate with no error in ``n`` independent trials: 3/n."""
    return 3.0 / n if n > 0 else math.nan


def rates_at(scores: Scores, threshold: float, far_target: float | None = None) -> dict:
    """FAR and FRR of one fixed threshold with counts and exact CIs (accept: score > threshold).

    Failures to acquire (score :data:`FAILED` markers, ≤ −1e8) count as rejects: a false reject for a
    genuine person, never a false accept. ``identity_pairs`` is the number of distinct (card, probe)
    identity pairs behind the impostor comparisons: comparisons of one pair are correlated, so the
    independent evidence lies between the two counts, and the rule-of-three bound is given for both.
    """
    false_accepts = int(np.sum(scores.impostor > threshold))
    false_rejects = int(np.sum(scores.genuine <= threshold))
    n_imp, n_gen = int(scores.impostor.size), int(scores.genuine.size)
    pairs = int(len({(int(a), int(b)) for a, b in scores.impostor_ids})) if n_imp else 0
    pairs_with_fa = int(len({(int(a), int(b)) for (a, b), s in zip(scores.impostor_ids, scores.impostor,
                                                                   strict=True) if s > threshold}))
    out = {"threshold": float(threshold),
           "far": false_accepts / n_imp if n_imp else math.nan, "false_accepts": false_accepts,
           "impostor_comparisons": n_imp, "far_ci95": list(clopper_pearson(false_accepts, n_imp)),
           "identity_pairs": pairs, "identity_pairs_with_false_accept": pairs_with_fa,
           "frr": false_rejects / n_gen if n_gen else math.nan, "false_rejects": false_rejects,
           "genuine_comparisons": n_gen, "frr_ci95": list(clopper_pearson(false_rejects, n_gen)),
           "failures_to_acquire_genuine": int(np.sum(scores.genuine <= -1e8))}
    if false_accepts == 0:
        out["far_upper95_rule_of_three"] = rule_of_three(n_imp)
        out["far_upper95_rule_of_three_identity_pairs"] = rule_of_three(pairs)
    if far_target is not None:
        out["far_target"] = far_target
        out["enough_impostors_for_target"] = bool(n_imp >= 3 / far_target)
    return out
