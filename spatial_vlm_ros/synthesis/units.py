"""Metric answers in human-like units and rounding, as SpatialVLM's answers are phrased.

Lengths below one metre are said in centimetres, from one metre on in metres, rounded to two significant
figures ("7.3 centimeters", "23 centimeters", "1.2 meters", "12 meters"); a value that rounds to 100 cm is
said as "1 meter". The exact value travels beside the text (the dataset's ``value_m``). The words are
spelled out so that ``vlm.answer_parsing.parse_length`` reads them back.
"""
from __future__ import annotations

import math

SIGNIFICANT_FIGURES = 2


def round_significant(value: float, figures: int = SIGNIFICANT_FIGURES) -> float:
    """``value`` rounded to ``figures`` significant figures (0 stays 0)."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    digits = figures - 1 - math.floor(math.log10(abs(value)))
    return round(float(value), digits)


def _number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def human_length(value_m: float) -> str:
    """"23 centimeters", "7.3 centimeters", "1 meter", "1.2 meters" for a length in metres (magnitude)."""
    m = abs(float(value_m))
    if not math.isfinite(m):
        raise ValueError(f"not a finite length: {value_m!r}")
    cm = round_significant(m * 100.0)
    if cm < 100.0:
        return f"{_number(cm)} centimeter" + ("" if cm == 1.0 else "s")
    metres = max(round_significant(m), 1.0)          # 99.5 cm rounds up to 100 cm: "1 meter"
    return f"{_number(metres)} meter" + ("" if metres == 1.0 else "s")


def spoken_value_m(value_m: float) -> float:
    """The length (metres) that ``human_length(value_m)`` says, e.g. 0.23 for 0.2347."""
    m = abs(float(value_m))
    cm = round_significant(m * 100.0)
    return cm / 100.0 if cm < 100.0 else max(round_significant(m), 1.0)
