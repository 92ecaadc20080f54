"""The lifting's own error: what an object's center and extents get wrong beyond the sensor's per-pixel noise.

The sensor term (``noise.DepthNoiseModel``) averages per-pixel noise over an object's pixels. The lifting adds
errors that do not average out: the hidden back of the object is completed from the visible front (amodal
completion), edges are eroded or lost to holes, flying pixels and shadows bend extents, the support plane the
boxes are aligned to is biased. A center errs mostly along the viewing ray (the completion of the hidden
side) and least vertically (the support plane fixes bottoms), an extent mostly along the gravity frame's
forward axis (the depth of the object). ``LiftingError``
models their one-sigma size (metres):

- center, in three directions: along the viewing ray ``r``, across it horizontally ``h = unit(up x r)``, and
  across it in the vertical plane ``v = r x h``: ``<term>_m + <term>_size_fraction * footprint`` each
  (``footprint`` = the larger horizontal extent of the box); along a unit direction ``u`` the three add in
  quadrature, ``sqrt(sum((sigma_k (u . e_k))^2))``;
- extent ``i`` of the gravity-aligned box (width, depth, height): ``extent_floor_m[i] + extent_fraction[i] *
  extent_i``; one box face has ``1/sqrt(2)`` of it;
- relations scale their margin's sigma by ``relation_sigma_scale``: the objects of one scene err together
  (one support plane, one sensor bias), so the difference a relation compares is more certain than the
  quadrature of the two objects' sigmas;
- each quantity's whole sigma is scaled by its ``quantity_sigma_scale`` (1 where a quantity is not named):
  the same correlation for two-object quantities (two centers on one support plane err together
  vertically), and what the per-direction terms miss for the others.

The coefficients are fitted from the simulator's residuals (``benchmarks/fit_uncertainty.py``; values and
coverage in ``docs/uncertainty.md``) and added in quadrature to the sensor term by ``core.quantities``.
The default (all zero, scale 1) is the sensor term alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError

Vec3 = tuple[float, float, float]
ZERO: Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class LiftingError:
    """One-sigma lifting error terms: metres (``*_m``) or unitless; extents per gravity axis (x, y, z)."""

    center_ray_m: float = 0.0
    center_ray_size_fraction: float = 0.0
    center_across_m: float = 0.0
    center_across_size_fraction: float = 0.0
    center_vertical_m: float = 0.0
    center_vertical_size_fraction: float = 0.0
    extent_floor_m: Vec3 = ZERO
    extent_fraction: Vec3 = ZERO
    relation_sigma_scale: float = 1.0
    #: (quantity, scale > 0) pairs or a dict; stored as sorted pairs with the 1s left out
    quantity_sigma_scale: tuple[tuple[str, float], ...] | dict[str, float] = ()

    def __post_init__(self):
        scales = self.quantity_sigma_scale
        pairs = tuple(sorted(scales.items() if isinstance(scales, dict) else scales))
        for name, value in pairs:
            if not (isinstance(name, str) and isinstance(value, (int, float)) and 0.0 < value <= 10.0):
                raise InputError(f"lifting error quantity_sigma_scale {name!r} must be in (0, 10], got {value!r}")
        object.__setattr__(self, "quantity_sigma_scale", tuple((n, float(v)) for n, v in pairs if v != 1.0))
        for name, value in vars(self).items():
            if name == "quantity_sigma_scale":
                continue
            v = tuple(float(x) for x in value) if isinstance(value, (tuple, list)) else (float(value),)
            top = 10.0 if name == "relation_sigma_scale" else 1.0
            if len(v) not in (1, 3) or not all(math.isfinite(x) and 0.0 <= x <= top for x in v) \
                    or (name == "relation_sigma_scale" and v[0] <= 0.0):
                raise InputError(f"lifting error {name} must be in [0, {top:g}] (a scale > 0), got {value!r}")
            object.__setattr__(self, name, v if len(v) == 3 else v[0])

    def center_axes(self, footprint_m: float) -> np.ndarray:
        """(3,) one-sigma center error along the ray, across it horizontally and in the vertical plane, m."""
        size = max(footprint_m, 0.0)
        return np.array([self.center_ray_m + self.center_ray_size_fraction * size,
                         self.center_across_m + self.center_across_size_fraction * size,
                         self.center_vertical_m + self.center_vertical_size_fraction * size])

    def center(self, footprint_m: float, ray_c, up_c, direction_c=None) -> float:
        """One-sigma error of the center along the unit ``direction_c`` (camera frame), for a center seen along
        the unit ``ray_c`` with gravity up ``up_c``, metres; ``None``: along its worst direction."""
        s = self.center_axes(footprint_m)
        if direction_c is None:
            return float(np.max(s))
        return float(np.linalg.norm(s * (ray_basis(ray_c, up_c) @ np.asarray(direction_c, dtype=np.float64))))

    def extent(self, extent_m: float, axis: int) -> float:
        """One-sigma error of the box extent along gravity ``axis`` (0 width, 1 depth, 2 height), metres."""
        return self.extent_floor_m[axis] + self.extent_fraction[axis] * max(extent_m, 0.0)

    def quantity_scale(self, quantity: str) -> float:
        """The factor on the whole sigma of ``quantity`` (canonical name); 1 where none is set."""
        return dict(self.quantity_sigma_scale).get(quantity, 1.0)

    def face(self, extent_m: float, axis: int) -> float:
        """One-sigma error of one box face across gravity ``axis``, metres."""
        return self.extent(extent_m, axis) / math.sqrt(2.0)


def ray_basis(ray_c, up_c) -> np.ndarray:
    """(3, 3) rows: the unit ray, the horizontal unit vector across it, the unit vector across it in the
    vertical plane (camera frame). A ray along up takes the camera x axis as its horizontal."""
    rx, ry, rz = (float(v) for v in ray_c)
    ux, uy, uz = (float(v) for v in up_c)
    # cross products written out: np.cross on 3-vectors costs more than the rest of a relation query
    hx, hy, hz = uy * rz - uz * ry, uz * rx - ux * rz, ux * ry - uy * rx          # up x ray
    n = math.sqrt(hx * hx + hy * hy + hz * hz)
    hx, hy, hz = (hx / n, hy / n, hz / n) if n > 1e-9 else (1.0, 0.0, 0.0)
    return np.array([[rx, ry, rz], [hx, hy, hz],
                     [ry * hz - rz * hy, rz * hx - rx * hz, rx * hy - ry * hx]])      # ray x h


#: fitted on the tuning seeds of the simulator with all three sensor models pooled (``benchmarks/
#: fit_uncertainty.py --sensor stereo gaussian tof --seeds 101 102 103``); the node's default
FITTED_LIFTING_ERROR = LiftingError(
    center_ray_m=0.0047, center_ray_size_fraction=0.0192, center_across_m=0.0026, center_across_size_fraction=0.0,
    center_vertical_m=0.0035, center_vertical_size_fraction=0.0155, extent_floor_m=(0.0055, 0.0134, 0.0),
    extent_fraction=(0.0, 0.0477, 0.0), relation_sigma_scale=0.45,
    quantity_sigma_scale={"depth": 1.03, "distance": 1.3, "distance_to_camera": 1.13, "gap": 0.74, "height": 1.11,
                          "horizontal_distance": 1.27, "vertical_distance": 0.5, "width": 1.03})
