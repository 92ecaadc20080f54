"""Where is up? The gravity frame from the dominant support plane, a configured camera pose, or a default.

SpatialVLM's canonicalisation: find the horizontal support surface (table, floor) with RANSAC and take its
normal as up. Frames: points in the camera optical frame (x right, y down, z forward), metres; the result is
a ``GravityFrame`` (``core.gravity_frame``: z up, origin at the camera centre).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import open3d as o3d
from scipy.spatial.transform import Rotation

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.depth import check_depth_image
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity_frame import GravityFrame

CAMERA_UP = np.array([0.0, -1.0, 0.0])   # a level camera's up direction in optical coordinates


@dataclass(frozen=True)
class SupportPlane:
    """Plane ``normal_c . p + offset = 0`` in the camera frame; ``normal_c`` (unit) points to the camera's
    side of the plane, i.e. up for a surface seen from above, so ``offset`` (metres) is the camera's height
    above the plane. ``inlier_mask`` selects the input points within the RANSAC threshold."""

    normal_c: np.ndarray
    offset: float
    inlier_mask: np.ndarray
    inlier_ratio: float
    normal_sigma_deg: float = 0.0     # statistical one-sigma error of the normal (least squares), degrees

    def height_of(self, points_c: np.ndarray) -> np.ndarray:
        """Signed distance (metres) of (N, 3) camera-frame points above the plane."""
        return np.asarray(points_c, dtype=np.float64) @ self.normal_c + self.offset


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _refine(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares plane through (N, 3) points (smallest principal axis): unit normal, offset and the
    normal's one-sigma tilt error in degrees, ``rms residual / (sqrt(N) * in-plane spread)`` along the
    narrower in-plane axis (independent residuals assumed: a lower bound for correlated sensor noise)."""
    centroid = points.mean(axis=0)
    _, s, vt = np.linalg.svd(points - centroid, full_matrices=False)
    normal = vt[2]
    n = max(points.shape[0], 4)
    rms = s[2] / np.sqrt(n - 3)
    sigma_deg = float(np.degrees(rms / max(s[1], 1e-12)))
    return normal, -float(normal @ centroid), sigma_deg


def fit_support_plane(points_c: np.ndarray, prior_up=None, max_tilt_deg: float = 35.0,
                      distance_threshold_m: float = 0.01, max_points: int = 3000, max_planes: int = 4,
                      min_inlier_ratio: float = 0.05, min_inliers: int = 100, iterations: int = 200,
                      seed: int | None = 0) -> SupportPlane | None:
    """The largest roughly horizontal plane in (N, 3) camera-frame points (metres), or None.

    RANSAC (open3d ``segment_plane``) on at most ``max_points`` randomly drawn points: the largest plane is
    taken if its normal lies within ``max_tilt_deg`` of ``prior_up`` (default: a level camera's up, -y);
    otherwise its points are removed and the next largest is tried, up to ``max_planes``. The winner is
    refined by least squares on its inliers among all input points. ``seed`` makes the result repeatable
    (it seeds open3d's global generator; None leaves it alone).
    """
    all_pts = np.asarray(points_c, dtype=np.float64).reshape(-1, 3)
    finite = np.all(np.isfinite(all_pts), axis=1)
    pts = all_pts[finite]
    up = np.asarray(prior_up if prior_up is not None else CAMERA_UP, dtype=np.float64)
    up = up / np.linalg.norm(up)
    if pts.shape[0] < max(3, min_inliers):
        return None
    rng = np.random.default_rng(seed)
    sample = pts if pts.shape[0] <= max_points else pts[rng.choice(pts.shape[0], max_points, replace=False)]
    if seed is not None:
        o3d.utility.random.seed(int(seed))
    remaining = sample
    for _ in range(max_planes):
        if remaining.shape[0] < max(3, min_inliers * sample.shape[0] / pts.shape[0]):
            return None
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(remaining))
        model, inliers = cloud.segment_plane(distance_threshold_m, 3, iterations)
        normal = np.asarray(model[:3], dtype=np.float64)
        if len(inliers) < 3 or float(len(inliers)) / sample.shape[0] < min_inlier_ratio:
            return None
        if _angle_deg(normal, up) <= max_tilt_deg or _angle_deg(-normal, up) <= max_tilt_deg:
            break
        keep = np.ones(remaining.shape[0], dtype=bool)
        keep[np.asarray(inliers)] = False
        remaining = remaining[keep]
    else:
        return None
    offset = float(model[3]) / float(np.linalg.norm(normal))
    normal = normal / np.linalg.norm(normal)
    # Least-squares refit on all input points near the plane, twice (the second with the refined inliers).
    for _ in range(2):
        inlier = np.abs(pts @ normal + offset) <= distance_threshold_m
        if np.count_nonzero(inlier) < 3:
            return None
        normal, offset, sigma_deg = _refine(pts[inlier])
    if offset < 0.0:                      # orient towards the camera (the origin) side
        normal, offset = -normal, -offset
    if _angle_deg(normal, up) > max_tilt_deg:
        return None
    inlier = np.abs(pts @ normal + offset) <= distance_threshold_m
    if np.count_nonzero(inlier) < min_inliers:
        return None
    mask = np.zeros(all_pts.shape[0], dtype=bool)
    mask[np.flatnonzero(finite)[inlier]] = True
    return SupportPlane(normal, offset, mask, float(np.count_nonzero(inlier)) / pts.shape[0], sigma_deg)


