"""The support surface as an object: the fitted table plane (and the floor) named ``table`` / ``floor``.

``GravityEstimator`` keeps the depth samples that lie on the support surface (and on the fitted plane when
that is another, lower surface) in ``GravityFrame.surfaces``; this module makes objects of them. Frames:
gravity frame (z up, x right, y forward; ``core.gravity_frame``), metres.

- Extent: the convex hull, in the gravity x-y plane, of the largest connected cluster of the surface's
  samples (cells of three sample spacings, 8-connected: a far sample that happens to lie at the same height,
  a shelf across the room, is not part of the table). Only the visible part is known: where the surface
  leaves the image, its outline ends at the border of the view.
- Naming rule: the support surface (the highest large horizontal surface, ``GravityFrame.support_height``)
  is the ``table``; a measured surface at least ``floor_gap_m`` below it is the ``floor``. A support with no
  surface under it is the ``floor`` when the camera is more than ``floor_below_camera_m`` above it (no table
  is that far below a camera), else the ``table``.
- Object view (``SupportSurface.as_object``, a ``TrackedObject``): the gravity box spanning the outline's
  x-y bounds, ``thickness_m`` thick below the surface's height, its samples as points, id and label the
  name. Every relation and quantity then works with it ("Is the mug on the table?").
- ``distance_to_edge``: metres from an object's footprint center (its box center in x-y) to the outline
  (positive inside, negative outside), plus half the local row spacing across the nearest edge
  (``SupportSurface.edge_spacing``: the true edge lies between the outermost samples and the next row beyond
  them); one sigma = that spacing / sqrt(12) and the center's sigma in quadrature.
- ``near_edge``: ``distance_to_edge < NEAR_EDGE_M + footprint / 2`` (the object's footprint, half its larger
  horizontal extent around the center, comes within 5 cm of the edge; ``thresholds.threshold_on``).
- ``height_above``: signed gap from the surface's top to an object's bottom (``quantities.vertical_gap``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError, cKDTree

from . import quantities as q
from .errors import InputError
from .gravity_frame import SurfaceSamples
from .identity_cache import IdentityCache
from .noise import DepthNoiseModel
from .observation import TrackedObject
from .scene import Scene
from .thresholds import ThresholdResult, threshold_on

TABLE = "table"
FLOOR = "floor"
SURFACE_NAMES = (TABLE, FLOOR)
NEAR_EDGE_M = 0.05           # "near the edge": the footprint comes within this of the outline


@dataclass(frozen=True)
class SurfaceParams:
    """How surfaces are named and shaped, metres."""

    floor_gap_m: float = 0.3               # a surface this far below the support is the floor
    floor_below_camera_m: float = 1.3      # a lone support this far below the camera is the floor
    thickness_m: float = 0.01              # thickness of the object view's box (below the top)
    cluster_spacings: float = 3.0          # cluster cell size, in median sample spacings
    min_samples: int = 20                  # fewer samples than this make no surface


@dataclass(frozen=True)
class SupportSurface:
    """A measured horizontal surface: its name, gravity height (its top, metres) and outline."""

    name: str                              # "table" or "floor"
    height: float                          # gravity z of the top, metres
    outline: np.ndarray                    # (K, 2) convex hull, counter-clockwise, gravity x, y, metres
    samples_xy: np.ndarray                 # (N, 2) the samples of the kept cluster, gravity x, y, metres
    count: int                             # samples found on the surface (before thinning)
    spacing_m: float                       # median distance between neighbouring (kept) samples, metres
    thickness_m: float = 0.01

    @property
    def area_m2(self) -> float:
        x, y = self.outline[:, 0], self.outline[:, 1]
        return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))

    @property
    def edge_sigma_m(self) -> float:
        """A typical one-sigma error of the outline's position, metres: the true edge lies up to one sample
        spacing beyond the outermost samples (uniform: ``spacing / sqrt(12)`` about the midway point)."""
        return self.spacing_m / math.sqrt(12.0)

    def edge_spacing(self, xy) -> tuple[float, int]:
        """``(spacing, k)``: the spacing (metres) of the sample rows across outline edge ``k``, the edge nearest
        to the gravity x, y point ``xy``: the smallest distance from that edge's line of a sample lying off it
        (more than a fifth of the median spacing in) and beside the edge. Samples on a surface seen at a
        grazing angle are far sparser along the view than across it, so this is local, not ``spacing_m``."""
        a = self.outline
        e = np.roll(a, -1, axis=0) - a
        p = np.asarray(xy, dtype=np.float64)
        t = np.clip(np.einsum("kj,kj->k", p - a, e) / np.maximum(np.einsum("kj,kj->k", e, e), 1e-18), 0.0, 1.0)
        k = int(np.argmin(np.linalg.norm(a + t[:, None] * e - p, axis=1)))
        length = float(np.linalg.norm(e[k]))
        if length < 1e-9:
            return self.spacing_m, k
        u = e[k] / length
        rel = self.samples_xy - a[k]
        along = rel @ u
        inward = u[0] * rel[:, 1] - u[1] * rel[:, 0]           # left of a counter-clockwise edge = inside
        beside = (along >= 0.0) & (along <= length) & (inward > 0.2 * self.spacing_m)
        return (float(inward[beside].min()) if np.any(beside) else self.spacing_m), k

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) x, y of the outline, metres."""
        return self.outline.min(axis=0), self.outline.max(axis=0)

    def signed_distance(self, xy) -> np.ndarray:
        """(M,) signed distances (metres) from gravity x, y points ((2,) or (M, 2)) to the outline: positive
        inside, negative outside (exact for a convex outline)."""
        p = np.atleast_2d(np.asarray(xy, dtype=np.float64))
        a = self.outline
        b = np.roll(a, -1, axis=0)
        e = b - a
        length2 = np.maximum(np.einsum("ij,ij->i", e, e), 1e-18)
        rel = p[:, None, :] - a[None]                                   # (M, K, 2)
        t = np.clip(np.einsum("mkj,kj->mk", rel, e) / length2, 0.0, 1.0)
        closest = a[None] + t[..., None] * e[None]
        dist = np.min(np.linalg.norm(p[:, None, :] - closest, axis=2), axis=1)
        cross = e[None, :, 0] * rel[..., 1] - e[None, :, 1] * rel[..., 0]   # > 0: left of a CCW edge
        inside = np.all(cross >= 0.0, axis=1)
        return np.where(inside, dist, -dist)

    def as_object(self, scene: Scene) -> TrackedObject:
        """The ``TrackedObject`` view: the gravity box over the outline's x-y bounds, ``thickness_m`` thick
        under the top; center and points in the scene's camera frame."""
        lo_xy, hi_xy = self.bounds
        lo = np.array([lo_xy[0], lo_xy[1], self.height - self.thickness_m])
        hi = np.array([hi_xy[0], hi_xy[1], self.height])
        center_g = (lo + hi) / 2
        pts_g = np.column_stack([self.samples_xy, np.full(len(self.samples_xy), self.height)])
        arrays = [scene.gravity.to_camera(center_g), hi - lo, lo, hi, scene.gravity.to_camera(pts_g)]
        for arr in arrays:
            arr.setflags(write=False)
        center, size, box_min, box_max, points = arrays
        return TrackedObject(id=self.name, label=self.name, score=1.0, center=center, size=size,
                             box_min=box_min, box_max=box_max, points=points, observations=1,
                             first_seen=scene.stamp, last_seen=scene.stamp, n_pixels=int(self.count),
                             extra={"surface": True, "visible": True, "carried": False})


