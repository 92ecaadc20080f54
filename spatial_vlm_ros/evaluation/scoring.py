"""Scores ``QueryRecord``s against ground truth: relation accuracy, metric errors, success rates, latency.

Conventions (stated in the report too):
- Each FACT is scored once (``facts``): the askings of one fact (``left_of(A, B)``, ``right_of(B, A)`` and the
  negated ``left_of(B, A)``, ``right_of(A, B)``; ``distance(A, B)`` and ``distance(B, A)``) are merged, and a
  relation fact counts right only when every asking of it was answered right (contradicting answers are
  wrong). Counts named ``n_askings`` are of the askings (service calls) before merging.
- Every visible ground-truth object is scored: a question about an object the detector did not find
  (``QueryRecord.missed``) is a failed answer, so it counts as wrong, as a failed service call does.
- Relations: accuracy is over UNAMBIGUOUS ground-truth pairs; a failed service call counts as wrong.
  Ambiguous pairs (within the definition's margin) are counted and their agreement shown, never scored.
- Quantities (metres): absolute error ``|pred - truth|``, relative error ``|pred - truth| / truth``.
  Success criteria: within +-10 %, within +-25 % (SpatialRGPT-Bench), within [0.5x, 2x] (SpatialVLM).
  Failed calls count as unsuccessful. Truths below ``min_truth_m`` (e.g. the vertical distance of two objects
  on the same table) have no meaningful relative error: they are counted apart and scored by absolute error.
- Uncertainty (``calibration``): per quantity and overall, the share of answered quantities within 2 sigma
  of the truth; for relations (ambiguous facts included: their truth is still the sign of the true margin)
  the reliability table, ECE over 10 confidence bins and the wrong answers among those at confidence >= 0.99.
- Latency: service round trip percentiles, milliseconds.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from .calibration import coverage, coverage_interval, reliability
from .facts import Fact, merge_facts
from .records import FrameStats, QueryRecord, quantity_records, relation_records

#: relative tolerances of the success criteria, as (name, lower ratio, upper ratio) on pred / truth
SUCCESS_CRITERIA = (
    ("within_10pct", 0.90, 1.10),
    ("within_25pct", 0.75, 1.25),
    ("within_half_double", 0.5, 2.0),
)

#: Acceptance thresholds, as the report words them: the minimum the package must reach and the project's targets
#: (2-sigma coverage 0.95 +- 0.02, ECE <= 0.01, <= 0.5 % wrong at >= 0.99): (metric, criterion, threshold, ">=" or "<=")
ACCEPTANCE = (
    ("relation_accuracy", "relations correct on unambiguous pairs (minimum)", 0.95, ">="),
    ("metric_within_25pct", "measurements within ±25 % (minimum)", 0.90, ">="),
    ("relation_accuracy", "relations correct on unambiguous pairs (target)", 0.99, ">="),
    ("distance_within_10pct", "distances within ±10 % (target)", 0.97, ">="),
    ("metric_coverage_2sigma", "measurement errors within the reported 2 sigma (target)", 0.93, ">="),
    ("relation_ece", "relation confidence calibration error, ECE (target)", 0.01, "<="),
    ("relation_wrong_at_099", "wrong answers among those given at confidence >= 0.99 (target)", 0.005, "<="),
)

DEFAULT_MIN_TRUTH_M = 0.02


def percentiles(values: Iterable[float], qs: Sequence[float] = (50, 95, 99)) -> dict:
    """``{"n", "mean", "max", "p50", "p95", "p99"}`` of the finite values; NaN entries when there are none."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    out = {"n": int(arr.size)}
    if arr.size == 0:
        out.update({"mean": math.nan, "max": math.nan, **{f"p{q:g}": math.nan for q in qs}})
        return out
    out["mean"] = float(arr.mean())
    out["max"] = float(arr.max())
    for q, v in zip(qs, np.percentile(arr, qs)):
        out[f"p{q:g}"] = float(v)
    return out


def _ratio(n: int, d: int) -> float:
    return n / d if d else math.nan


