"""Free space and clearance: can a box of size (w, d, h) be placed somewhere without intersecting anything?

Occupancy on the support plane: every object whose gravity box reaches into the placed box's height range
(``[base + height_tolerance_m, base + h]``) occupies its footprint, the gravity x-y rectangle of its box (the
boxes are amodally completed, so they cover the hidden backs the point clouds miss). The placed box is a
rectangle ``w`` x ``d`` turned by ``yaw`` about up (radians from the gravity x axis, counter-clockwise seen
from above), its bottom at ``base``.

At a pose, the **margin** is ``min(separation to every footprint - clearance_m, containment)``, metres:
``separation`` = the signed distance along the best separating axis of the two rectangles (negative =
overlap; exact for overlaps and face-to-face gaps, a lower bound for corner-to-corner ones); ``containment``
= how far the placed rectangle's corners lie inside what supports it (the ``table``/``floor`` outline of
``core.support_surface``, or the footprint of the object it is put on). It fits when the margin is > 0.
Its one sigma comes from the noise model: each constraint's sigma is the limiting object's horizontal face
sigma (``quantities.surface_sigma``) or the outline's ``edge_sigma_m``; the k constraints within a few
millimetres of the minimum (a box centered between two objects has two) give ``sqrt(sum s_i^2) / k`` (the
pose is re-centered between them); the confidence of the yes/no answer is
``relations.confidence_from_margin(margin, sigma)``.

Locations (``LOCATIONS``) and the pose chosen:

- ``between`` A and B: centers on the segment joining the two footprint centers, yaw along it or across;
  the pose with the largest margin (centered in the gap);
- ``left_of`` / ``right_of`` / ``in_front_of`` / ``behind`` A: along gravity -x / +x / -y / +y from A's
  footprint, up to ``search_m``; in the free run nearest A, the first pose whose margin reaches
  ``target_margin_m`` (or the run's best);
- ``on`` B: anywhere over B's footprint (an object: base = its top; ``table``/``floor``: the outline), the
  pose with the largest margin;
- ``at`` a point (x, y[, z]) of the gravity frame: that center (z: the base, default the support surface),
  yaw 0 or 90 degrees (or the given one).

The **free width** is the length of free space along the placement's axis (the A-B line, the search
direction, or the box's width axis) through the pose center, in a corridor as wide as the placed box:
between two objects it is the distance between their facing footprint sides. Frames: gravity frame (z up,
x right, y forward), metres; the pose's center also in the camera optical frame.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from . import quantities as q
from .errors import InputError, QueryError
from .naming import resolve
from .noise import DepthNoiseModel
from .observation import TrackedObject
from .relations import canonical_relation, confidence_from_margin
from .scene import Scene
from .support_surface import SupportSurface, default_surface, is_surface, support_surfaces, with_surfaces

LOCATIONS = ("between", "left_of", "right_of", "in_front_of", "behind", "on", "at")
_DIRECTIONS = {"left_of": (-1.0, 0.0), "right_of": (1.0, 0.0), "in_front_of": (0.0, -1.0), "behind": (0.0, 1.0)}
_LOCATION_WORDS = {"between": "between", "on": "on", "on_top_of": "on", "onto": "on", "at": "at", "point": "at",
                   "at_point": "at"}
MAX_SIZE_M = 10.0


@dataclass(frozen=True)
class PlacementParams:
    """Search settings, metres."""

    clearance_m: float = 0.0           # free space wanted around the footprint on every side
    search_m: float = 0.5              # directional locations: how far from the reference's side to look
    step_m: float = 0.005              # spacing of candidate centers (coarser over large areas)
    max_candidates: int = 4000         # area searches ("on"): at most this many centers
    target_margin_m: float = 0.02      # directional locations: margin to aim for next to the reference
    height_tolerance_m: float = 0.02   # a box whose top is this little above the base does not occupy
    active_band_m: float = 0.003       # constraints this close to the smallest one share the margin


@dataclass(frozen=True)
class Pose:
    center_g: np.ndarray               # (3,) center of the placed box, gravity frame, metres
    yaw: float                         # radians, the box's width axis from gravity x, counter-clockwise
    center_c: np.ndarray               # (3,) the same center in the camera optical frame, metres


@dataclass(frozen=True)
class PlacementResult:
    fits: bool
    margin_m: float                    # > 0 <=> fits (see the module docstring)
    sigma_m: float                     # one sigma of the margin
    confidence: float                  # Phi(|margin| / sigma): that ``fits`` is right
    free_width_m: float                # free length along the placement axis through the pose
    pose: Pose
    location: str                      # canonical location
    reference_ids: tuple[str, ...]
    support_id: str                    # what the box stands on ("table", an object id; "" = unknown)
    limiting: str                      # what limits the margin ("mug_1", "edge of the table", ...)
    explanation: str


@dataclass(frozen=True)
class _Constraints:
    """Axis-aligned obstacle footprints and a convex support polygon, gravity x-y, metres."""

    ids: tuple[str, ...]
    lo: np.ndarray                     # (K, 2)
    hi: np.ndarray                     # (K, 2)
    sigma: np.ndarray                  # (K,) horizontal face sigmas
    support: np.ndarray | None         # (P, 2) counter-clockwise polygon, or None (no containment)
    support_name: str
    support_sigma: float


def canonical_location(text: str) -> str:
    """One of ``LOCATIONS`` for a location word ("between", "left of", "on top of", "at", ...)."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError(f"location must be one of {', '.join(LOCATIONS)}")
    key = "_".join(text.strip().lower().replace("-", " ").split())
    if key in _LOCATION_WORDS:
        return _LOCATION_WORDS[key]
    try:
        rel = canonical_relation(text)
    except QueryError:
        rel = ""
    if rel in _DIRECTIONS:
        return rel
    if rel == "on_top_of":
        return "on"
    raise QueryError(f"unknown placement location '{text}'; known: {', '.join(LOCATIONS)}")


