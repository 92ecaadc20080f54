"""Metric quantities between objects, with one-sigma uncertainties from the depth-noise model.

Every quantity is in metres. Centers are in the camera optical frame (x right, y down, z forward); "horizontal"
and "vertical" are taken in the scene's gravity frame (z up). ``QUANTITIES`` is the table of names.

Uncertainty model (documented in the README and ``docs/uncertainty.md``): a sensor term and the lifting's own
error (``noise.lifting``, ``core.uncertainty``) in quadrature:
- an object's center, along the direction a quantity measures: sensor ``noise.center_sigma(z, n)`` (``z`` =
  depth of the center, ``n`` = valid depth pixels: per-pixel noise averaged over the object with a floor of
  half a reading, isotropic) and lifting ``noise.lifting.center(footprint, ray, up, direction)``;
- a box face / a single surface point: one reading ``noise.sigma(z)`` and ``noise.lifting.face``;
- an extent (two faces): ``sqrt(2) * noise.sigma(z)`` and ``noise.lifting.extent``;
- a difference of two independent terms adds in quadrature;
- last, a quantity's sigma is scaled by ``noise.lifting.quantity_scale(name)`` (fitted per quantity).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .errors import QueryError
from .identity_cache import IdentityCache
from .noise import DepthNoiseModel
from .observation import TrackedObject
from .scene import Scene


# ----------------------------------------------------------------------------- uncertainty of one object
def object_range(obj: TrackedObject) -> float:
    """Depth (camera z, metres) at which the noise model is evaluated for ``obj``."""
    return max(float(obj.center[2]), 0.0)


def footprint(obj: TrackedObject) -> float:
    """Larger horizontal (gravity x/y) extent of the object's box, metres."""
    return float(max(obj.size[0], obj.size[1]))


def unit(vector) -> np.ndarray | None:
    """``vector`` scaled to length 1; None for a zero vector."""
    v = np.asarray(vector, dtype=np.float64)
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else None


LEVEL_UP_C = np.array([0.0, -1.0, 0.0])


def center_sigma(obj: TrackedObject, noise: DepthNoiseModel, direction_c=None, up_c=None,
                 lifting: bool = True) -> float:
    """One-sigma error (metres) of the object's center along the unit ``direction_c`` (camera frame; None: its
    worst direction), gravity up being ``up_c`` (camera frame; None: a level camera's). ``lifting=False``: the
    sensor term alone (isotropic)."""
    n = int(obj.n_pixels) if obj.n_pixels > 0 else len(obj.points)
    sensor = float(noise.center_sigma(object_range(obj), max(n, 1)))
    if not lifting:
        return sensor
    ray = unit(obj.center)
    ray = ray if ray is not None else np.array([0.0, 0.0, 1.0])
    up = LEVEL_UP_C if up_c is None else up_c
    return math.hypot(sensor, noise.lifting.center(footprint(obj), ray, up, direction_c))


def surface_sigma(obj: TrackedObject, noise: DepthNoiseModel, axis: int | None = None,
                  lifting: bool = True) -> float:
    """One-sigma error (metres) of one surface point or box face across gravity ``axis`` (None: the worst):
    one depth reading and, with ``lifting``, the lifting's face error."""
    sensor = float(noise.sigma(object_range(obj)))
    if not lifting:
        return sensor
    axes = range(3) if axis is None else (axis,)
    return math.hypot(sensor, max(noise.lifting.face(float(obj.size[i]), i) for i in axes))


def extent_sigma(obj: TrackedObject, noise: DepthNoiseModel, axis: int | None = None,
                 lifting: bool = True) -> float:
    """One-sigma error (metres) of the box extent along gravity ``axis`` (0 width, 1 depth, 2 height; None: the
    worst): two faces of one reading each and, with ``lifting``, the lifting's extent error."""
    sensor = math.sqrt(2.0) * float(noise.sigma(object_range(obj)))
    if not lifting:
        return sensor
    axes = range(3) if axis is None else (axis,)
    return math.hypot(sensor, max(noise.lifting.extent(float(obj.size[i]), i) for i in axes))