def _relation_block(facts: list[Fact]) -> dict:
    scored = [r for r in facts if not r.ambiguous and r.truth is not None]
    ambiguous = [r for r in facts if r.ambiguous]
    confusion = {"true_yes": 0, "true_no": 0, "false_yes": 0, "false_no": 0, "failed": 0, "inconsistent": 0}
    correct = 0
    for r in scored:
        if not r.answered:
            confusion["failed"] += 1
            continue
        if r.inconsistent:                  # askings contradict each other: wrong, not a yes or a no
            confusion["inconsistent"] += 1
            continue
        truth, pred = bool(r.truth), bool(r.predicted)
        key = ("true_" if truth == pred else "false_") + ("yes" if pred else "no")
        confusion[key] += 1
        correct += truth == pred
    answered = len(scored) - confusion["failed"]
    amb_answered = [r for r in ambiguous if r.answered and r.truth is not None]
    return {
        "n": len(facts),
        "n_askings": sum(len(r.askings) for r in facts),
        "n_scored": len(scored),
        "n_ambiguous": len(ambiguous),
        "n_failed": confusion["failed"],
        "correct": correct,
        "accuracy": _ratio(correct, len(scored)),
        "accuracy_answered": _ratio(correct, answered),
        "ambiguous_agreement": _ratio(sum(bool(r.truth) == bool(r.predicted) for r in amb_answered),
                                      len(amb_answered)),
        # rows: truth, columns: answer. true_yes = holds and said yes; false_yes = does not hold, said yes.
        "confusion": confusion,
        "calibration": reliability(facts),
    }


def score_relations(records: Iterable[QueryRecord]) -> dict:
    """Per relation and overall accuracy on unambiguous facts (each fact once, named by its base relation:
    ``left_of`` holds the right_of askings too), with a yes/no confusion count and calibration each."""
    rel = merge_facts(relation_records(records))
    groups: dict[str, list[Fact]] = defaultdict(list)
    for r in rel:
        groups[r.name].append(r)
    return {"per_relation": {k: _relation_block(v) for k, v in sorted(groups.items())},
            "overall": _relation_block(rel)}


def relative_error(pred: float, truth: float) -> float:
    """``|pred - truth| / |truth|`` (NaN when truth is 0)."""
    return abs(pred - truth) / abs(truth) if truth else math.nan


def within(pred: float | None, truth: float, lo: float, hi: float) -> bool:
    """True when ``lo <= pred / truth <= hi`` (truth > 0); None predictions never succeed."""
    if pred is None or not math.isfinite(pred) or truth <= 0:
        return False
    return lo <= pred / truth <= hi


def _scene_of(fact: Fact) -> object:
    """The scene a fact was asked in (its first asking's ``scene``): the bootstrap's unit."""
    return getattr(fact.askings[0], "scene", None) if fact.askings else None


def _quantity_block(records: list[Fact], min_truth_m: float) -> dict:
    valid = [r for r in records if r.truth is not None and math.isfinite(float(r.truth))]
    relative = [r for r in valid if float(r.truth) >= min_truth_m]
    near_zero = [r for r in valid if float(r.truth) < min_truth_m]
    answered = [r for r in relative if r.answered]
    abs_err = [abs(float(r.predicted) - float(r.truth)) for r in answered]
    rel_err = [relative_error(float(r.predicted), float(r.truth)) for r in answered]
    signed = [(float(r.predicted) - float(r.truth)) / float(r.truth) for r in answered]
    block = {
        "n": len(records),
        "n_askings": sum(len(r.askings) for r in records),
        "n_scored": len(relative),
        "n_failed": len(relative) - len(answered),
        "n_near_zero": len(near_zero),
        "abs_error_m": percentiles(abs_err, (50, 90)),
        "rel_error": percentiles(rel_err, (50, 90)),
        "mean_signed_rel_error": float(np.mean(signed)) if signed else math.nan,
        "near_zero_abs_error_m": percentiles(
            [abs(float(r.predicted) - float(r.truth)) for r in near_zero if r.answered], (50, 90)),
        "coverage_2sigma": {**coverage(valid),        # near-zero truths included: an absolute criterion
                            "interval_95": coverage_interval(valid, _scene_of)},
    }
    for name, lo, hi in SUCCESS_CRITERIA:
        block[name] = _ratio(sum(within(r.predicted if r.answered else None, float(r.truth), lo, hi)
                                 for r in relative), len(relative))
    return block