def highest_support(points_c: np.ndarray, up_c, bin_m: float = 0.01, fraction: float = 0.3) -> float | None:
    """Gravity height (metres, along ``up_c``) of the highest horizontal surface in (N, 3) camera-frame points
    that holds at least ``fraction`` as many points as the largest one: a table rather than the floor
    around it, but not the top of a box on the table. None if there are too few points."""
    h = np.asarray(points_c, dtype=np.float64).reshape(-1, 3) @ np.asarray(up_c, dtype=np.float64)
    h = h[np.isfinite(h) & (np.abs(h) < 100.0)]          # bounded histogram
    if h.size < 3:
        return None
    lo = float(h.min())
    counts = np.bincount(((h - lo) / bin_m).astype(np.intp), minlength=3)   # "same" keeps >= 3 aligned
    counts = np.convolve(counts, np.ones(3, dtype=np.intp), mode="same")   # a noisy plane spans bins
    top = int(np.flatnonzero(counts >= fraction * counts.max())[-1])
    centre = lo + (top + 0.5) * bin_m
    near = h[np.abs(h - centre) <= 2.0 * bin_m]              # the top bin or a neighbour holds points
    mid = float(np.median(near))
    core = near[np.abs(near - mid) <= bin_m]
    return float(np.median(core)) if core.size else mid


def gravity_from_plane(plane: SupportPlane) -> GravityFrame:
    """Gravity frame with up = the plane normal; ``support_height`` = the plane's gravity z (negative when
    the camera is above it), ``source="plane"``."""
    return GravityFrame.from_up(plane.normal_c, support_height=-float(plane.offset), source="plane")


def gravity_from_static(orientation, support_height: float | None = None) -> GravityFrame:
    """Gravity frame from the camera optical frame's orientation in a z-up world (e.g. from TF/URDF).

    ``orientation``: quaternion ``(x, y, z, w)`` or a 3x3 rotation, camera optical -> world (columns are the
    optical axes in world coordinates). Yaw is irrelevant. ``source="static"``.
    """
    o = np.asarray(orientation, dtype=np.float64)
    if not np.all(np.isfinite(o)):
        raise InputError("static camera orientation contains NaN or infinite values")
    if o.shape == (4,):
        if np.linalg.norm(o) < 1e-9:
            raise InputError("static camera orientation: the quaternion is zero")
        R_wc = Rotation.from_quat(o).as_matrix()
    elif o.shape == (3, 3):
        R_wc = o
    else:
        raise InputError(f"static camera orientation: expected a quaternion (x, y, z, w) or a 3x3 matrix, "
                         f"got shape {o.shape}")
    up_c = R_wc.T @ np.array([0.0, 0.0, 1.0])
    return GravityFrame.from_up(up_c, support_height=support_height, source="static")


