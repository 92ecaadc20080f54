"""Scoring on hand-checked toy records."""
import math

import pytest

from spatial_vlm_ros.evaluation.records import FrameStats, QueryRecord
from spatial_vlm_ros.evaluation.scoring import (
    acceptance,
    failure_breakdown,
    percentiles,
    score_quantities,
    score_relations,
    summarize,
    within,
)

_stamps = iter(range(1, 10**6))


def rel(name, truth, pred, ambiguous=False, success=True, latency=1.0, stamp=None, a="a", b="b",
        confidence=None):
    """A relation record; each gets its own frame stamp (so its own fact) unless ``stamp`` is given."""
    return QueryRecord(float(next(_stamps) if stamp is None else stamp), "relation", a, name, b, truth=truth,
                       ambiguous=ambiguous, confidence=confidence if success else None,
                       predicted=pred if success else None, success=success, latency_ms=latency,
                       message="" if success else "unknown object 'a'; candidates: mug_1")


def qty(name, truth, pred, success=True, latency=2.0, stamp=None, a="a", b="b", sigma=None):
    return QueryRecord(float(next(_stamps) if stamp is None else stamp), "quantity", a, name, b, truth=truth,
                       predicted=pred if success else None, uncertainty=sigma if success else None,
                       success=success, latency_ms=latency, message="" if success else "failed")


def test_relation_accuracy_excludes_ambiguous_and_counts_failures_as_wrong():
    records = [
        rel("left_of", True, True),            # right
        rel("left_of", False, False),          # right
        rel("left_of", False, True),           # wrong: said yes
        rel("left_of", True, None, success=False),   # failed -> wrong
        rel("left_of", True, False, ambiguous=True),  # not scored
        rel("above", True, True),
    ]
    s = score_relations(records)
    left = s["per_relation"]["left_of"]
    assert left["n"] == 5 and left["n_scored"] == 4 and left["n_ambiguous"] == 1
    assert left["correct"] == 2
    assert left["accuracy"] == pytest.approx(0.5)
    assert left["accuracy_answered"] == pytest.approx(2 / 3)
    assert left["confusion"] == {"true_yes": 1, "true_no": 1, "false_yes": 1, "false_no": 0, "failed": 1,
                                 "inconsistent": 0}
    assert left["ambiguous_agreement"] == pytest.approx(0.0)
    assert s["per_relation"]["above"]["accuracy"] == 1.0
    assert s["overall"]["n_scored"] == 5 and s["overall"]["correct"] == 3
    assert s["overall"]["accuracy"] == pytest.approx(0.6)


def test_quantity_errors_and_success_criteria():
    records = [
        qty("distance", 1.00, 1.05),   # 5 %: within all three
        qty("distance", 0.50, 0.60),   # 20 %: within 25 % and 0.5-2x, not 10 %
        qty("distance", 0.40, 0.90),   # 125 %: outside 2x
        qty("distance", 0.20, 0.35),   # 75 %: only within 0.5-2x
        qty("distance", 0.30, None, success=False),   # failure: never a success
        qty("vertical_distance", 0.005, 0.02),        # near zero truth: absolute error only
    ]
    s = score_quantities(records, min_truth_m=0.02)
    d = s["per_quantity"]["distance"]
    assert d["n_scored"] == 5 and d["n_failed"] == 1
    assert d["within_10pct"] == pytest.approx(1 / 5)
    assert d["within_25pct"] == pytest.approx(2 / 5)
    assert d["within_half_double"] == pytest.approx(3 / 5)
    assert d["abs_error_m"]["n"] == 4
    assert d["abs_error_m"]["max"] == pytest.approx(0.5)
    assert d["rel_error"]["p50"] == pytest.approx((0.2 + 0.75) / 2)
    assert d["mean_signed_rel_error"] == pytest.approx((0.05 + 0.2 + 1.25 + 0.75) / 4)
    v = s["per_quantity"]["vertical_distance"]
    assert v["n_scored"] == 0 and v["n_near_zero"] == 1
    assert v["near_zero_abs_error_m"]["max"] == pytest.approx(0.015)
    assert math.isnan(v["within_25pct"])
    assert s["overall"]["n_scored"] == 5


def test_within_is_inclusive_and_rejects_bad_values():
    assert within(1.25, 1.0, 0.75, 1.25) and within(0.75, 1.0, 0.75, 1.25)
    assert not within(1.2501, 1.0, 0.75, 1.25)
    assert not within(None, 1.0, 0.5, 2.0)
    assert not within(float("nan"), 1.0, 0.5, 2.0)
    assert not within(-1.0, 1.0, 0.5, 2.0)


def test_percentiles_ignore_nan_and_handle_empty():
    p = percentiles([1.0, 2.0, 3.0, 4.0, float("nan")], (50, 95))
    assert p["n"] == 4 and p["p50"] == pytest.approx(2.5) and p["max"] == 4.0
    assert p["p95"] == pytest.approx(3.85)
    e = percentiles([])
    assert e["n"] == 0 and math.isnan(e["p99"])


def test_summary_acceptance_and_dropped_frames():
    records = [rel("left_of", True, True) for _ in range(19)] + [rel("left_of", True, False)]
    records += [qty("distance", 1.0, 1.05) for _ in range(9)] + [qty("distance", 1.0, 1.3)]
    frames = FrameStats(published=10, processed=8, frame_latency_ms=[10.0, 20.0])
    s = summarize(records, frames)
    assert s["frames"]["dropped"] == 2
    assert s["latency_ms"]["relation"]["p50"] == 1.0 and s["latency_ms"]["quantity"]["p50"] == 2.0
    checks = {(c["metric"], c["threshold"]): c for c in s["acceptance"]}
    assert checks[("relation_accuracy", 0.95)]["value"] == pytest.approx(0.95)
    assert checks[("relation_accuracy", 0.95)]["passed"]
    assert not checks[("relation_accuracy", 0.99)]["passed"]
    assert checks[("metric_within_25pct", 0.90)]["value"] == pytest.approx(0.9)
    assert checks[("metric_within_25pct", 0.90)]["passed"]
    assert not checks[("distance_within_10pct", 0.97)]["passed"]
    assert acceptance(s) == s["acceptance"]


def test_failure_breakdown_groups_messages_and_wrong_answers():
    records = [rel("above", True, None, success=False), rel("above", True, None, success=False),
               rel("left_of", False, True)]
    fb = failure_breakdown(records)
    assert fb["service_failures"] == {"unknown object 'a'": 2}
    assert fb["wrong_relations"] == {"left_of: truth False, said True": 1}


def test_record_round_trip_through_dict():
    r = qty("distance", 1.0, 1.1)
    assert QueryRecord.from_dict(r.to_dict()) == r
