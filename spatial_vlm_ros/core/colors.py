"""Coarse color words for object colors (the words people use to tell objects apart: "the red mug").

Colors are RGB 0-255. The word is decided in HSV: low saturation gives black/gray/white by brightness;
otherwise the hue picks the name, with dark oranges called brown. Bright pastels (saturation 0.12-0.25,
value above 0.75) keep their hue's name, and a pastel red is called pink, as people say.
"""
from __future__ import annotations

import colorsys

import numpy as np

COLOR_NAMES = ("red", "orange", "brown", "yellow", "green", "cyan", "blue", "purple", "pink",
               "white", "gray", "black")

# Hue (degrees) upper bounds of the chromatic names, in order around the circle.
_HUES = ((15.0, "red"), (40.0, "orange"), (70.0, "yellow"), (165.0, "green"), (195.0, "cyan"),
         (260.0, "blue"), (290.0, "purple"), (340.0, "pink"), (360.0, "red"))
_PASTEL_SATURATION = 0.12      # below it a bright color is white (white objects under tinted light)


def color_name(rgb) -> str:
    """Color word for one ``(r, g, b)`` color, 0-255 (see ``COLOR_NAMES``)."""
    r, g, b = (min(max(float(c), 0.0), 255.0) / 255.0 for c in rgb)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    hue = h * 360.0
    if v < 0.2:
        return "black"
    if s < _PASTEL_SATURATION or (s < 0.25 and v <= 0.75) or (s < 0.4 and v < 0.35):
        return "white" if v > 0.75 else "gray"
    if s < 0.25:                                   # a bright pastel
        name = _hue_name(hue, v)
        return "pink" if name == "red" else name
    return _hue_name(hue, v)


def _hue_name(hue: float, v: float) -> str:
    """Chromatic name of a hue in degrees (``v``: HSV value 0-1, dark oranges are brown)."""
    for bound, name in _HUES:
        if hue < bound:
            if name == "orange" and v < 0.6:
                return "brown"
            return name
    return "red"


def median_color(pixels: np.ndarray) -> tuple[int, int, int]:
    """Per-channel median of (N, 3) uint8 RGB pixels; (0, 0, 0) when there are none."""
    p = np.asarray(pixels).reshape(-1, 3)
    if p.shape[0] == 0:
        return (0, 0, 0)
    med = np.sort(p, axis=0)[p.shape[0] // 2]         # upper median: an actual pixel value per channel
    return (int(med[0]), int(med[1]), int(med[2]))