@dataclass(frozen=True)
class GravityParams:
    """Configuration of ``GravityEstimator``. Angles in degrees, lengths in metres."""

    mode: str = "plane"                 # "plane" (fit per frame), "static" (configured pose), "camera" (level)
    static_orientation: tuple | None = None  # quaternion (x, y, z, w) camera optical -> z-up world
    static_support_height: float | None = None  # gravity z of the support surface for "static", if known
    smoothing: float = 0.3              # smallest weight of a new plane estimate in the running average
                                        # (1 = no smoothing); the weight is usually larger, see below
    plane_sigma_deg: float = 0.3        # error floor of one frame's plane normal (measured on the rendered
                                        # stereo-like scenes: 0.1-0.2 deg), added to the fit's statistical error
    motion_sigma_deg: float = 1.0       # how far the up vector may turn between two frames (camera motion),
                                        # one sigma; with the floor above a new fit weighs ~0.9
    max_tilt_deg: float = 75.0          # plane normals further than this from the prior up (the current
                                        # estimate, else the fallback) are not support; 75 lets a level prior
                                        # find the table under a camera pitched up to ~70 deg down (at 60, a
                                        # camera pitched 60 deg lost its table to noise in some frames)
    max_jump_deg: float = 10.0          # a fitted up this far from the current one is taken at once when
                                        # the current up no longer explains a support plane (the camera
                                        # moved: see ``jump_support_fraction``), else it is an outlier ...
    jump_confirm_frames: int = 3        # ... unless it repeats this many frames in a row (camera moved)
    jump_support_fraction: float = 0.5  # the current up "still explains the support" when the best plane
                                        # with that normal holds this fraction of the new plane's inliers
    max_hold_frames: int = 30           # frames a previous plane estimate is kept when no plane is found
    distance_threshold_m: float = 0.01  # RANSAC inlier distance
    support_fraction: float = 0.3       # support = highest horizontal surface with this fraction of the
                                        # largest one's points (``highest_support``: the table, not the floor)
    max_height_jump_m: float = 0.05     # a support height this far from the average replaces it
    pixel_stride: int = 4               # depth pixels sampled every ``stride`` rows and columns
    max_range_m: float = 4.0            # depth beyond this is ignored for the fit
    max_points: int = 3000              # RANSAC sample size
    min_inlier_ratio: float = 0.1       # of the sampled points
    seed: int | None = 0


MODES = ("plane", "static", "camera")


