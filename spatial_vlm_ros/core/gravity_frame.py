"""The gravity-aligned frame in which boxes, heights and vertical relations are defined.

Gravity frame: origin at the camera center; z up (against gravity); x = the camera's x axis (right)
projected onto the horizontal plane; y = z cross x (forward, horizontal). Metres.
A point maps as ``p_g = R @ p_c`` where ``p_c`` is in the camera optical frame (x right, y down, z forward).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

UP_FROM_SOURCE = {"plane": "support plane", "static": "static orientation parameter", "camera": "level camera"}


def rotation_from_up(up_c: np.ndarray) -> np.ndarray:
    """Rotation ``R`` (3x3) camera optical -> gravity frame, given the up direction in camera coordinates."""
    up = np.asarray(up_c, dtype=np.float64)
    n = np.linalg.norm(up)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError("up direction must be a finite non-zero vector")
    z = up / n
    x = np.array([1.0, 0.0, 0.0]) - z[0] * z      # camera x projected on the horizontal plane
    if np.linalg.norm(x) < 1e-6:                   # camera looking along gravity with x vertical: pick z
        x = np.array([0.0, 0.0, 1.0]) - z[2] * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])                     # rows are the gravity axes in camera coordinates


@dataclass(frozen=True)
class SurfaceSamples:
    """Depth samples on one measured horizontal surface (``core.support_surface`` makes the ``table`` and
    ``floor`` objects of them): its gravity height and the samples' gravity-frame x, y."""

    height: float                        # gravity z of the surface (metres)
    xy: np.ndarray                       # (N, 2) float32 gravity x, y of the samples (metres), read-only;
                                         # at most ``MAX_SURFACE_SAMPLES`` (a fixed random subset beyond)
    count: int                           # samples found on the surface before thinning


MAX_SURFACE_SAMPLES = 20000     # a 640x480 image sampled every 4 pixels has 19,200


def sample_surfaces(points_c: np.ndarray, up_c: np.ndarray, heights, threshold_m: float,
                    min_separation_m: float = 0.05) -> tuple[SurfaceSamples, ...]:
    """The samples of (N, 3) camera-frame points (metres) within ``threshold_m`` of each gravity height in
    ``heights`` (metres, along ``up_c``), one ``SurfaceSamples`` per height that has at least 3; a height
    within ``min_separation_m`` of an earlier one is the same surface and skipped."""
    pts = np.asarray(points_c).reshape(-1, 3)
    rot = rotation_from_up(up_c)
    rot = rot.astype(np.float32) if pts.dtype == np.float32 else rot
    h = pts @ rot[2]
    out: list[SurfaceSamples] = []
    for z in heights:
        z = float(z)
        if not np.isfinite(z) or any(abs(z - s.height) <= min_separation_m for s in out):
            continue
        with np.errstate(invalid="ignore"):
            idx = np.flatnonzero(np.abs(h - z) <= threshold_m)
        if idx.size < 3:
            continue
        count = int(idx.size)
        if count > MAX_SURFACE_SAMPLES:                 # random, not strided: no aliasing with the pixel rows
            idx = np.sort(np.random.default_rng(0).choice(idx, MAX_SURFACE_SAMPLES, replace=False))
        xy = np.ascontiguousarray(pts[idx] @ rot[:2].T, dtype=np.float32)
        xy.setflags(write=False)
        out.append(SurfaceSamples(z, xy, count))
    return tuple(out)


@dataclass(frozen=True)
class GravityFrame:
    """Camera optical -> gravity frame rotation, plus the support surface height if one was found."""

    rotation: np.ndarray                 # (3, 3) R with p_g = R @ p_c
    support_height: float | None = None  # gravity-frame z of the support plane (metres), None if unknown
    source: str = "camera"               # "plane" (fitted), "static" (configured pose) or "camera" (assumed)
    up_from: str = ""                    # where up came from, in words ("support plane", "tracked support
                                         # plane", "static orientation parameter", ...); "" = per ``source``
    assumed: bool | None = None          # up not measured: a level camera, or a fallback pose taken for lack
                                         # of a support plane; None = per ``source`` (only "camera")
    surfaces: tuple[SurfaceSamples, ...] = field(default=(), compare=False, repr=False)
                                         # measured horizontal surfaces, the support (``support_height``)
                                         # first; () when none was measured (static or camera up)

    def __post_init__(self):
        if not self.up_from:
            object.__setattr__(self, "up_from", UP_FROM_SOURCE.get(self.source, self.source))
        if self.assumed is None:
            object.__setattr__(self, "assumed", self.source == "camera")

    @classmethod
    def from_up(cls, up_c, support_height: float | None = None, source: str = "plane", up_from: str = "",
                assumed: bool | None = None, surfaces: tuple[SurfaceSamples, ...] = ()) -> GravityFrame:
        return cls(rotation_from_up(up_c), support_height, source, up_from, assumed, surfaces)

    @classmethod
    def camera_default(cls) -> GravityFrame:
        """Assume the camera is level: up is the camera's -y axis."""
        return cls(rotation_from_up(np.array([0.0, -1.0, 0.0])), None, "camera")

    @cached_property
    def orientation_xyzw(self) -> np.ndarray:
        """(4,) orientation ``(x, y, z, w)``, ``w >= 0``, of the gravity axes in the camera optical frame (the
        rotation camera optical <- gravity, ``R.T``), computed once per frame object (read-only)."""
        from .transforms import matrix_to_quaternion  # a local import: transforms imports this module
        q = matrix_to_quaternion(np.asarray(self.rotation, dtype=np.float64).T)
        q.setflags(write=False)
        return q

    @property
    def up(self) -> np.ndarray:
        """Unit up vector in camera optical coordinates."""
        return self.rotation[2].copy()

    def to_gravity(self, points_c: np.ndarray) -> np.ndarray:
        """(N, 3) or (3,) camera-frame points -> gravity frame."""
        return np.asarray(points_c, dtype=np.float64) @ self.rotation.T

    def to_camera(self, points_g: np.ndarray) -> np.ndarray:
        """(N, 3) or (3,) gravity-frame points -> camera optical frame."""
        return np.asarray(points_g, dtype=np.float64) @ self.rotation
