"""Thresholded relations: a quantity compared with a threshold in metres ("Is A within 20 cm of B?").

One decision: ``q(a, b)`` (a ``quantities`` measure, or a signed difference ``q(a) - q(b)`` for "more than
5 cm taller than") against the threshold ``t``:

=============== ====================================================================================
less_than       holds when ``v < t``: margin ``m = t - v`` ("within 20 cm of", "less than 5 cm from")
more_than       holds when ``v > t``: margin ``m = v - t`` ("more than 30 cm from", "over 5 cm taller")
=============== ====================================================================================

``sigma`` is the quantity's one-sigma error (``quantities``); the confidence that the answer is right is
``relations.confidence_from_margin(m, sigma)``, ``Phi(|m| / sigma)`` in [0.5, 1]. "Within" compares the center
distance (``distance``, the quantity "How far is A from B?" reports); a difference quantity ("taller",
"wider", "higher") compares the signed difference (``quantities.signed_difference``), so "Is A more than
5 cm taller than B?" is false when A is shorter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import quantities as q
from .errors import QueryError
from .noise import DepthNoiseModel
from .observation import TrackedObject
from .relations import SIGMA_FLOOR_M, canonical_relation, confidence_from_margin
from .scene import Scene

COMPARISONS = ("less_than", "more_than")
COMPARISON_ALIASES = {"less_than": "less_than", "less": "less_than", "within": "less_than", "under": "less_than",
                      "below": "less_than", "<": "less_than", "more_than": "more_than", "more": "more_than",
                      "greater": "more_than", "greater_than": "more_than", "over": "more_than", "above": "more_than",
                      "at_least": "more_than", ">": "more_than"}
#: a signed difference ``q(a) - q(b)`` per word, "(more than 5 cm) taller than"
DIFFERENCES = {"taller": ("height", 1.0), "shorter": ("height", -1.0), "wider": ("width", 1.0),
               "narrower": ("width", -1.0), "deeper": ("depth", 1.0), "higher": ("vertical_distance", 1.0),
               "lower": ("vertical_distance", -1.0), "closer to the camera": ("distance_to_camera", -1.0),
               "farther from the camera": ("distance_to_camera", 1.0)}
MAX_THRESHOLD_M = 100.0


@dataclass(frozen=True)
class ThresholdResult:
    """``value`` compared with ``threshold_m``; ``margin_m`` > 0 <=> ``holds``; metres."""

    quantity: str                  # canonical quantity, or "<word>" of DIFFERENCES for a difference
    comparison: str                # "less_than" or "more_than"
    threshold_m: float
    value_m: float
    sigma_m: float
    holds: bool
    margin_m: float
    confidence: float              # Phi(|margin| / sigma)
    explanation: str


def canonical_comparison(text: str) -> str:
    """``less_than`` or ``more_than`` for a comparison word ("within", "more than", ">", ...)."""
    key = "_".join(text.strip().lower().split()) if isinstance(text, str) else ""
    key = key[:-5] if key.endswith("_than") and key[:-5] in COMPARISON_ALIASES else key
    if key in COMPARISON_ALIASES:
        return COMPARISON_ALIASES[key]
    raise QueryError(f"unknown comparison {text!r}; known: {', '.join(COMPARISONS)} (or 'within')")


def check_threshold(threshold_m) -> float:
    """The threshold as a float in metres; ``QueryError`` unless finite and in [0, 100] m."""
    try:
        t = float(threshold_m)
    except (TypeError, ValueError):
        raise QueryError(f"threshold must be a number of metres, not {threshold_m!r}") from None
    if not math.isfinite(t) or t < 0.0 or t > MAX_THRESHOLD_M:
        raise QueryError(f"threshold must be a finite length in [0, {MAX_THRESHOLD_M:g}] m, got {threshold_m!r}")
    return t


def evaluate_threshold(quantity: str, comparison: str, threshold_m: float, a: TrackedObject,
                       b: TrackedObject | None, scene: Scene, noise: DepthNoiseModel | None = None
                       ) -> ThresholdResult:
    """Decide ``quantity(a, b) <comparison> threshold_m``. ``quantity`` is a ``quantities`` name or alias, or a
    difference word of ``DIFFERENCES`` ("taller": ``height(a) - height(b)``). Raises ``QueryError`` for an
    unknown quantity or comparison, a bad threshold, or a missing / superfluous reference."""
    noise = noise or DepthNoiseModel()
    cmp = canonical_comparison(comparison)
    t = check_threshold(threshold_m)
    word = " ".join(str(quantity).strip().lower().split()) if isinstance(quantity, str) else ""
    if word in DIFFERENCES:
        if b is None:
            raise QueryError(f"'{word}' compares two objects; give a reference")
        base, sign = DIFFERENCES[word]
        diff = q.signed_difference(base, a, b, scene, noise)
        value, sigma, name = sign * diff.value_m, diff.uncertainty_m, word
        detail = f"{word} by {value:+.4f} m ({diff.explanation})"
    else:
        m = q.measure(quantity, a, b, scene, noise)
        value, sigma, name = m.value_m, m.uncertainty_m, m.name
        detail = f"{m.explanation}: {value:.4f} m"
    return threshold_on(q.Quantity(name, float(value), float(sigma), detail), cmp, t,
                        a.id + (f" vs {b.id}" if b is not None else ""))


def threshold_on(measured: q.Quantity, comparison: str, threshold_m: float, subject: str = "") -> ThresholdResult:
    """The decision itself: ``measured.value_m <comparison> threshold_m`` with the margin and confidence of
    the module docstring (``measured.explanation`` describes the value)."""
    cmp = canonical_comparison(comparison)
    t = check_threshold(threshold_m)
    value = float(measured.value_m)
    margin = (t - value) if cmp == "less_than" else (value - t)
    sigma = max(float(measured.uncertainty_m), SIGMA_FLOOR_M)
    holds = margin > 0.0
    confidence = confidence_from_margin(margin, sigma)
    word_cmp = "less than" if cmp == "less_than" else "more than"
    lead = f"{subject}: " if subject else ""
    explanation = (f"{lead}{measured.explanation} {'is' if holds else 'is not'} {word_cmp} {t:.4f} m; margin "
                   f"{margin:+.4f} m, sigma {sigma:.4f} m, confidence {confidence:.2f}")
    return ThresholdResult(measured.name, cmp, t, value, sigma, holds, float(margin), confidence, explanation)


def thresholded_relation(relation: str) -> tuple[str, str]:
    """``(quantity, comparison)`` that a relation with a threshold asks about (``THRESHOLD_RELATIONS``):
    "within" 0.2 = distance less than 0.2 m, "taller_than" 0.05 = more than 5 cm taller. ``QueryError`` for a
    relation that takes no threshold."""
    key = "_".join(relation.strip().lower().replace("-", " ").split()) if isinstance(relation, str) else ""
    if key not in THRESHOLD_RELATIONS:
        try:
            key = canonical_relation(relation)
        except QueryError:
            key = ""
    if key not in THRESHOLD_RELATIONS:
        raise QueryError(f"relation {relation!r} takes no threshold; with a threshold use one of "
                         f"{', '.join(THRESHOLD_RELATIONS)}")
    return THRESHOLD_RELATIONS[key]


#: relation (with a threshold ``t``) -> (quantity or difference word, comparison)
THRESHOLD_RELATIONS: dict[str, tuple[str, str]] = {
    "within": ("distance", "less_than"), "closer_than": ("distance", "less_than"),
    "farther_than": ("distance", "more_than"), "next_to": ("gap", "less_than"),
    "taller_than": ("taller", "more_than"), "shorter_than": ("shorter", "more_than"),
    "wider_than": ("wider", "more_than"), "thinner_than": ("narrower", "more_than"),
    "higher_than": ("higher", "more_than"), "lower_than": ("lower", "more_than"),
    "closer_to_camera": ("closer to the camera", "more_than"),
    "farther_from_camera": ("farther from the camera", "more_than"),
}
