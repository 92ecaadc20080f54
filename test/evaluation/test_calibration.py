"""2-sigma coverage, reliability table, ECE and high-confidence errors on hand-checked items."""
import math

import numpy as np
import pytest

from spatial_vlm_ros.evaluation.calibration import coverage, coverage_interval, reliability, reliability_lines
from spatial_vlm_ros.evaluation.facts import Fact
from spatial_vlm_ros.evaluation.records import QueryRecord
from spatial_vlm_ros.evaluation.scoring import summarize


def q(truth, pred, sigma, answered=True):
    return Fact("quantity", "distance", truth, pred if answered else None, answered, uncertainty=sigma)


def r(right, conf, answered=True):
    return Fact("relation", "left_of", True, right if answered else None, answered, confidence=conf)


def test_coverage_counts_errors_within_two_sigma():
    items = [q(1.0, 1.015, 0.01), q(1.0, 1.03, 0.01), q(1.0, 0.98, 0.02), q(1.0, 1.0, None),
             q(1.0, None, 0.01, answered=False)]
    c = coverage(items)
    assert c["n"] == 3 and c["covered"] == 2 and c["coverage"] == pytest.approx(2 / 3)
    assert math.isnan(coverage([q(1.0, 1.0, None)])["coverage"])


def _scenes(rng, n_scenes, per_scene, shared):
    """(fact, scene) of calibrated Gaussian errors; ``shared``: share of each error's variance common to
    its scene (facts of one scene share its objects' errors)."""
    out = []
    for k in range(n_scenes):
        common = rng.normal(0.0, math.sqrt(shared))
        for e in common + rng.normal(0.0, math.sqrt(1.0 - shared), per_scene):
            out.append((q(1.0, 1.0 + 0.01 * e, 0.01), k))
    return out


def test_coverage_interval_holds_the_calibrated_coverage_and_widens_with_shared_errors():
    rng = np.random.default_rng(0)
    holds, widths = 0, {0.0: [], 0.6: []}
    for _ in range(60):
        for shared in widths:
            items = _scenes(rng, 45, 8, shared)
            scene = {id(f): s for f, s in items}
            lo, hi = coverage_interval([f for f, _ in items], lambda f, scene=scene: scene[id(f)], n_boot=500)
            value = coverage([f for f, _ in items])["coverage"]
            assert lo <= value <= hi
            widths[shared].append(hi - lo)
            holds += shared == 0.6 and lo <= 0.954 <= hi
    assert holds >= 0.85 * 60                     # a 95 % interval: misses about 1 in 20
    assert np.mean(widths[0.6]) > 1.3 * np.mean(widths[0.0])   # clustered facts tell less than iid ones
    assert all(math.isnan(v) for v in coverage_interval([q(1.0, 1.0, None)], lambda f: 0))


def test_coverage_interval_excludes_a_miscalibrated_sigma():
    items = _scenes(np.random.default_rng(1), 45, 8, 0.3)
    for f, _ in items:
        f.uncertainty = 0.007                     # sigma 30 % too small: true 2-sigma coverage ~84 %
    scene = {id(f): s for f, s in items}
    lo, hi = coverage_interval([f for f, _ in items], lambda f: scene[id(f)])
    assert hi < 0.93


def test_reliability_bins_ece_and_high_confidence_errors():
    # bin [0.5, 0.6): 4 answers at 0.55, 2 right -> gap 0.05; bin [0.9, 1.0]: 0.995 x 10, 9 right
    items = [r(i < 2, 0.55) for i in range(4)] + [r(i < 9, 0.995) for i in range(10)] + [r(True, None)]
    rel = reliability(items)
    assert rel["n"] == 14
    assert [(row["lo"], row["n"]) for row in rel["table"]] == [(0.5, 4), (pytest.approx(0.9), 10)]
    assert rel["table"][0]["accuracy"] == 0.5 and rel["table"][1]["mean_confidence"] == pytest.approx(0.995)
    assert rel["ece"] == pytest.approx((4 * 0.05 + 10 * abs(0.9 - 0.995)) / 14)
    assert rel["n_high"] == 10 and rel["wrong_high"] == 1 and rel["wrong_high_fraction"] == pytest.approx(0.1)
    assert reliability([r(True, 1.0)])["table"][0]["lo"] == pytest.approx(0.9)     # 1.0 in the last bin
    assert len(reliability_lines(rel)) == 2 + 2
    with pytest.raises(ValueError):
        reliability(items, bins=0)


def test_a_calibrated_answerer_has_small_ece():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 1.0, 20000)
    right = rng.uniform(size=conf.size) < conf
    rel = reliability([r(bool(x), float(c)) for x, c in zip(right, conf)])
    assert rel["ece"] < 0.02
    over = reliability([r(bool(x), min(1.0, float(c) + 0.2)) for x, c in zip(right, conf)])
    assert over["ece"] > 0.1


def test_summary_carries_coverage_ece_and_acceptance():
    recs = [QueryRecord(float(i), "relation", "a", "left_of", "b", truth=True, predicted=i != 0, success=True,
                        confidence=0.999) for i in range(10)]
    recs += [QueryRecord(float(i), "quantity", "a", "distance", "b", truth=1.0, predicted=1.0 + 0.01 * i,
                         success=True, uncertainty=0.0225) for i in range(10)]
    s = summarize(recs)
    cal = s["relations"]["overall"]["calibration"]
    assert cal["n_high"] == 10 and cal["wrong_high"] == 1
    assert cal["ece"] == pytest.approx(abs(0.9 - 0.999))
    cov = s["quantities"]["per_quantity"]["distance"]["coverage_2sigma"]
    assert cov["n"] == 10 and cov["covered"] == 5                       # errors 0 .. 0.09 vs 2 sigma 0.045
    checks = {c["metric"]: c for c in s["acceptance"]}
    assert not checks["relation_ece"]["passed"] and checks["relation_ece"]["direction"] == "<="
    assert not checks["relation_wrong_at_099"]["passed"]
    assert not checks["metric_coverage_2sigma"]["passed"]
