"""Spatial relations: THE one place where every predicate is decided.

Each predicate ``R(a, b)`` ("a is R b", ``a`` = subject, ``b`` = reference) computes a signed margin ``m`` in
metres (``m > 0`` <=> the relation holds) and the one-sigma error ``s`` of that margin from the depth-noise
model at the objects' ranges. The confidence that the answer (holds or not) is right is ``Phi(|m| / s)``, in
[0.5, 1]: 0.5 means the sensor cannot tell. Relations built from several conditions take the smallest margin
(a fuzzy AND). ``RELATIONS`` maps canonical names to their definitions; ``ALIASES`` maps every accepted
phrasing ("left", "to the left of", "larger") to a canonical name.

Frames: centers in the camera optical frame (x right, y down, z forward); boxes, heights and footprints in
the scene's gravity frame (z up, x right, y forward). Gravity-dependent predicates never use the camera's
own up axis, so they stay right when the camera is pitched or rolled. The definitions, with the notation
used in the README (``c`` center, ``g`` gravity center, ``lo``/``hi`` box corners, ``w, d, h`` width, depth,
height, ``sc`` center sigma, ``se`` surface sigma, see ``quantities``):

=================== ==========================================================================================
left_of             ``m = c_b.x - c_a.x``; ``s = sqrt(sc_a^2 + sc_b^2)``; right_of is its mirror
in_front_of         ``m = c_b.z - c_a.z`` (camera depth); behind is its mirror
closer_to_camera    ``m = |c_b| - |c_a|``; farther_from_camera is its mirror
higher_than         ``m = g_a.z - g_b.z``; lower_than is its mirror
above               ``min(lo_a.z - (hi_b.z - t_c), overlap_xy(a, b) + t_o)``; s = sqrt(se_a^2 + se_b^2);
                    below(a, b) = above(b, a)
on_top_of           ``min((t_c + s') - |lo_a.z - hi_b.z|, t_o - sd_xy(g_a, footprint_b))``, ``s'`` = the
                    sensor part of ``sqrt(se_a^2 + se_b^2)`` (the lifting term widens the sigma, not the rule)
taller_than         ``m = h_a - h_b``; ``s = sqrt(sx_a^2 + sx_b^2)`` (extent sigmas); shorter_than is its mirror
wider_than          ``m = w_a - w_b`` (gravity x extent); thinner_than is its mirror
bigger_than         ``m = cbrt(V_a) - cbrt(V_b)``, ``V = w d h`` (edge of the equal-volume cube, metres);
                    smaller_than is its mirror
next_to             ``min(tau - gap(a, b), overlap_z(a, b) - 0.25 min(h_a, h_b))``,
                    ``tau = max(0.05, 0.5 * mean(max(w_a, d_a), max(w_b, d_b)))``; symmetric
=================== ==========================================================================================

``t_c`` = contact tolerance (2 cm), ``t_o`` = footprint overlap tolerance (2 cm), ``overlap_xy`` = the smaller
of the x and y overlaps of the two footprints (negative = separation), ``sd_xy`` = signed distance from a point
to a footprint rectangle (negative inside), ``gap`` = closest distance between the point clouds. Every
sigma includes the lifting's own error (``core.uncertainty``) in quadrature with the sensor's.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import quantities as q
from .errors import QueryError
from .noise import DepthNoiseModel
from .observation import TrackedObject
from .scene import Scene

SIGMA_FLOOR_M = 1e-4
CAMERA_X = np.array([1.0, 0.0, 0.0])
CAMERA_Z = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class RelationParams:
    """Tolerances of the gravity and proximity predicates, metres."""

    contact_tolerance_m: float = 0.02      # on_top_of: |bottom(a) - top(b)| allowed; above: b's top slack
    overlap_tolerance_m: float = 0.02      # above/on_top_of: footprint overlap slack
    next_to_min_m: float = 0.05            # next_to: smallest gap threshold
    next_to_size_factor: float = 0.5       # next_to: threshold as a fraction of the objects' mean footprint
    next_to_side_fraction: float = 0.25    # next_to: vertical overlap needed, fraction of the shorter height


@dataclass(frozen=True)
class RelationResult:
    """Outcome of one predicate. ``margin_m`` > 0 <=> ``holds``; ``confidence`` = Phi(|margin| / sigma)."""

    relation: str
    holds: bool
    confidence: float
    margin_m: float
    explanation: str
    sigma_m: float = 0.0


class _Pair:
    """Geometry of (subject a, reference b) in the scene, computed once per evaluation."""

    def __init__(self, a: TrackedObject, b: TrackedObject, scene: Scene, noise: DepthNoiseModel):
        self.a, self.b, self.scene, self.noise = a, b, scene, noise
        self.ca = np.asarray(a.center, dtype=np.float64)
        self.cb = np.asarray(b.center, dtype=np.float64)
        self.ga = scene.center_gravity(a)
        self.gb = scene.center_gravity(b)
        self.lo_a, self.hi_a = q.box_of(a)
        self.lo_b, self.hi_b = q.box_of(b)
        self.size_a = np.asarray(a.size, dtype=np.float64)
        self.size_b = np.asarray(b.size, dtype=np.float64)
        self.se = q.quadrature(q.surface_sigma(a, noise), q.surface_sigma(b, noise))  # difference of faces
        # the sensor part of it: on_top_of's contact tolerance (a definition, not a confidence) uses only this
        self.se_sensor = q.quadrature(q.surface_sigma(a, noise, lifting=False),
                                      q.surface_sigma(b, noise, lifting=False))

    def sc(self, direction_c=None) -> float:
        """One-sigma error of the difference of the two centers along the unit ``direction_c`` (camera frame;
        None: the worst direction), metres."""
        u, up = (q.unit(direction_c) if direction_c is not None else None), self.scene.gravity.up
        return q.quadrature(q.center_sigma(self.a, self.noise, u, up), q.center_sigma(self.b, self.noise, u, up))

    def se_axis(self, axes) -> float:
        """One-sigma error of the difference of two faces across the worst of gravity ``axes``, metres."""
        return max(q.quadrature(q.surface_sigma(self.a, self.noise, i), q.surface_sigma(self.b, self.noise, i))
                   for i in axes)

    def sx(self, axis: int) -> float:
        """One-sigma error of the difference of the two objects' extents along gravity ``axis``, metres."""
        return q.quadrature(q.extent_sigma(self.a, self.noise, axis), q.extent_sigma(self.b, self.noise, axis))

    def swapped(self) -> _Pair:
        return _Pair(self.b, self.a, self.scene, self.noise)


