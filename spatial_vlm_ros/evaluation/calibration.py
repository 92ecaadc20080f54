"""Is the reported uncertainty right? 2-sigma coverage of quantities, calibration of relation confidences.

- Coverage: the share of answered quantities with ``|predicted - truth| <= k * uncertainty`` (``k`` = 2; the
  service's ``uncertainty`` is one sigma, so a calibrated Gaussian error covers 95.4 %). Answers without an
  uncertainty are not counted (``n`` says how many were).
- Coverage interval: a scene-bootstrap interval of that share (``coverage_interval``), so a cell of a few
  hundred facts is judged by what its sample can tell: with 300 independent facts a calibrated 95.4 % reads
  between 93 and 97.7 % one time in twenty.
- Relations: ``confidence`` is the service's probability that its answer (holds or not) is right. The
  reliability table puts answers in equal-width confidence bins over [0, 1] and compares each bin's mean
  confidence with its accuracy; the expected calibration error (ECE) is the answer-weighted mean of
  ``|accuracy - mean confidence|`` over the bins. ``high`` counts the answers at confidence >= 0.99 and the
  wrong ones among them.
Inputs are ``facts.Fact`` objects (or anything with ``answered``, ``truth``, ``predicted``, ``confidence`` /
``uncertainty``); metres.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

COVERAGE_SIGMAS = 2.0
RELIABILITY_BINS = 10
HIGH_CONFIDENCE = 0.99


def coverage(items: Iterable, sigmas: float = COVERAGE_SIGMAS) -> dict:
    """``{"n", "covered", "coverage"}`` of the answered items that carry a finite, non-negative uncertainty."""
    n = covered = 0
    for it in items:
        s = it.uncertainty
        if not it.answered or it.truth is None or s is None or not math.isfinite(s) or s < 0:
            continue
        n += 1
        covered += abs(float(it.predicted) - float(it.truth)) <= sigmas * s
    return {"n": n, "covered": covered, "coverage": covered / n if n else math.nan, "sigmas": sigmas}



def coverage_interval(items: Iterable, group_of, level: float = 0.95, n_boot: int = 2000, seed: int = 0,
                      sigmas: float = COVERAGE_SIGMAS) -> tuple[float, float]:
    """Scene-bootstrap ``level`` interval of the ``coverage`` of ``items``: the groups (``group_of(item)``,
    e.g. the scene) are resampled with replacement, because the facts of one scene share its objects' errors
    and are not independent. (NaN, NaN) without items."""
    hits: dict[object, list[int]] = {}
    for it in items:
        s = it.uncertainty
        if not it.answered or it.truth is None or s is None or not math.isfinite(s) or s < 0:
            continue
        h = hits.setdefault(group_of(it), [0, 0])
        h[0] += abs(float(it.predicted) - float(it.truth)) <= sigmas * s
        h[1] += 1
    if not hits:
        return (math.nan, math.nan)
    covered, n = np.array(list(hits.values()), dtype=np.float64).T
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(n), np.full(len(n), 1.0 / len(n)), size=n_boot)   # (n_boot, groups)
    boot = (weights @ covered) / np.maximum(weights @ n, 1.0)
    lo, hi = np.quantile(boot, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return (float(lo), float(hi))

def _confident(items: Iterable) -> tuple[np.ndarray, np.ndarray]:
    conf, right = [], []
    for it in items:
        c = it.confidence
        if not it.answered or it.truth is None or c is None or not math.isfinite(c):
            continue
        conf.append(float(c))
        right.append(bool(it.predicted) == bool(it.truth))
    return np.asarray(conf, dtype=np.float64), np.asarray(right, dtype=bool)


def reliability(items: Iterable, bins: int = RELIABILITY_BINS,
                high: float = HIGH_CONFIDENCE) -> dict:
    """Reliability table, ECE and the high-confidence errors of answered relation items (module docstring).

    ``table``: one row per non-empty bin ``{"lo", "hi", "n", "mean_confidence", "accuracy"}`` (a bin holds
    ``lo <= c < hi``, the last one also ``c == 1``)."""
    if bins < 1:
        raise ValueError(f"reliability: bins must be >= 1, got {bins}")
    conf, right = _confident(items)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        sel = index == b
        n = int(sel.sum())
        if not n:
            continue
        mc, acc = float(conf[sel].mean()), float(right[sel].mean())
        ece += n * abs(acc - mc)
        table.append({"lo": round(float(edges[b]), 6), "hi": round(float(edges[b + 1]), 6), "n": n,
                      "mean_confidence": mc, "accuracy": acc})
    hi = conf >= high
    n_high, wrong_high = int(hi.sum()), int((hi & ~right).sum())
    return {"n": int(conf.size), "ece": ece / conf.size if conf.size else math.nan, "bins": bins,
            "table": table, "high_threshold": high, "n_high": n_high, "wrong_high": wrong_high,
            "wrong_high_fraction": wrong_high / n_high if n_high else math.nan,
            "mean_confidence": float(conf.mean()) if conf.size else math.nan,
            "accuracy": float(right.mean()) if conf.size else math.nan}


def reliability_lines(rel: dict) -> Sequence[str]:
    """Markdown table of ``reliability(...)["table"]``."""
    out = ["| confidence bin | answers | mean confidence | accuracy | gap |", "|---|---|---|---|---|"]
    for row in rel["table"]:
        close = "]" if row["hi"] >= 1.0 else ")"
        out.append(f"| [{row['lo']:.1f}, {row['hi']:.1f}{close} | {row['n']} | {row['mean_confidence']:.3f} | "
                   f"{row['accuracy']:.3f} | {row['accuracy'] - row['mean_confidence']:+.3f} |")
    return out