def check_size(size) -> np.ndarray:
    """(3,) width, depth, height in metres; ``InputError`` unless three finite sizes in (0, 10] m."""
    try:
        s = np.asarray(size, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"size must be three lengths (w, d, h) in metres, not {size!r}") from None
    if s.shape != (3,) or not np.all(np.isfinite(s)):
        raise InputError(f"size must be three finite lengths (w, d, h) in metres, got {size!r}")
    if np.any(s <= 0.0) or np.any(s > MAX_SIZE_M):
        raise InputError(f"size must be positive and at most {MAX_SIZE_M:g} m per side (w, d, h), got "
                         f"{[round(float(v), 4) for v in s]}")
    return s


def _rect_polygon(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])


def _separations(centers: np.ndarray, yaws: np.ndarray, half: np.ndarray, c: _Constraints) -> np.ndarray:
    """(M, K) signed separations (metres) between M placed rectangles (centers (M, 2), yaws (M,), half sizes
    (2,)) and the K obstacle footprints: the largest gap along the four separating axes."""
    if len(c.ids) == 0:
        return np.full((len(centers), 0), np.inf)
    oc, oh = (c.lo + c.hi) / 2, (c.hi - c.lo) / 2                            # (K, 2)
    u = np.stack([np.cos(yaws), np.sin(yaws)], axis=1)                        # (M, 2)
    v = np.stack([-np.sin(yaws), np.cos(yaws)], axis=1)
    d = centers[:, None, :] - oc[None]                                        # (M, K, 2)
    best = np.full(d.shape[:2], -np.inf)
    for axis in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):                 # gravity x, y
        r_p = half[0] * np.abs(u @ axis) + half[1] * np.abs(v @ axis)         # (M,)
        r_o = oh @ np.abs(axis)                                               # (K,)
        best = np.maximum(best, np.abs(d @ axis) - r_p[:, None] - r_o[None])
    for k, axis in enumerate((u, v)):                                         # the placed box's own axes
        r_o = oh[None, :, 0] * np.abs(axis[:, None, 0]) + oh[None, :, 1] * np.abs(axis[:, None, 1])
        proj = np.abs(np.einsum("mkj,mj->mk", d, axis))
        best = np.maximum(best, proj - half[k] - r_o)
    return best