Predicate = Callable[[_Pair, RelationParams], "tuple[float, float, str]"]   # -> margin, sigma, detail


def _m(v: float) -> str:
    return f"{v:+.3f} m"


# ----------------------------------------------------------------------------- camera-frame predicates
def _left_of(p: _Pair, prm: RelationParams):
    return (p.cb[0] - p.ca[0], p.sc(CAMERA_X),
            f"camera x of the centers: {p.a.id} {_m(p.ca[0])}, {p.b.id} {_m(p.cb[0])}")


def _in_front_of(p: _Pair, prm: RelationParams):
    return (p.cb[2] - p.ca[2], p.sc(CAMERA_Z),
            f"camera depth of the centers: {p.a.id} {p.ca[2]:.3f} m, {p.b.id} {p.cb[2]:.3f} m")


def _closer_to_camera(p: _Pair, prm: RelationParams):
    ra, rb = float(np.linalg.norm(p.ca)), float(np.linalg.norm(p.cb))
    radial = p.ca / max(ra, 1e-9) + p.cb / max(rb, 1e-9)
    return rb - ra, p.sc(radial), f"distance camera to center: {p.a.id} {ra:.3f} m, {p.b.id} {rb:.3f} m"


# ----------------------------------------------------------------------------- gravity predicates
def _higher_than(p: _Pair, prm: RelationParams):
    return (p.ga[2] - p.gb[2], p.sc(p.scene.gravity.up),
            f"height of the centers along gravity: {p.a.id} {_m(p.ga[2])}, {p.b.id} {_m(p.gb[2])}")


def _footprint_overlap(p: _Pair) -> float:
    """Smaller of the x and y overlaps of the two gravity footprints (metres; negative = separated)."""
    overlap = np.minimum(p.hi_a[:2], p.hi_b[:2]) - np.maximum(p.lo_a[:2], p.lo_b[:2])
    return float(np.min(overlap))