def quadrature(*sigmas: float) -> float:
    return float(math.sqrt(sum(s * s for s in sigmas)))


# ----------------------------------------------------------------------------- geometry
def box_of(obj: TrackedObject) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) corners of the object's gravity-frame box, metres."""
    return np.asarray(obj.box_min, dtype=np.float64), np.asarray(obj.box_max, dtype=np.float64)


def box_contains(obj: TrackedObject, point_g: np.ndarray) -> bool:
    lo, hi = box_of(obj)
    return bool(np.all(point_g >= lo) and np.all(point_g <= hi))


def box_gap(a: TrackedObject, b: TrackedObject) -> float:
    """Euclidean distance (metres) between the two gravity-frame boxes; 0 when they touch or overlap."""
    (alo, ahi), (blo, bhi) = box_of(a), box_of(b)
    sep = np.maximum(0.0, np.maximum(alo - bhi, blo - ahi))
    return float(np.linalg.norm(sep))


def cloud_gap(a: TrackedObject, b: TrackedObject, scene: Scene) -> float:
    """Closest distance (metres) between the two objects' surfaces.

    0 when one object's center lies inside the other's box (contained or interpenetrating, e.g. fruit in a
    bowl); otherwise the smallest distance between the two point clouds (scipy ``cKDTree``); the box-to-box
    distance when either cloud is empty.
    """
    if box_contains(b, scene.center_gravity(a)) or box_contains(a, scene.center_gravity(b)):
        return 0.0
    pa = np.asarray(a.points, dtype=np.float64).reshape(-1, 3)
    pb = np.asarray(b.points, dtype=np.float64).reshape(-1, 3)
    if len(pa) == 0 or len(pb) == 0:
        return box_gap(a, b)
    (small, _), (_, large) = sorted(((pa, a.points), (pb, b.points)), key=lambda pair: len(pair[0]))
    return closest_distance(small, points_tree(large))


def closest_distance(points: np.ndarray, tree: cKDTree) -> float:
    """Exact smallest distance (metres) between ``points`` (N, 3) and the points of ``tree``.

    An upper bound first, from the few points nearest to the tree's bounding box; then only the points
    within that bound of the box are searched, each search cut off at the bound. The same minimum as a
    full nearest-neighbour query, at a third of its cost for objects side by side on a table.
    """
    excess = np.maximum(np.maximum(tree.mins - points, points - tree.maxes), 0.0)
    to_box = np.sqrt(np.einsum("ij,ij->i", excess, excess))
    k = min(8, len(points))
    nearest_to_box = np.argpartition(to_box, k - 1)[:k]
    bound = float(np.min(tree.query(points[nearest_to_box], k=1)[0]))
    candidates = points[to_box < bound]
    if len(candidates) == 0:
        return bound
    dist, _ = tree.query(candidates, k=1, distance_upper_bound=bound)
    return float(min(bound, np.min(dist)))


#: points array -> its KD-tree, while the array lives
_TREES: IdentityCache[cKDTree] = IdentityCache()


def points_tree(points: np.ndarray) -> cKDTree:
    """KD-tree of an (N, 3) points array, built once per array object and reused while the array lives.

    A planner asks many pair questions about one scene snapshot; each object's tree is then built once, not
    once per question (arrays are never modified in place once an object holds them).
    """
    # a copy: the tree must not keep `points` alive
    return _TREES.get(points, lambda: cKDTree(np.array(points, dtype=np.float64).reshape(-1, 3)))


# ----------------------------------------------------------------------------- quantities
@dataclass(frozen=True)
class Quantity:
    """A measured quantity: value and one-sigma uncertainty in metres."""

    name: str
    value_m: float
    uncertainty_m: float
    explanation: str = ""