def score_quantities(records: Iterable[QueryRecord], min_truth_m: float = DEFAULT_MIN_TRUTH_M) -> dict:
    """Per quantity and pooled absolute/relative error, success rates and 2-sigma coverage, each fact once
    (see module docstring)."""
    qs = merge_facts(quantity_records(records))
    groups: dict[str, list[Fact]] = defaultdict(list)
    for r in qs:
        groups[r.name].append(r)
    return {"per_quantity": {k: _quantity_block(v, min_truth_m) for k, v in sorted(groups.items())},
            "overall": _quantity_block(qs, min_truth_m), "min_truth_m": min_truth_m}


def acceptance(summary: dict) -> list[dict]:
    """Checks of ``summary`` (from ``summarize``) against ``ACCEPTANCE``: name, value, threshold, passed."""
    rel, qty = summary["relations"]["overall"], summary["quantities"]["overall"]
    values = {"relation_accuracy": rel["accuracy"], "metric_within_25pct": qty["within_25pct"],
              "distance_within_10pct": summary["quantities"]["per_quantity"].get("distance", {}).get(
                  "within_10pct", math.nan),
              "metric_coverage_2sigma": qty["coverage_2sigma"]["coverage"],
              "relation_ece": rel["calibration"]["ece"],
              "relation_wrong_at_099": rel["calibration"]["wrong_high_fraction"]}
    out = []
    for key, label, threshold, direction in ACCEPTANCE:
        v = values[key]
        ok = math.isfinite(v) and (v >= threshold if direction == ">=" else v <= threshold)
        out.append({"metric": key, "criterion": label, "value": v, "threshold": threshold,
                    "direction": direction, "passed": bool(ok)})
    return out


def summarize(records: Sequence[QueryRecord], frames: FrameStats | None = None,
              min_truth_m: float = DEFAULT_MIN_TRUTH_M) -> dict:
    """Everything the report shows, as plain JSON-able values."""
    frames = frames or FrameStats()
    summary = {
        "n_records": len(records),
        "relations": score_relations(records),
        "quantities": score_quantities(records, min_truth_m),
        "latency_ms": {
            "all": percentiles(r.latency_ms for r in records),
            "relation": percentiles(r.latency_ms for r in relation_records(records)),
            "quantity": percentiles(r.latency_ms for r in quantity_records(records)),
        },
        "frames": {
            "published": frames.published, "processed": frames.processed, "dropped": frames.dropped,
            "node_dropped": frames.node_dropped,
            "frame_latency_ms": percentiles(frames.frame_latency_ms),
        },
    }
    summary["acceptance"] = acceptance(summary)
    return summary


def failure_breakdown(records: Iterable[QueryRecord], limit: int = 10) -> dict:
    """Most frequent service failure messages and the wrong relation answers, for the failure analysis."""
    failures: dict[str, int] = defaultdict(int)
    wrong: dict[str, int] = defaultdict(int)
    for r in records:
        if r.missed:                                   # not asked: the detector did not find an object
            failures[r.message.split(":")[0][:120]] += 1
        elif not r.success:
            failures[r.message.split(";")[0][:120]] += 1
        elif r.kind == "relation" and not r.ambiguous and r.truth is not None \
                and bool(r.truth) != bool(r.predicted):
            wrong[f"{r.relation_or_quantity}: truth {bool(r.truth)}, said {bool(r.predicted)}"] += 1
    top = lambda d: dict(sorted(d.items(), key=lambda kv: -kv[1])[:limit])  # noqa: E731
    return {"service_failures": top(failures), "wrong_relations": top(wrong)}