def _signed_distance_to_footprint(point_xy: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Signed distance (metres) from a horizontal point to a rectangle: negative inside, positive outside."""
    d = np.maximum(lo[:2] - point_xy, point_xy - hi[:2])
    return float(np.linalg.norm(np.maximum(d, 0.0)) + min(float(np.max(d)), 0.0))


def _above(p: _Pair, prm: RelationParams):
    vertical = p.lo_a[2] - (p.hi_b[2] - prm.contact_tolerance_m)
    horizontal = _footprint_overlap(p) + prm.overlap_tolerance_m
    sigma = p.se_axis((2,)) if vertical <= horizontal else p.se_axis((0, 1))
    return (min(vertical, horizontal), sigma,
            f"bottom of {p.a.id} {_m(p.lo_a[2])} vs top of {p.b.id} {_m(p.hi_b[2])} (tolerance "
            f"{prm.contact_tolerance_m:.3f} m); footprint overlap {_m(horizontal - prm.overlap_tolerance_m)}")


def _on_top_of(p: _Pair, prm: RelationParams):
    gap = p.lo_a[2] - p.hi_b[2]
    contact = (prm.contact_tolerance_m + p.se_sensor) - abs(gap)
    inside = _signed_distance_to_footprint(p.ga[:2], p.lo_b, p.hi_b)
    support = prm.overlap_tolerance_m - inside
    sigma = p.se_axis((2,)) if contact <= support else q.quadrature(p.se_axis((0, 1)), p.sc())
    return (min(contact, support), sigma,
            f"bottom of {p.a.id} is {_m(gap)} from the top of {p.b.id} (contact tolerance "
            f"{prm.contact_tolerance_m + p.se_sensor:.3f} m); center of {p.a.id} is {_m(inside)} from the footprint "
            f"of {p.b.id} (negative = inside)")


# ----------------------------------------------------------------------------- size predicates
def _taller_than(p: _Pair, prm: RelationParams):
    return (p.size_a[2] - p.size_b[2], p.sx(2),
            f"heights: {p.a.id} {p.size_a[2]:.3f} m, {p.b.id} {p.size_b[2]:.3f} m")


def _wider_than(p: _Pair, prm: RelationParams):
    return (p.size_a[0] - p.size_b[0], p.sx(0),
            f"widths (gravity x): {p.a.id} {p.size_a[0]:.3f} m, {p.b.id} {p.size_b[0]:.3f} m")


def _cube_edge(size: np.ndarray, extent_sigma: float) -> tuple[float, float, float]:
    """(volume m^3, edge of the equal-volume cube m, its sigma m) with first-order error propagation."""
    size = np.maximum(size, 0.0)
    volume = float(np.prod(size))
    partials = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]])
    sigma_v = extent_sigma * float(np.linalg.norm(partials))
    edge = volume ** (1.0 / 3.0)
    sigma_edge = sigma_v / (3.0 * max(edge, extent_sigma) ** 2)
    return volume, edge, sigma_edge


def _bigger_than(p: _Pair, prm: RelationParams):
    va, ea, sa = _cube_edge(p.size_a, q.extent_sigma(p.a, p.noise))
    vb, eb, sb = _cube_edge(p.size_b, q.extent_sigma(p.b, p.noise))
    return (ea - eb, q.quadrature(sa, sb),
            f"box volumes: {p.a.id} {va * 1000:.3f} L, {p.b.id} {vb * 1000:.3f} L (compared as the edges of "
            f"equal-volume cubes, {ea:.3f} m vs {eb:.3f} m)")


# ----------------------------------------------------------------------------- proximity
def next_to_threshold(a: TrackedObject, b: TrackedObject, prm: RelationParams) -> float:
    """Largest gap (metres) at which two objects count as next to each other."""
    fa = float(max(a.size[0], a.size[1]))
    fb = float(max(b.size[0], b.size[1]))
    return max(prm.next_to_min_m, prm.next_to_size_factor * 0.5 * (fa + fb))


def _next_to(p: _Pair, prm: RelationParams):
    gap = q.cloud_gap(p.a, p.b, p.scene)
    tau = next_to_threshold(p.a, p.b, prm)
    overlap_z = float(min(p.hi_a[2], p.hi_b[2]) - max(p.lo_a[2], p.lo_b[2]))
    side = overlap_z - prm.next_to_side_fraction * float(min(p.size_a[2], p.size_b[2]))
    return (min(tau - gap, side), p.se,
            f"gap {gap:.3f} m vs threshold {tau:.3f} m; vertical overlap {overlap_z:.3f} m (side by side "
            f"needs {prm.next_to_side_fraction:.0%} of the shorter height)")


def _mirror(fn: Predicate) -> Predicate:
    """The inverse predicate: ``R'(a, b) = R(b, a)``."""
    def mirrored(p: _Pair, prm: RelationParams):
        return fn(p.swapped(), prm)
    return mirrored


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class RelationSpec:
    name: str
    phrase: str            # "a is <phrase> b", e.g. "to the left of"
    fn: Predicate
    inverse: str           # name of the relation with subject and reference swapped ("" if symmetric)
    gravity: bool          # decided in the gravity frame
    definition: str        # one line for the README


RELATIONS: dict[str, RelationSpec] = {spec.name: spec for spec in (
    RelationSpec("left_of", "to the left of", _left_of, "right_of", False,
                 "subject's center has a smaller camera x than the reference's"),
    RelationSpec("right_of", "to the right of", _mirror(_left_of), "left_of", False,
                 "subject's center has a larger camera x than the reference's"),
    RelationSpec("in_front_of", "in front of", _in_front_of, "behind", False,
                 "subject's center has a smaller camera depth z than the reference's"),
    RelationSpec("behind", "behind", _mirror(_in_front_of), "in_front_of", False,
                 "subject's center has a larger camera depth z than the reference's"),
    RelationSpec("closer_to_camera", "closer to the camera than", _closer_to_camera, "farther_from_camera",
                 False, "subject's center is nearer the camera center (euclidean)"),
    RelationSpec("farther_from_camera", "farther from the camera than", _mirror(_closer_to_camera),
                 "closer_to_camera", False, "subject's center is farther from the camera center (euclidean)"),
    RelationSpec("above", "above", _above, "below", True,
                 "subject's bottom is at or above the reference's top (less the contact tolerance) and the "
                 "footprints overlap (within the overlap tolerance)"),
    RelationSpec("below", "below", _mirror(_above), "above", True, "the reference is above the subject"),
    RelationSpec("on_top_of", "on top of", _on_top_of, "", True,
                 "subject's bottom is within the contact tolerance (+ sigma) of the reference's top and the "
                 "subject's center is over the reference's footprint (within the overlap tolerance)"),
    RelationSpec("higher_than", "higher than", _higher_than, "lower_than", True,
                 "subject's center is higher along gravity"),
    RelationSpec("lower_than", "lower than", _mirror(_higher_than), "higher_than", True,
                 "subject's center is lower along gravity"),
    RelationSpec("taller_than", "taller than", _taller_than, "shorter_than", True,
                 "subject's box has the larger vertical (gravity z) extent"),
    RelationSpec("shorter_than", "shorter than", _mirror(_taller_than), "taller_than", True,
                 "subject's box has the smaller vertical (gravity z) extent"),
    RelationSpec("bigger_than", "bigger than", _bigger_than, "smaller_than", True,
                 "subject's gravity-aligned box has the larger volume"),
    RelationSpec("smaller_than", "smaller than", _mirror(_bigger_than), "bigger_than", True,
                 "subject's gravity-aligned box has the smaller volume"),
    RelationSpec("wider_than", "wider than", _wider_than, "thinner_than", True,
                 "subject's box has the larger width (gravity x extent, across the view)"),
    RelationSpec("thinner_than", "thinner than", _mirror(_wider_than), "wider_than", True,
                 "subject's box has the smaller width (gravity x extent, across the view)"),
    RelationSpec("next_to", "next to", _next_to, "", True,
                 "closest-point gap below max(5 cm, half the mean footprint size) and side by side "
                 "(vertical overlap of at least a quarter of the shorter object's height)"),
)}

_EXTRA_ALIASES: dict[str, tuple[str, ...]] = {
    "left_of": ("left", "left of", "on the left of", "on the left side of", "to the left side of",
                "more to the left than", "further left than", "farther left than"),
    "right_of": ("right", "right of", "on the right of", "on the right side of", "to the right side of",
                 "more to the right than", "further right than", "farther right than"),
    "in_front_of": ("in front", "front of", "in front of", "ahead of"),
    "behind": ("in back of", "back of", "at the back of", "further back than", "farther back than"),
    "closer_to_camera": ("closer", "closer than", "nearer", "nearer than", "closer to the camera",
                         "closer to camera than", "nearer to the camera than", "nearer the camera than",
                         "nearer to the camera", "closer to you than", "nearer to you than", "closer to me than"),
    "farther_from_camera": ("farther", "further", "farther than", "further than", "farther away than",
                            "further away than", "farther from the camera", "further from the camera",
                            "further from the camera than", "farther from camera than", "more distant than",
                            "farther from you than", "further from you than", "farther away", "further away"),
    "above": ("over", "above of"),
    "below": ("under", "underneath", "beneath", "below of"),
    "on_top_of": ("on", "on top", "ontop of", "atop", "upon", "sitting on", "resting on", "placed on",
                  "lying on", "standing on", "stacked on", "sitting on top of", "resting on top of",
                  "placed on top of", "stacked on top of", "standing on top of", "lying on top of"),
    "higher_than": ("higher", "higher up than", "positioned higher than", "located higher than",
                    "at a higher level than", "more elevated than"),
    "lower_than": ("lower", "lower down than", "positioned lower than", "located lower than",
                   "at a lower level than"),
    "taller_than": ("taller",),
    "shorter_than": ("shorter", "less tall than"),
    "bigger_than": ("bigger", "larger", "larger than", "greater in size than"),
    "smaller_than": ("smaller", "tinier than", "less big than"),
    "wider_than": ("wider", "broader", "broader than", "fatter than"),
    "thinner_than": ("thinner", "narrower", "narrower than", "slimmer than", "skinnier than"),
    "next_to": ("beside", "besides", "by", "near", "near to", "close to", "adjacent to", "alongside",
                "right next to", "nearby"),
}


def _normalise(text: str) -> str:
    return " ".join(text.strip().lower().replace("_", " ").replace("-", " ").split())


ALIASES: dict[str, str] = {}
for _spec in RELATIONS.values():
    ALIASES[_normalise(_spec.name)] = _spec.name
    ALIASES[_normalise(_spec.phrase)] = _spec.name
for _name, _aliases in _EXTRA_ALIASES.items():
    for _alias in _aliases:
        ALIASES[_normalise(_alias)] = _name


def canonical_relation(text: str) -> str:
    """Canonical relation name for a name or alias (case-, space- and underscore-insensitive).

    Raises QueryError listing the known relations when ``text`` is not one of them.
    """
    if not isinstance(text, str):
        raise QueryError("relation must be a string")
    key = _normalise(text)
    if key.startswith("is "):
        key = key[3:]
    if key in ALIASES:
        return ALIASES[key]
    raise QueryError(f"unknown relation '{text}'; known relations: {', '.join(RELATIONS)}")


def confidence_from_margin(margin_m: float, sigma_m: float) -> float:
    """``Phi(|margin| / sigma)`` in [0.5, 1]: the probability that the sign of the margin is right."""
    z = abs(margin_m) / max(sigma_m, SIGMA_FLOOR_M)
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def evaluate(relation: str, a: TrackedObject, b: TrackedObject, scene: Scene,
             noise: DepthNoiseModel | None = None, params: RelationParams | None = None) -> RelationResult:
    """Decide ``a <relation> b`` (``relation`` may be any alias). Raises QueryError for an unknown relation or
    when subject and reference are the same object."""
    name = canonical_relation(relation)
    if a.id == b.id:
        raise QueryError(f"subject and reference are the same object ({a.id})")
    spec = RELATIONS[name]
    noise = noise or DepthNoiseModel()
    params = params or RelationParams()
    margin, sigma, detail = spec.fn(_Pair(a, b, scene, noise), params)
    margin, sigma = float(margin), max(float(sigma) * noise.lifting.relation_sigma_scale, SIGMA_FLOOR_M)
    holds = margin > 0.0
    confidence = confidence_from_margin(margin, sigma)
    explanation = (f"{a.id} {'is' if holds else 'is not'} {spec.phrase} {b.id}: {detail}; margin {margin:+.3f} m, "
                   f"sigma {sigma:.3f} m, confidence {confidence:.2f}")
    return RelationResult(name, holds, confidence, margin, explanation, sigma)