class GravityEstimator:
    """Per-frame gravity estimate with temporal smoothing and fallbacks.

    ``mode="plane"``: fit the support plane each frame (``fit_support_plane`` on a strided depth cloud,
    objects excluded) for up, and take the support height from ``highest_support`` (a table rather than the
    floor). Frames are fused like a scalar Kalman filter on the tilt: the running estimate's variance grows
    by ``motion_sigma_deg``^2 per frame (the camera may turn), a new fit counts with the variance
    ``plane_sigma_deg``^2 + its least-squares error^2, and its weight is never below ``smoothing``. One
    frame's fit is good to ~0.2 deg, so a new fit weighs ~0.9: the estimate follows a moving camera instead
    of lagging behind it, and only poorly supported fits (few, noisy inliers) are averaged down.

    A fitted up more than ``max_jump_deg`` from the running one is either a camera that was moved (taken at
    once, the average restarts) or a wrong fit (another large tilted surface; ignored). It is the former when
    the running up no longer explains the support: the best plane with the running normal holds less than
    ``jump_support_fraction`` of the new plane's inliers (a table seen with a stale up spreads over many
    heights). Otherwise the running estimate is kept, unless the jump repeats for ``jump_confirm_frames``
    frames. So a frame is never lifted with a stale up after the camera was re-placed.

    When no plane is found the previous plane estimate is kept for ``max_hold_frames`` frames, then the
    fallback is used: the static pose if configured, else a level camera. A configured static pose also
    serves as the prior up in plane mode (needed for cameras pitched more than ``max_tilt_deg`` down, e.g.
    looking straight down). ``mode="static"``/``"camera"`` always return that frame. The returned frame's
    ``source`` says which one was used; ``status`` says why in words; ``reset()`` forgets everything (call
    it when the camera may have been moved to another scene).

    Build with ``GravityEstimator(GravityParams(...))`` or keyword fields, ``GravityEstimator(mode="static",
    static_orientation=(x, y, z, w))``.
    """

    def __init__(self, params: GravityParams | None = None, **overrides):
        names = {f.name for f in fields(GravityParams)}
        unknown = set(overrides) - names
        if unknown:
            raise InputError(f"gravity: unknown setting(s) {', '.join(sorted(unknown))}")
        self.params = replace(params or GravityParams(), **overrides)
        p = self.params
        if p.mode not in MODES:
            raise InputError(f"gravity: unknown mode '{p.mode}' (expected one of {', '.join(MODES)})")
        if not 0.0 < p.smoothing <= 1.0:
            raise InputError(f"gravity: smoothing must be in (0, 1], got {p.smoothing}")
        if p.plane_sigma_deg <= 0.0 or p.motion_sigma_deg < 0.0 or p.jump_support_fraction <= 0.0:
            raise InputError("gravity: plane_sigma_deg and jump_support_fraction must be > 0, motion_sigma_deg "
                             ">= 0")
        self._static = None
        if p.static_orientation is not None:
            self._static = gravity_from_static(p.static_orientation, p.static_support_height)
        elif p.mode == "static":
            raise InputError("gravity: mode 'static' needs static_orientation (quaternion x, y, z, w)")
        self.reset()

    @property
    def fallback(self) -> GravityFrame:
        """The frame used when no plane is available: the static pose if configured, else a level camera."""
        return self._static if self._static is not None else GravityFrame.camera_default()

    @property
    def current(self) -> GravityFrame | None:
        """The last frame returned by ``update`` (None before the first)."""
        return self._current

    def reset(self) -> None:
        """Forget the running estimate."""
        self._up: np.ndarray | None = None
        self._height: float | None = None
        self._var = 0.0                     # variance of the running up's tilt, deg^2
        self._missed = 0
        self._jumps = 0
        self._current: GravityFrame | None = None
        self.last_plane: SupportPlane | None = None
        self.status = "no estimate yet"

    def update(self, depth_m: np.ndarray, camera: CameraModel, exclude_mask: np.ndarray | None = None
               ) -> GravityFrame:
        """Gravity frame for this frame. ``depth_m`` (H, W) metres with NaN invalid; ``exclude_mask`` (H, W)
        bool marks pixels that must not be taken for the support (detected objects)."""
        p = self.params
        if p.mode == "camera":
            self.status = "level camera assumed (mode 'camera')"
            self._current = GravityFrame.camera_default()
            return self._current
        if p.mode == "static":
            self.status = "configured static camera pose"
            self._current = self._static
            return self._current
        plane, pts = self._fit(depth_m, camera, exclude_mask)
        self.last_plane = plane
        if plane is None:
            return self._hold("no support plane found")
        up_new = plane.normal_c
        h_new = highest_support(pts, up_new, bin_m=p.distance_threshold_m, fraction=p.support_fraction)
        h_new = -plane.offset if h_new is None else h_new
        fit_var = p.plane_sigma_deg ** 2 + plane.normal_sigma_deg ** 2
        if self._up is not None and _angle_deg(up_new, self._up) > p.max_jump_deg:
            jump = _angle_deg(up_new, self._up)
            self._jumps += 1
            if self._jumps < p.jump_confirm_frames and self._still_supported(pts, plane):
                return self._hold(f"plane normal jumped {jump:.1f} deg while the current up still fits the "
                                  f"support")
            self._up = None                 # the camera moved: restart the average
        self._jumps = 0
        self._missed = 0
        if self._up is None:
            self._up, self._height, self._var = up_new, h_new, fit_var
        else:
            prior_var = self._var + p.motion_sigma_deg ** 2
            a = max(p.smoothing, prior_var / (prior_var + fit_var))
            self._var = (1.0 - a) * prior_var
            up = (1.0 - a) * self._up + a * up_new
            self._up = up / np.linalg.norm(up)
            if abs(h_new - self._height) > p.max_height_jump_m:   # another surface: no blending of the two
                self._height = h_new
            else:
                self._height = (1.0 - a) * self._height + a * h_new
        self.status = f"support plane fitted ({plane.inlier_ratio:.0%} of sampled points)"
        self._current = GravityFrame.from_up(self._up, support_height=float(self._height), source="plane")
        return self._current

    def _still_supported(self, pts: np.ndarray, plane: SupportPlane) -> bool:
        """Does the running up still explain a support plane about as well as the new fit does? Counts the
        points of the best plane with the running normal (densest ``2 * distance_threshold``-wide height
        slab, found on a histogram) against the new plane's inliers."""
        thr = self.params.distance_threshold_m
        h = pts @ self._up
        h = h[np.isfinite(h)]
        if h.size == 0:
            return False
        counts = np.bincount(((h - h.min()) / thr).astype(np.intp))
        best = int(np.max(counts[:-1] + counts[1:])) if counts.size > 1 else int(counts.sum())
        return best >= self.params.jump_support_fraction * np.count_nonzero(plane.inlier_mask)

    def _hold(self, reason: str) -> GravityFrame:
        self._missed += 1
        if self._up is not None and self._missed <= self.params.max_hold_frames:
            self.status = f"{reason}: kept the previous plane estimate ({self._missed} frame(s))"
            self._current = GravityFrame.from_up(self._up, support_height=float(self._height), source="plane")
        else:
            self._up = self._height = None
            fb = self.fallback
            self.status = f"{reason}: using the {'static pose' if fb.source == 'static' else 'level camera'}"
            self._current = fb
        return self._current

    def _fit(self, depth_m: np.ndarray, camera: CameraModel, exclude_mask: np.ndarray | None
             ) -> tuple[SupportPlane | None, np.ndarray]:
        p = self.params
        check_depth_image(depth_m, camera.shape)
        s = max(1, int(p.pixel_stride))
        z = depth_m[::s, ::s]
        rx, ry = camera.ray_grid()
        rx, ry = rx[::s, ::s], ry[::s, ::s]
        with np.errstate(invalid="ignore"):
            keep = (z > 0.0) & (z < p.max_range_m)
        if exclude_mask is not None:
            if exclude_mask.shape != depth_m.shape:
                raise InputError(f"gravity: exclude mask is {exclude_mask.shape[1]}x{exclude_mask.shape[0]}, "
                                 f"depth is {depth_m.shape[1]}x{depth_m.shape[0]}")
            keep &= ~exclude_mask[::s, ::s]
        zk = z[keep]
        pts = np.stack([rx[keep] * zk, ry[keep] * zk, zk], axis=1).astype(np.float64)
        prior = self._up if self._up is not None else self.fallback.up
        plane = fit_support_plane(pts, prior_up=prior, max_tilt_deg=p.max_tilt_deg,
                                  distance_threshold_m=p.distance_threshold_m, max_points=p.max_points,
                                  min_inlier_ratio=p.min_inlier_ratio, seed=p.seed)
        return plane, pts