def _containment(centers: np.ndarray, yaws: np.ndarray, half: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(M,) smallest distance (metres) of the placed rectangles' corners inside the convex CCW ``polygon``
    (negative: a corner is outside)."""
    a = polygon
    e = np.roll(a, -1, axis=0) - a
    n = np.stack([-e[:, 1], e[:, 0]], axis=1) / np.maximum(np.linalg.norm(e, axis=1), 1e-12)[:, None]  # inward
    cos, sin = np.cos(yaws), np.sin(yaws)
    out = np.full(len(centers), np.inf)
    for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
        corner = centers + np.stack([sx * half[0] * cos - sy * half[1] * sin,
                                     sx * half[0] * sin + sy * half[1] * cos], axis=1)
        inside = np.min(np.einsum("kj,mkj->mk", n, corner[:, None, :] - a[None]), axis=1)
        out = np.minimum(out, inside)
    return out


def _margins(centers, yaws, half, c: _Constraints, clearance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M,) margins, (M, K) obstacle terms and (M,) support terms (metres)."""
    sep = _separations(centers, yaws, half, c) - clearance
    inside = (_containment(centers, yaws, half, c.support) if c.support is not None
              else np.full(len(centers), np.inf))
    worst = np.min(sep, axis=1, initial=np.inf)
    return np.minimum(worst, inside), sep, inside


def _free_width(center: np.ndarray, axis: np.ndarray, across_half: float, c: _Constraints) -> float:
    """Free length (metres) along the unit ``axis`` through ``center`` in a corridor ``2 across_half`` wide:
    the interval around the center that no footprint in the corridor blocks, within the support polygon."""
    across = np.array([-axis[1], axis[0]])
    lo_t, hi_t = -np.inf, np.inf
    if c.support is not None:                     # the center line inside the convex support polygon
        a = c.support
        e = np.roll(a, -1, axis=0) - a
        n = np.stack([-e[:, 1], e[:, 0]], axis=1)
        rate, base = n @ axis, np.einsum("kj,kj->k", n, center - a)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -base / rate
        lo_t = max(lo_t, float(np.max(t[rate > 1e-12], initial=-np.inf)))
        hi_t = min(hi_t, float(np.min(t[rate < -1e-12], initial=np.inf)))
    for lo, hi in zip(c.lo, c.hi):
        corners = _rect_polygon(lo, hi) - center
        pu, pv = corners @ axis, corners @ across
        if pv.max() <= -across_half or pv.min() >= across_half:
            continue                              # outside the corridor
        if pu.min() < 0.0 < pu.max():
            return 0.0                            # the center itself is blocked
        if pu.max() <= 0.0:
            lo_t = max(lo_t, float(pu.max()))
        else:
            hi_t = min(hi_t, float(pu.min()))
    return max(0.0, hi_t - lo_t)


def _constraints(scene: Scene, base: float, height: float, exclude: set[str], support: np.ndarray | None,
                 support_name: str, support_sigma: float, noise: DepthNoiseModel,
                 params: PlacementParams) -> _Constraints:
    ids, lo, hi, sig = [], [], [], []
    for obj in scene.objects:
        if obj.id in exclude or is_surface(obj):
            continue
        blo, bhi = q.box_of(obj)
        if bhi[2] <= base + params.height_tolerance_m or blo[2] >= base + height:
            continue                              # under the base (what it stands on) or above the box
        ids.append(obj.id)
        lo.append(blo[:2])
        hi.append(bhi[:2])
        sig.append(max(q.surface_sigma(obj, noise, 0), q.surface_sigma(obj, noise, 1)))
    return _Constraints(tuple(ids), np.array(lo).reshape(-1, 2), np.array(hi).reshape(-1, 2), np.array(sig),
                        support, support_name, support_sigma)


def _resolve_references(scene: Scene, location: str, references: Sequence[str]) -> list[TrackedObject]:
    if isinstance(references, str):
        references = [references]
    names = [r for r in (references or ()) if isinstance(r, str) and r.strip()]
    if len(names) != len(tuple(references or ())):
        raise QueryError("references must be non-empty object names")
    needed = {"between": 2, "at": 0}.get(location, 1)
    if len(names) != needed:
        raise QueryError(f"placement '{location}' needs {needed} reference object(s), got {len(names)}")
    objects = [resolve(n, with_surfaces(scene)) for n in names]
    if len({o.id for o in objects}) != len(objects):
        raise QueryError(f"placement '{location}' needs two different objects, got {objects[0].id} twice")
    return objects


def _surface_support(scene: Scene, base: float, params: PlacementParams) -> SupportSurface | None:
    """The measured surface whose top is at ``base`` (within the height tolerance), or None."""
    return next((s for s in support_surfaces(scene) if abs(s.height - base) <= params.height_tolerance_m), None)


def _support_terms(surface: SupportSurface | None) -> tuple[np.ndarray | None, str, float]:
    if surface is None:
        return None, "", 0.0
    return np.asarray(surface.outline, dtype=np.float64), surface.name, surface.edge_sigma_m


def check_placement(scene: Scene, size, location: str, references: Sequence[str] = (), point=None,
                    yaw: float | None = None, noise: DepthNoiseModel | None = None,
                    params: PlacementParams | None = None) -> PlacementResult:
    """Can a box of ``size`` (w, d, h metres) go at ``location`` (see the module docstring) relative to
    ``references`` (object names; ``table``/``floor`` name the surfaces) or at ``point`` (gravity x, y[, z]
    metres, for ``at``)? ``yaw`` (radians) fixes the box's turn where the location allows one.

    Raises ``InputError`` for a bad size, point or yaw; ``QueryError`` for an unknown location or the wrong
    number of references; ``ResolutionError`` for an unknown or ambiguous name.
    """
    noise = noise or DepthNoiseModel()
    params = params or PlacementParams()
    s = check_size(size)
    loc = canonical_location(location)
    if yaw is not None and not math.isfinite(float(yaw)):
        raise InputError(f"yaw must be a finite angle in radians, got {yaw!r}")
    refs = _resolve_references(scene, loc, references)
    half = s[:2] / 2
    if loc == "between":
        return _between(scene, s, half, refs, noise, params)
    if loc in _DIRECTIONS:
        return _beside(scene, s, half, loc, refs[0], yaw, noise, params)
    if loc == "on":
        return _on(scene, s, half, refs[0], yaw, noise, params)
    return _at(scene, s, half, point, yaw, noise, params)


def _footprint_center(obj: TrackedObject) -> np.ndarray:
    lo, hi = q.box_of(obj)
    return (lo[:2] + hi[:2]) / 2


def _yaws(yaw: float | None, base_yaw: float, size: np.ndarray) -> np.ndarray:
    if yaw is not None:
        return np.array([float(yaw)])
    return np.array([base_yaw]) if abs(size[0] - size[1]) < 1e-9 else np.array([base_yaw, base_yaw + math.pi / 2])


def _table_base(scene: Scene, refs: Sequence[TrackedObject], params: PlacementParams
                ) -> tuple[float, SupportSurface | None]:
    """The base height (metres) for a box put beside ``refs``: the support surface they stand on, else the
    lowest of their bottoms."""
    bottoms = [float(q.box_of(r)[0][2]) for r in refs if not is_surface(r)]
    bottom = min(bottoms) if bottoms else None
    surface = default_surface(scene)
    if surface is not None and (bottom is None or abs(bottom - surface.height) <= params.height_tolerance_m):
        return surface.height, surface
    if bottom is None:
        raise QueryError("no support surface is measured in this scene to place the box on")
    return bottom, _surface_support(scene, bottom, params)


def _between(scene, s, half, refs, noise, params) -> PlacementResult:
    a, b = refs
    if is_surface(a) or is_surface(b):
        raise QueryError("'between' needs two objects, not a support surface")
    base, surface = _table_base(scene, refs, params)
    c = _constraints(scene, base, s[2], set(), *_support_terms(surface), noise, params)
    ca, cb = _footprint_center(a), _footprint_center(b)
    d = cb - ca
    if float(np.linalg.norm(d)) < 1e-9:
        raise QueryError(f"{a.id} and {b.id} have the same footprint center: no line between them")
    axis = d / np.linalg.norm(d)
    t_a = float(np.max((_rect_polygon(*[x[:2] for x in q.box_of(a)]) - ca) @ axis))
    t_b = float(np.min((_rect_polygon(*[x[:2] for x in q.box_of(b)]) - ca) @ axis))
    n = max(2, int(math.ceil(max(t_b - t_a, 0.0) / params.step_m)) + 1)
    ts = np.linspace(t_a, t_b, n) if t_b > t_a else np.array([(t_a + t_b) / 2])
    yaws = _yaws(None, math.atan2(axis[1], axis[0]), s)
    return _best(scene, s, half, "between", refs, base, c, ca + ts[:, None] * axis, yaws, axis, noise, params)


def _beside(scene, s, half, loc, ref, yaw, noise, params) -> PlacementResult:
    if is_surface(ref):
        raise QueryError(f"'{loc}' needs an object as reference, not the {ref.id}")
    base, surface = _table_base(scene, [ref], params)
    c = _constraints(scene, base, s[2], set(), *_support_terms(surface), noise, params)
    axis = np.array(_DIRECTIONS[loc])
    center = _footprint_center(ref)
    t0 = float(np.max((_rect_polygon(*[x[:2] for x in q.box_of(ref)]) - center) @ axis))
    ts = t0 + np.arange(0.0, params.search_m + 1e-12, params.step_m)
    yaws = _yaws(yaw, 0.0, s)
    centers = np.repeat(center + ts[:, None] * axis, len(yaws), axis=0)
    yy = np.tile(yaws, len(ts))
    margins, _, _ = _margins(centers, yy, half, c, params.clearance_m)
    per_t = margins.reshape(len(ts), len(yaws))
    best_yaw = np.argmax(per_t, axis=1)
    m_t = per_t[np.arange(len(ts)), best_yaw]
    feasible = np.flatnonzero(m_t > 0.0)
    if feasible.size:
        start = int(feasible[0])
        stop = start
        while stop + 1 < len(ts) and m_t[stop + 1] > 0.0:
            stop += 1
        run = np.arange(start, stop + 1)
        target = min(params.target_margin_m, float(m_t[run].max()))
        pick = int(run[np.flatnonzero(m_t[run] >= target - 1e-12)[0]])
    else:
        pick = int(np.argmax(m_t))
    k = pick * len(yaws) + int(best_yaw[pick])
    return _result(scene, s, half, loc, [ref], base, c, centers[k], float(yy[k]), axis, noise, params)


def _on(scene, s, half, ref, yaw, noise, params) -> PlacementResult:
    if is_surface(ref):
        surface = next(x for x in support_surfaces(scene) if x.name == ref.id)
        base, polygon = surface.height, np.asarray(surface.outline, dtype=np.float64)
        name, sigma = surface.name, surface.edge_sigma_m
    else:
        lo, hi = q.box_of(ref)
        base, polygon, name = float(hi[2]), _rect_polygon(lo[:2], hi[:2]), ref.id
        sigma = max(q.surface_sigma(ref, noise, 0), q.surface_sigma(ref, noise, 1))
    c = _constraints(scene, base, s[2], {ref.id}, polygon, name, sigma, noise, params)
    lo_xy, hi_xy = polygon.min(axis=0), polygon.max(axis=0)
    extent = hi_xy - lo_xy
    step = max(params.step_m, math.sqrt(float(np.prod(extent)) / params.max_candidates))
    gx = np.arange(lo_xy[0], hi_xy[0] + 1e-12, step)
    gy = np.arange(lo_xy[1], hi_xy[1] + 1e-12, step)
    centers = np.stack(np.meshgrid(gx, gy, indexing="ij"), axis=-1).reshape(-1, 2)
    yaws = _yaws(yaw, 0.0, s)
    return _best(scene, s, half, "on", [ref], base, c, centers, yaws, None, noise, params)


def _at(scene, s, half, point, yaw, noise, params) -> PlacementResult:
    if point is None:
        raise QueryError("placement 'at' needs a point (gravity x, y[, z] in metres)")
    p = np.asarray(point, dtype=np.float64).reshape(-1)
    if p.shape not in ((2,), (3,)) or not np.all(np.isfinite(p)):
        raise InputError(f"point must be 2 or 3 finite gravity-frame coordinates in metres, got {point!r}")
    surface = default_surface(scene)
    if p.shape == (3,):
        base = float(p[2])
    elif surface is not None:
        base = surface.height
    else:
        raise QueryError("no support surface is measured in this scene: give the point's z (the base height)")
    support = _surface_support(scene, base, params)
    polygon, name, sigma = _support_terms(support)
    exclude: set[str] = set()
    if support is None:                           # an object's top at that height under the point?
        for obj in scene.objects:
            lo, hi = q.box_of(obj)
            if abs(float(hi[2]) - base) <= params.height_tolerance_m and np.all(p[:2] >= lo[:2]) \
                    and np.all(p[:2] <= hi[:2]):
                polygon, name = _rect_polygon(lo[:2], hi[:2]), obj.id
                sigma = max(q.surface_sigma(obj, noise, 0), q.surface_sigma(obj, noise, 1))
                exclude = {obj.id}
                break
    c = _constraints(scene, base, s[2], exclude, polygon, name, sigma, noise, params)
    yaws = _yaws(yaw, 0.0, s)
    result = _best(scene, s, half, "at", [], base, c, p[None, :2], yaws, None, noise, params)
    if not name:
        return _unsupported(result, base)
    return result


def _unsupported(result: PlacementResult, base: float) -> PlacementResult:
    """``result`` refused: nothing measured supports a box at gravity height ``base``."""
    return replace(result, fits=False, limiting="no support", explanation=f"nothing measured supports a box at "
                   f"gravity z {base:+.3f} m (no surface or object top there); {result.explanation}")


def _best(scene, s, half, loc, refs, base, c, centers, yaws, axis, noise, params) -> PlacementResult:
    """The candidate (center x yaw) with the largest margin."""
    cc = np.repeat(centers, len(yaws), axis=0)
    yy = np.tile(yaws, len(centers))
    margins, _, _ = _margins(cc, yy, half, c, params.clearance_m)
    k = int(np.argmax(margins))
    return _result(scene, s, half, loc, refs, base, c, cc[k], float(yy[k]), axis, noise, params)


def _result(scene, s, half, loc, refs, base, c: _Constraints, center, yaw, axis, noise, params) -> PlacementResult:
    margin_arr, sep, inside = _margins(center[None], np.array([yaw]), half, c, params.clearance_m)
    margin = float(margin_arr[0])
    terms = [(float(v), sid, float(sg)) for v, sid, sg in zip(sep[0], c.ids, c.sigma)]
    if c.support is not None:
        terms.append((float(inside[0]), f"edge of the {c.support_name}" if c.support_name in ("table", "floor")
                      else f"edge of {c.support_name}", c.support_sigma))
    if terms and math.isfinite(margin):
        active = [t for t in terms if t[0] <= margin + params.active_band_m]
        sigma = math.sqrt(sum(t[2] ** 2 for t in active)) / len(active)
        limiting = ", ".join(t[1] for t in active)
    else:                                         # nothing around: unbounded
        margin, sigma, limiting = math.inf, 0.0, "nothing"
    sigma = max(sigma, 1e-4)
    along = np.array([math.cos(yaw), math.sin(yaw)]) if axis is None else np.asarray(axis, dtype=np.float64)
    across = np.array([-along[1], along[0]])
    r_across = half[0] * abs(math.cos(yaw) * across[0] + math.sin(yaw) * across[1]) + \
        half[1] * abs(-math.sin(yaw) * across[0] + math.cos(yaw) * across[1])
    free = _free_width(np.asarray(center, dtype=np.float64), along, r_across, c)
    fits = margin > 0.0
    confidence = confidence_from_margin(margin, sigma) if math.isfinite(margin) else 1.0
    center_g = np.array([center[0], center[1], base + s[2] / 2])
    pose = Pose(center_g, float(math.remainder(yaw, 2 * math.pi)), scene.gravity.to_camera(center_g))
    ref_ids = tuple(r.id for r in refs)
    what = f"{s[0]:.3f} x {s[1]:.3f} x {s[2]:.3f} m box {loc} {' and '.join(ref_ids)}".rstrip()
    explanation = (f"{what}: {'fits' if fits else 'does not fit'}; margin {margin:+.4f} m +- {sigma:.4f} m "
                   f"(limited by {limiting}), free width {free:.4f} m, confidence {confidence:.2f}; pose center "
                   f"{[round(float(v), 4) for v in center_g]} m (gravity), yaw {math.degrees(pose.yaw):.1f} deg")
    return PlacementResult(bool(fits), float(margin), float(sigma), float(confidence), float(free), pose, loc,
                           ref_ids, c.support_name, limiting, explanation)