def _cluster(xy: np.ndarray, params: SurfaceParams) -> tuple[np.ndarray, float]:
    """The largest 8-connected cluster of the (N, 2) samples on a grid of ``cluster_spacings`` median sample
    spacings, and that spacing (metres)."""
    probe = xy[:: max(1, len(xy) // 2000)]              # the median spacing from at most ~2,000 samples
    nn, _ = cKDTree(xy).query(probe, k=2)
    spacing = float(np.median(nn[:, 1]))
    cell = max(params.cluster_spacings * spacing, 1e-3)
    ij = np.floor((xy - xy.min(axis=0)) / cell).astype(np.intp)
    grid = np.zeros(tuple(ij.max(axis=0) + 1), dtype=bool)
    grid[ij[:, 0], ij[:, 1]] = True
    labels, n = ndimage.label(grid, structure=np.ones((3, 3), dtype=bool))
    if n <= 1:
        return xy, spacing
    per_sample = labels[ij[:, 0], ij[:, 1]]
    largest = int(np.argmax(np.bincount(per_sample)[1:])) + 1
    return xy[per_sample == largest], spacing


#: surface samples -> the surface built from them (one per name and parameters)
_SURFACES: IdentityCache[SupportSurface | None] = IdentityCache()


def _surface(name: str, samples: SurfaceSamples, params: SurfaceParams) -> SupportSurface | None:
    """``_build_surface``, once per samples object (a scene snapshot's surfaces are asked for many times)."""
    return _SURFACES.get(samples, lambda: _build_surface(name, samples, params), (name, params))


def _build_surface(name: str, samples: SurfaceSamples, params: SurfaceParams) -> SupportSurface | None:
    xy = np.asarray(samples.xy, dtype=np.float64).reshape(-1, 2)
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    if len(xy) < params.min_samples:
        return None
    kept, spacing = _cluster(xy, params)
    if len(kept) < params.min_samples:
        return None
    try:
        hull = ConvexHull(kept)
    except QhullError:                    # all samples on a line: no area
        return None
    outline = kept[hull.vertices]         # counter-clockwise for 2-D input
    outline.setflags(write=False)
    kept.setflags(write=False)
    count = int(round(samples.count * len(kept) / max(len(xy), 1)))
    return SupportSurface(name, float(samples.height), outline, kept, count, spacing, params.thickness_m)


def support_surfaces(scene: Scene, params: SurfaceParams | None = None) -> tuple[SupportSurface, ...]:
    """The scene's named surfaces (see the module docstring for the naming rule): () when its gravity frame
    measured none (static or assumed up)."""
    params = params or SurfaceParams()
    measured = scene.gravity.surfaces
    if not measured:
        return ()
    support, lower = measured[0], measured[1:]
    floor = next((s for s in lower if support.height - s.height >= params.floor_gap_m), None)
    if floor is None and -support.height > params.floor_below_camera_m:
        named = [(FLOOR, support)]
    else:
        named = [(TABLE, support)] + ([(FLOOR, floor)] if floor is not None else [])
    surfaces = (_surface(name, samples, params) for name, samples in named)
    return tuple(s for s in surfaces if s is not None)


#: scene snapshot -> its surfaces' object views (a snapshot never changes; queries ask for them each time)
_VIEWS: IdentityCache[tuple[TrackedObject, ...]] = IdentityCache()


def surface_objects(scene: Scene, params: SurfaceParams | None = None) -> tuple[TrackedObject, ...]:
    """The ``TrackedObject`` views of the scene's surfaces, built once per scene snapshot and parameters."""
    params = params or SurfaceParams()
    return _VIEWS.get(scene, lambda: tuple(s.as_object(scene) for s in support_surfaces(scene, params)), params)


def with_surfaces(scene: Scene, params: SurfaceParams | None = None) -> tuple[TrackedObject, ...]:
    """The scene's objects followed by its surfaces' object views: what names are resolved against."""
    return tuple(scene.objects) + surface_objects(scene, params)


def is_surface(obj: TrackedObject) -> bool:
    """Whether ``obj`` is a support surface's object view."""
    return bool(obj.extra.get("surface", False))


def surface_named(scene: Scene, name: str, params: SurfaceParams | None = None) -> SupportSurface | None:
    """The scene's surface called ``name`` ("table", "floor"), or None."""
    return next((s for s in support_surfaces(scene, params) if s.name == name), None)


def default_surface(scene: Scene, params: SurfaceParams | None = None) -> SupportSurface | None:
    """The support surface objects stand on: the table, else the floor, else None."""
    surfaces = support_surfaces(scene, params)
    return surfaces[0] if surfaces else None


def distance_to_edge(obj: TrackedObject, surface: SupportSurface, scene: Scene,
                     noise: DepthNoiseModel | None = None) -> q.Quantity:
    """Metres from ``obj``'s footprint center to ``surface``'s outline (positive inside, negative outside)."""
    if is_surface(obj):
        raise InputError(f"the distance to the edge of the {surface.name} is measured for an object, not for "
                         f"the {obj.id}")
    noise = noise or DepthNoiseModel()
    xy = scene.center_gravity(obj)[:2]
    spacing, k = surface.edge_spacing(xy)
    d = float(surface.signed_distance(xy)[0]) + 0.5 * spacing
    normal = _edge_normal(surface, k)
    direction_c = scene.gravity.to_camera(np.array([normal[0], normal[1], 0.0]))
    sigma = q.quadrature(spacing / math.sqrt(12.0), q.center_sigma(obj, noise, direction_c, scene.gravity.up))
    where = "inside" if d >= 0 else "outside"
    return q.Quantity("distance_to_edge", d, sigma,
                      f"distance_to_edge: footprint center of {obj.id} is {abs(d):.3f} m {where} the outline of "
                      f"the {surface.name} (visible extent)")


def _edge_normal(surface: SupportSurface, k: int) -> np.ndarray:
    """Unit outward normal (gravity x, y) of outline edge ``k``."""
    e = np.roll(surface.outline, -1, axis=0) - surface.outline
    n = np.array([e[k, 1], -e[k, 0]])     # right of a counter-clockwise edge = outward
    length = math.hypot(float(n[0]), float(n[1]))
    return n / length if length > 0 else np.array([1.0, 0.0])


def height_above(obj: TrackedObject, surface_obj: TrackedObject, scene: Scene,
                 noise: DepthNoiseModel | None = None) -> q.Quantity:
    """Signed height (metres) of ``obj``'s bottom above the top of ``surface_obj`` (a surface's object view or
    any object): ``quantities.vertical_gap``."""
    return q.vertical_gap(obj, surface_obj, noise or DepthNoiseModel())


def near_edge(obj: TrackedObject, surface: SupportSurface, scene: Scene, noise: DepthNoiseModel | None = None,
              threshold_m: float | None = None) -> ThresholdResult:
    """Is ``obj`` near the edge of ``surface``? ``distance_to_edge`` less than ``threshold_m`` (default
    ``NEAR_EDGE_M`` + half the object's footprint)."""
    t = NEAR_EDGE_M + 0.5 * q.footprint(obj) if threshold_m is None else float(threshold_m)
    return threshold_on(distance_to_edge(obj, surface, scene, noise), "less_than", t, obj.id)