def _distance(a, b, scene, noise):
    v = np.asarray(a.center, float) - np.asarray(b.center, float)
    u, up = unit(v), scene.gravity.up
    s = quadrature(center_sigma(a, noise, u, up), center_sigma(b, noise, u, up))
    d = float(np.linalg.norm(v))
    return d, s, "euclidean distance between the box centers"


def _gap(a, b, scene, noise):
    g = cloud_gap(a, b, scene)
    s = quadrature(surface_sigma(a, noise), surface_sigma(b, noise))
    return g, s, "closest distance between the two surfaces (0 if overlapping)"


def _horizontal_distance(a, b, scene, noise):
    d = scene.center_gravity(a)[:2] - scene.center_gravity(b)[:2]
    u, up = unit(scene.gravity.to_camera(np.array([d[0], d[1], 0.0]))), scene.gravity.up
    s = quadrature(center_sigma(a, noise, u, up), center_sigma(b, noise, u, up))
    return float(np.linalg.norm(d)), s, "distance between the centers in the horizontal (gravity x-y) plane"


def _vertical_distance(a, b, scene, noise):
    d = scene.center_gravity(a)[2] - scene.center_gravity(b)[2]
    up = scene.gravity.up
    s = quadrature(center_sigma(a, noise, up, up), center_sigma(b, noise, up, up))
    return abs(float(d)), s, "difference of the centers' heights along gravity"


def _extent(axis: int, what: str):
    def fn(a, b, scene, noise):
        return float(a.size[axis]), extent_sigma(a, noise, axis), f"{what} of the gravity-aligned box"
    return fn


def _distance_to_camera(a, b, scene, noise):
    return (float(np.linalg.norm(a.center)), center_sigma(a, noise, unit(a.center), scene.gravity.up),
            "distance from the camera center to the box center")


@dataclass(frozen=True)
class QuantitySpec:
    name: str
    binary: bool                      # needs a reference object
    fn: Callable                      # (a, b, scene, noise) -> (value_m, sigma_m, definition)
    definition: str


QUANTITIES: dict[str, QuantitySpec] = {spec.name: spec for spec in (
    QuantitySpec("distance", True, _distance, "euclidean distance between the 3D box centers"),
    QuantitySpec("gap", True, _gap, "closest distance between the two point clouds (0 if one object's center "
                 "is inside the other's box)"),
    QuantitySpec("horizontal_distance", True, _horizontal_distance,
                 "distance between the centers projected on the horizontal plane (gravity x-y)"),
    QuantitySpec("vertical_distance", True, _vertical_distance,
                 "absolute difference of the centers' heights (gravity z)"),
    QuantitySpec("width", False, _extent(0, "width (gravity x extent)"), "gravity-frame x extent of the box"),
    QuantitySpec("depth", False, _extent(1, "depth (gravity y extent)"), "gravity-frame y extent of the box"),
    QuantitySpec("height", False, _extent(2, "height (gravity z extent)"), "gravity-frame z extent of the box"),
    QuantitySpec("distance_to_camera", False, _distance_to_camera,
                 "euclidean distance from the camera center to the box center"),
)}

ALIASES: dict[str, str] = {name: name for name in QUANTITIES}
ALIASES.update({
    "dist": "distance", "distance between": "distance", "separation": "distance", "how far": "distance",
    "center distance": "distance", "centre distance": "distance",
    "clearance": "gap", "free space": "gap", "closest distance": "gap", "space": "gap", "spacing": "gap",
    "horizontal distance": "horizontal_distance", "horizontal": "horizontal_distance",
    "vertical distance": "vertical_distance", "vertical": "vertical_distance",
    "height difference": "vertical_distance", "elevation difference": "vertical_distance",
    "wide": "width", "breadth": "width", "tall": "height", "deep": "depth",
    "distance to camera": "distance_to_camera", "distance to the camera": "distance_to_camera",
    "distance from camera": "distance_to_camera", "distance from the camera": "distance_to_camera",
    "range": "distance_to_camera", "camera distance": "distance_to_camera",
})


def canonical_quantity(name: str) -> str:
    """Canonical quantity name for a name or alias (case/underscore-insensitive); QueryError if unknown."""
    if not isinstance(name, str):
        raise QueryError("quantity must be a string")
    key = " ".join(name.strip().lower().replace("_", " ").replace("-", " ").split())
    if key in ALIASES:
        return ALIASES[key]
    if key.replace(" ", "_") in QUANTITIES:
        return key.replace(" ", "_")
    raise QueryError(f"unknown quantity '{name}'; known quantities: {', '.join(QUANTITIES)}")


def is_binary(quantity: str) -> bool:
    """True when ``quantity`` (name or alias) needs a reference object."""
    return QUANTITIES[canonical_quantity(quantity)].binary


def measure(quantity: str, a: TrackedObject, b: TrackedObject | None, scene: Scene,
            noise: DepthNoiseModel) -> Quantity:
    """Measure ``quantity`` on ``a`` (and reference ``b`` for binary quantities) in metres.

    Raises QueryError for an unknown quantity, a missing reference, a reference given to a one-object quantity
    or the same object as subject and reference.
    """
    name = canonical_quantity(quantity)
    spec = QUANTITIES[name]
    if spec.binary:
        if b is None:
            raise QueryError(f"'{name}' needs a reference object")
        if b.id == a.id:
            raise QueryError(f"'{name}' needs two different objects; both are {a.id}")
    elif b is not None:
        raise QueryError(f"'{name}' is measured on one object; leave the reference empty")
    value, sigma, definition = spec.fn(a, b, scene, noise)
    return Quantity(name, float(value), float(sigma) * noise.lifting.quantity_scale(name), f"{name}: {definition}")


def signed_difference(quantity: str, a: TrackedObject, b: TrackedObject, scene: Scene,
                      noise: DepthNoiseModel) -> Quantity:
    """Signed ``q(a) - q(b)`` in metres, for "how much taller/wider is a than b" questions.

    ``quantity`` is a one-object quantity (width, height, depth, distance_to_camera), or ``vertical_distance``
    for the signed height difference of the centers along gravity ("how much higher is a than b").
    """
    name = canonical_quantity(quantity)
    if b is None or b.id == a.id:
        raise QueryError(f"a difference of '{name}' needs two different objects")
    if name == "vertical_distance":
        value = float(scene.center_gravity(a)[2] - scene.center_gravity(b)[2])
        up = scene.gravity.up
        sigma = quadrature(center_sigma(a, noise, up, up), center_sigma(b, noise, up, up))
        return Quantity(name, value, sigma * noise.lifting.quantity_scale(name),
                        f"height of {a.id}'s center minus {b.id}'s, along gravity")
    spec = QUANTITIES[name]
    if spec.binary:
        raise QueryError(f"'{name}' already compares two objects; a difference needs a one-object quantity")
    va, sa, _ = spec.fn(a, None, scene, noise)
    vb, sb, _ = spec.fn(b, None, scene, noise)
    return Quantity(name, float(va - vb), quadrature(sa, sb) * noise.lifting.quantity_scale(name),
                    f"{name} of {a.id} minus {name} of {b.id}")


def vertical_gap(a: TrackedObject, b: TrackedObject, noise: DepthNoiseModel) -> Quantity:
    """Signed ``lo_a.z - hi_b.z`` in metres: how high a's bottom is above b's top along gravity ("How high is
    the box above the table?"; negative when a's bottom is lower), sigma from the two horizontal faces. Not a
    ``QUANTITIES`` entry: asked through ``core.support_surface.height_above`` and the question parser."""
    if b is None or b.id == a.id:
        raise QueryError("a vertical gap needs two different objects")
    (alo, _), (_, bhi) = box_of(a), box_of(b)
    sigma = quadrature(surface_sigma(a, noise, 2), surface_sigma(b, noise, 2))
    return Quantity("vertical_gap", float(alo[2] - bhi[2]), sigma,
                    f"vertical_gap: bottom of {a.id} minus the top of {b.id}, along gravity")
