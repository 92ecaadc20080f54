"""Where is up? The gravity frame from the dominant support plane, a configured camera pose, or a default.

SpatialVLM's canonicalisation: find the horizontal support surface (table, floor) with RANSAC and take its
normal as up; on a stream ``GravityEstimator`` tracks that plane between full fits (least squares on its
inliers). Frames: points in the camera optical frame (x right, y down, z forward), metres; the result is
a ``GravityFrame`` (``core.gravity_frame``: z up, origin at the camera center).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
import open3d as o3d
from scipy.linalg import lapack
from scipy.spatial.transform import Rotation

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import check_frame_arrays
from spatial_vlm_ros.core.gravity_frame import GravityFrame, sample_surfaces

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
    """Angle (degrees) between two 3-vectors (scalar maths: this runs several times per frame)."""
    c = float(np.dot(a, b)) / math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


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


def _refine_homogeneous(points_h: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``_refine`` on (4, N) homogeneous points, rows ``x, y, z, 1`` (any float dtype): the same plane and
    error from the 4x4 moment matrix (accumulated in float64) and a 3x3 eigen decomposition instead of an
    SVD of the (N, 3) points (LAPACK ``dsyev`` directly: a fifth of ``np.linalg.eigh``'s overhead)."""
    p = points_h.astype(np.float64)
    m = p @ p.T
    n = m[3, 3]
    sums = m[:3, 3]
    centroid = sums / n
    scatter = m[:3, :3] - centroid[:, None] * sums
    w, v, info = lapack.dsyev(scatter)                             # ascending eigenvalues
    if info != 0:
        w, v = np.linalg.eigh(scatter)
    normal = v[:, 0]
    rms = math.sqrt(max(float(w[0]), 0.0) / (max(n, 4.0) - 3.0))
    sigma_deg = math.degrees(rms / max(math.sqrt(max(float(w[1]), 0.0)), 1e-12))
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
    found = _ransac_horizontal_plane(sample, up, max_tilt_deg, distance_threshold_m, max_planes, iterations,
                                     min_inlier_ratio, min_inliers * sample.shape[0] / pts.shape[0])
    if found is None:
        return None
    refined = _least_squares_refit(pts, *found, distance_threshold_m)
    if refined is None:
        return None
    normal, offset, sigma_deg = refined
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


def _ransac_horizontal_plane(sample: np.ndarray, up: np.ndarray, max_tilt_deg: float, distance_threshold_m: float,
                             max_planes: int, iterations: int, min_inlier_ratio: float, min_remaining: float
                             ) -> tuple[np.ndarray, float] | None:
    """``fit_support_plane``'s RANSAC stage on the (N, 3) ``sample``: the unit normal and offset (metres) of the
    largest plane whose camera-side normal is within ``max_tilt_deg`` of ``up`` among the ``max_planes`` largest, or
    None (too few points left, fewer than ``min_remaining``, or a plane below ``min_inlier_ratio``)."""
    remaining = sample
    for _ in range(max_planes):
        if remaining.shape[0] < max(3, min_remaining):
            return None
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(remaining))
        model, inliers = cloud.segment_plane(distance_threshold_m, 3, iterations)
        normal = np.asarray(model[:3], dtype=np.float64)
        if len(inliers) < 3 or float(len(inliers)) / sample.shape[0] < min_inlier_ratio:
            return None
        norm, offset = float(np.linalg.norm(normal)), float(model[3])
        if offset < 0.0:                  # the camera side: a support is seen from above, so a wall facing
            normal, offset = -normal, -offset   # the camera (its normal pointing down) is skipped, not taken
        if _angle_deg(normal, up) <= max_tilt_deg:
            return normal / norm, offset / norm
        keep = np.ones(remaining.shape[0], dtype=bool)
        keep[np.asarray(inliers)] = False
        remaining = remaining[keep]
    return None


def _least_squares_refit(pts: np.ndarray, normal: np.ndarray, offset: float, distance_threshold_m: float
                         ) -> tuple[np.ndarray, float, float] | None:
    """Least-squares refit of a plane on the (N, 3) points within ``distance_threshold_m`` of it, twice (the
    second with the refined inliers): ``(normal, offset, sigma_deg)``, or None with fewer than 3 inliers."""
    sigma_deg = 0.0
    for _ in range(2):
        inlier = np.abs(pts @ normal + offset) <= distance_threshold_m
        if np.count_nonzero(inlier) < 3:
            return None
        normal, offset, sigma_deg = _refine(pts[inlier])
    return normal, offset, sigma_deg


def highest_support(points_c: np.ndarray, up_c, bin_m: float = 0.01, fraction: float = 0.3) -> float | None:
    """Gravity height (metres, along ``up_c``) of the highest horizontal surface in (N, 3) camera-frame points
    that holds at least ``fraction`` as many points as the largest one: a table rather than the floor
    around it, but not the top of a box on the table. None if there are too few points."""
    h = np.asarray(points_c, dtype=np.float64).reshape(-1, 3) @ np.asarray(up_c, dtype=np.float64)
    return _highest_surface(h[np.isfinite(h) & (np.abs(h) < 100.0)], bin_m, fraction)   # bounded histogram


def _highest_surface(h: np.ndarray, bin_m: float, fraction: float) -> float | None:
    """``highest_support`` on finite, bounded heights ``h`` (metres, any float dtype)."""
    if h.size < 3:
        return None
    lo = float(h.min())
    counts = np.bincount(((h - lo) / bin_m).astype(np.intp), minlength=3)   # "same" keeps >= 3 aligned
    counts = np.convolve(counts, np.ones(3, dtype=np.intp), mode="same")   # a noisy plane spans bins
    top = int(np.flatnonzero(counts >= fraction * counts.max())[-1])
    center = lo + (top + 0.5) * bin_m
    near = h.compress(np.abs(h - center) <= 2.0 * bin_m)      # the top bin or a neighbour holds points
    mid = _median(near)
    core = near.compress(np.abs(near - mid) <= bin_m)
    return _median(core) if core.size else mid


def _median(a: np.ndarray) -> float:
    """``np.median`` of a non-empty 1-D array (the same value) without its overhead."""
    k = a.size // 2
    if a.size % 2:
        return float(np.partition(a, k)[k])
    part = np.partition(a, (k - 1, k))
    return float((part[k - 1] + part[k]) / 2)


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
    plane_sigma_deg: float = 0.3        # error floor of one frame's plane normal (above the measured one,
                                        # docs/measured_defaults.md), added to the fit's statistical error
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
    refit_every_frames: int = 30        # the full RANSAC fit runs at least every this many frames (1 s at
                                        # 30 Hz; 1 = every frame, no tracking); in between the last frame's
                                        # plane is tracked (least squares on its inliers), see GravityEstimator
    track_pixel_stride: int = 12        # tracking samples every this many rows and columns (a ninth of the
                                        # full fit's points; ~1,000 on a table filling half a 640x480 view)
    track_capture_m: float = 0.03       # tracking's first pass takes the points this close to the last plane
                                        # (a camera turning 1 deg per frame moves table points 1.7 m away
                                        # by 3 cm); the second pass uses ``distance_threshold_m``
    track_min_inliers: float = 0.6      # the tracked plane is lost (full fit) when its inliers fall below this
                                        # fraction of those of the last full fit ...
    track_max_turn_deg: float = 3.0     # ... or its normal turned more than this since the last frame


MODES = ("plane", "static", "camera")
_STATE = ("_up", "_height", "_var", "_missed", "_jumps", "_current", "_track_plane", "_track_ref", "_since_fit",
          "last_plane", "tracked", "status", "_surfaces")   # changed by ``update``; copied by checkpoint/rollback
TRACK_MAX_REFITS = 3                    # tracking: least-squares passes within distance_threshold_m, at most ...
TRACK_CONVERGED_DEG = 0.01              # ... until one turns the normal less than this and moves the plane less
                                        # than a tenth of the threshold (static camera: one; 2-3 deg/frame: two)


def _check_params(p: GravityParams) -> None:
    """Raise ``InputError`` for a setting of ``GravityEstimator`` outside its range."""
    if p.mode not in MODES:
        raise InputError(f"gravity: unknown mode '{p.mode}' (expected one of {', '.join(MODES)})")
    if not 0.0 < p.smoothing <= 1.0:
        raise InputError(f"gravity: smoothing must be in (0, 1], got {p.smoothing}")
    if p.plane_sigma_deg <= 0.0 or p.motion_sigma_deg < 0.0 or p.jump_support_fraction <= 0.0:
        raise InputError("gravity: plane_sigma_deg and jump_support_fraction must be > 0, motion_sigma_deg "
                         ">= 0")
    for name in ("refit_every_frames", "pixel_stride", "track_pixel_stride"):
        value = getattr(p, name)
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise InputError(f"gravity: {name} must be an integer >= 1, got {value}")
    if p.track_capture_m < p.distance_threshold_m or not 0.0 < p.track_min_inliers <= 1.0 \
            or p.track_max_turn_deg <= 0.0:
        raise InputError("gravity: track_capture_m must be >= distance_threshold_m, track_min_inliers in "
                         "(0, 1] and track_max_turn_deg > 0")


class GravityEstimator:
    """Per-frame gravity estimate with temporal smoothing and fallbacks.

    ``mode="plane"``: fit the support plane each frame (``fit_support_plane`` on a strided depth cloud,
    objects excluded) for up, and take the support height from ``highest_support`` (a table rather than the
    floor). Frames are fused like a scalar Kalman filter on the tilt: the running estimate's variance grows
    by ``motion_sigma_deg``^2 per frame (the camera may turn), a new fit counts with the variance
    ``plane_sigma_deg``^2 + its least-squares error^2, and its weight is never below ``smoothing``. One
    frame's fit is good to ~0.2 deg, so a new fit weighs ~0.9: the estimate follows a moving camera instead
    of lagging behind it, and only poorly supported fits (few, noisy inliers) are averaged down.

    Tracking: RANSAC is the expensive part, and on a stream the support plane barely moves between frames.
    So after a frame whose plane was accepted, the next frame starts from that plane instead, on a sparser
    grid (``track_pixel_stride``, float32): least squares on the points within ``track_capture_m`` of it,
    then again on those within ``distance_threshold_m`` of the result until the normal settles (the
    refinement a full fit ends with; it converges to the full fit's plane, also for a camera turning 2-3 deg
    per frame). The tracked plane is lost, and the full fit runs in the same frame, when it keeps fewer than
    ``track_min_inliers`` of the last full fit's inliers (the camera was re-placed, the table left the view,
    something covers it), turned more than ``track_max_turn_deg`` in one frame, or fails the full fit's
    tests (inlier ratio, tilt from the prior). The full fit also runs on the first frame, after ``reset()``,
    after a frame without an accepted plane (nothing found, a jump pending confirmation: the jump logic
    below sees only full fits) and at least every ``refit_every_frames`` frames: tracking cannot see a
    larger support surface entering the view (the full fit takes the largest) and could in principle follow
    a plane that slowly bends into another surface; the periodic refit bounds either to one period, and as
    one frame in 30 it leaves the p95 cost a tracked frame's. A tracked plane (its normal, its least-squares
    error, the support height from ``highest_support`` on the tracking grid) is fused exactly like a fitted
    one; ``tracked`` says which one the last frame had.

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
    ``source`` says which one was used, its ``up_from`` where up came from in words ("support plane",
    "tracked support plane", "held support plane", "static orientation parameter", "level camera") and
    ``assumed`` whether up was not measured (mode "camera", or the fallback of mode "plane"; a static pose
    equal to a level camera's, the ROS parameter's default, reads "level camera (static orientation
    parameter)"); ``status`` says why in words;
    ``reset()`` forgets everything (call it when the camera may have been moved to another scene).
    ``checkpoint()``/``rollback()`` undo an ``update`` (a frame the scene memory then rejected).

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
        _check_params(p)
        self._static = None
        if p.static_orientation is not None:
            self._static = gravity_from_static(p.static_orientation, p.static_support_height)
            if p.mode == "plane":           # only a fallback here: up is assumed when it is used
                level = _angle_deg(self._static.up, CAMERA_UP) < 1e-3
                self._static = replace(self._static, assumed=True, up_from="level camera (static orientation "
                                       "parameter)" if level else "static orientation parameter")
        elif p.mode == "static":
            raise InputError("gravity: mode 'static' needs static_orientation (quaternion x, y, z, w)")
        self._grids: dict = {}              # stride -> (intrinsics, flat sample indices, their rx, ry)
        self.reset()

    @property
    def fallback(self) -> GravityFrame:
        """The frame used when no plane is available: the static pose if configured, else a level camera."""
        return self._static if self._static is not None else GravityFrame.camera_default()

    @property
    def current(self) -> GravityFrame | None:
        """The last frame returned by ``update`` (None before the first)."""
        return self._current

    def checkpoint(self) -> dict:
        """The estimator's state, for ``rollback`` (``update`` replaces its arrays, never writes into them)."""
        return {name: getattr(self, name) for name in _STATE}

    def rollback(self, state: dict) -> None:
        """Return to a ``checkpoint``: as if the ``update`` calls since had not happened."""
        for name in _STATE:
            setattr(self, name, state[name])

    def reset(self) -> None:
        """Forget the running estimate (and the tracked plane: the next frame runs the full fit)."""
        self._up: np.ndarray | None = None
        self._height: float | None = None
        self._var = 0.0                     # variance of the running up's tilt, deg^2
        self._missed = 0
        self._jumps = 0
        self._current: GravityFrame | None = None
        self._track_plane: np.ndarray | None = None  # [nx, ny, nz, offset] float32, the last accepted plane
        self._track_ref = 0                 # inliers of the last full fit
        self._since_fit = 0                 # frames tracked since the last full fit
        self.last_plane: SupportPlane | None = None   # its inlier_mask indexes the grid it was fitted on
        self.tracked = False                # whether the last frame's plane was tracked (else fitted or none)
        self.status = "no estimate yet"
        self._surfaces: tuple = ()          # the last accepted frame's measured surfaces (GravityFrame.surfaces)

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
            assert self._static is not None, "__init__ refuses mode 'static' without static_orientation"
            self._current = self._static
            return self._current
        check_frame_arrays(camera, depth=depth_m, mask=exclude_mask, mask_name="gravity exclude mask")
        plane, pts = self._tracked_or_fitted_plane(depth_m, camera, exclude_mask)
        self.last_plane = plane
        if plane is None:
            self._track_plane = None
            return self._hold("no support plane found")
        up_new = plane.normal_c
        h = up_new.astype(pts.dtype) @ pts.T                      # gravity heights of the sampled points
        if not np.abs(h).max(initial=0.0) < 100.0:
            h = np.compress(np.abs(h) < 100.0, h)                 # bounded histogram
        h_new = _highest_surface(h, p.distance_threshold_m, p.support_fraction)
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
        self._track_plane = np.array((*plane.normal_c, plane.offset), dtype=np.float32)
        up, height = self._fuse(up_new, h_new, fit_var)
        # the support's samples, then the fitted plane's when it is another (lower) surface, e.g. the floor
        self._surfaces = sample_surfaces(pts, up, (float(height), -float(plane.offset)), p.distance_threshold_m)
        how = ", tracked" if self.tracked else ""
        self.status = f"support plane fitted ({plane.inlier_ratio:.0%} of sampled points{how})"
        self._current = GravityFrame.from_up(up, support_height=float(height), source="plane",
                                             up_from="tracked support plane" if self.tracked else "support plane",
                                             surfaces=self._surfaces)
        return self._current

    def _tracked_or_fitted_plane(self, depth_m: np.ndarray, camera: CameraModel, exclude_mask: np.ndarray | None
                                 ) -> tuple[SupportPlane | None, np.ndarray]:
        """This frame's support plane, tracked from the last one when allowed, else the full fit (see the class
        docstring), with the (N, 3) camera-frame points it was found on; sets ``tracked``."""
        p = self.params
        track_pts = self._sample(depth_m, camera, exclude_mask, p.track_pixel_stride)
        plane = None
        if self._track_plane is not None and self._jumps == 0 and self._since_fit + 1 < p.refit_every_frames:
            plane = self._track(track_pts)
        self.tracked = plane is not None
        if plane is None:                   # the full fit on the denser grid, in float64
            pts_h = self._sample(depth_m, camera, exclude_mask, p.pixel_stride)
            pts = np.ascontiguousarray(pts_h[:3].T, dtype=np.float64)   # (N, 3)
            plane = self._fit(pts)
            self._since_fit = 0
            if plane is not None:           # what tracking compares with: its inliers on the tracking grid
                plane_h = np.array((*plane.normal_c, plane.offset), dtype=np.float32)
                self._track_ref = int(np.count_nonzero(np.abs(plane_h @ track_pts) <= p.distance_threshold_m))
        else:
            pts = track_pts[:3].T
            self._since_fit += 1
        return plane, pts

    def _fuse(self, up_new: np.ndarray, h_new: float, fit_var: float) -> tuple[np.ndarray, float]:
        """Blend an accepted plane's up and support height (metres) into the running estimate (restarted when
        there is none); returns the new running ``(up, height)``."""
        p = self.params
        if self._up is None or self._height is None:
            self._up, self._height, self._var = up_new, h_new, fit_var
            return self._up, self._height
        prior_var = self._var + p.motion_sigma_deg ** 2
        a = max(p.smoothing, prior_var / (prior_var + fit_var))
        self._var = (1.0 - a) * prior_var
        up = (1.0 - a) * self._up + a * up_new
        self._up = up / np.linalg.norm(up)
        if abs(h_new - self._height) > p.max_height_jump_m:   # another surface: no blending of the two
            self._height = h_new
        else:
            self._height = (1.0 - a) * self._height + a * h_new
        return self._up, self._height

    def _still_supported(self, pts: np.ndarray, plane: SupportPlane) -> bool:
        """Does the running up still explain a support plane about as well as the new fit does? Counts the
        points of the best plane with the running normal (densest ``2 * distance_threshold``-wide height
        slab, found on a histogram) against the new plane's inliers."""
        thr = self.params.distance_threshold_m
        assert self._up is not None, "called only while there is a running up"
        h = pts @ self._up
        h = h[np.isfinite(h)]
        if h.size == 0:
            return False
        counts = np.bincount(((h - h.min()) / thr).astype(np.intp))
        best = int(np.max(counts[:-1] + counts[1:])) if counts.size > 1 else int(counts.sum())
        return bool(best >= self.params.jump_support_fraction * np.count_nonzero(plane.inlier_mask))

    def _hold(self, reason: str) -> GravityFrame:
        self._missed += 1
        if self._up is not None and self._height is not None and self._missed <= self.params.max_hold_frames:
            self.status = f"{reason}: kept the previous plane estimate ({self._missed} frame(s))"
            self._current = GravityFrame.from_up(self._up, support_height=float(self._height), source="plane",
                                                 up_from="held support plane", surfaces=self._surfaces)
        else:
            self._up = self._height = None
            self._surfaces = ()
            fb = self.fallback
            self.status = f"{reason}: up assumed from the {fb.up_from}"
            self._current = fb
        return self._current

    def _sample(self, depth_m: np.ndarray, camera: CameraModel, exclude_mask: np.ndarray | None, stride: int
                ) -> np.ndarray:
        """The depth cloud sampled every ``stride`` rows and columns, objects and far or invalid pixels left
        out: (4, N) float32 homogeneous camera-frame points, rows ``x, y, z, 1`` (metres), in row-major pixel
        order. Inputs are checked by ``update``."""
        key = (camera.width, camera.height, camera.distortion_model, camera.K.tobytes(), camera.D.tobytes())
        cached = self._grids.get(stride)
        if cached is None or cached[0] != key:        # per intrinsics, not per CameraModel object
            rx, ry = camera.ray_grid()
            grid = np.arange(rx.size).reshape(rx.shape)[::stride, ::stride].ravel()   # flat sample indices
            cached = self._grids[stride] = (key, grid, rx.ravel()[grid], ry.ravel()[grid])
        _, grid, rxs, rys = cached
        z = depth_m.ravel().take(grid)    # gathers of the strided samples: cheaper than strided views
        with np.errstate(invalid="ignore"):
            keep = (z > 0.0) & (z < self.params.max_range_m)
        if exclude_mask is not None:
            keep &= ~np.asarray(exclude_mask, dtype=bool).ravel().take(grid)
        idx = keep.nonzero()[0]
        pts = np.empty((4, idx.size), dtype=np.float32)
        pts[2] = z.take(idx)
        np.multiply(rxs.take(idx), pts[2], out=pts[0])
        np.multiply(rys.take(idx), pts[2], out=pts[1])
        pts[3] = 1.0
        return pts

    def _fit(self, pts: np.ndarray) -> SupportPlane | None:
        p = self.params
        prior = self._up if self._up is not None else self.fallback.up
        return fit_support_plane(pts, prior_up=prior, max_tilt_deg=p.max_tilt_deg,
                                 distance_threshold_m=p.distance_threshold_m, max_points=p.max_points,
                                 min_inlier_ratio=p.min_inlier_ratio, seed=p.seed)

    def _track(self, pts_h: np.ndarray) -> SupportPlane | None:
        """The last accepted plane refined on this frame's (4, N) homogeneous points, or None when it is lost
        (see the class docstring)."""
        p = self.params
        n = pts_h.shape[1]
        last = self._track_plane
        assert last is not None, "called only while a plane is tracked"
        plane, normal, offset = last, last[:3], float(last[3])
        for k, band in enumerate((p.track_capture_m, *(p.distance_threshold_m,) * TRACK_MAX_REFITS)):
            inlier = np.abs(plane @ pts_h) <= band
            if np.count_nonzero(inlier) < 3:
                return None
            previous = normal, offset
            normal, offset, sigma_deg = _refine_homogeneous(pts_h.compress(inlier, axis=1))
            if offset < 0.0:                # orient towards the camera (the origin) side, as the full fit
                normal, offset = -normal, -offset
            plane = np.array((*normal, offset), dtype=np.float32)
            if k >= 1 and _angle_deg(normal, previous[0]) < TRACK_CONVERGED_DEG \
                    and abs(offset - previous[1]) < 0.1 * p.distance_threshold_m:
                break                       # converged: this pass's inliers are the plane's
        else:
            inlier = np.abs(plane @ pts_h) <= p.distance_threshold_m
        count = int(np.count_nonzero(inlier))
        prior = self._up if self._up is not None else self.fallback.up
        min_count = 100 * (p.pixel_stride / p.track_pixel_stride) ** 2   # the full fit's 100 on its grid
        if count < max(min_count, p.track_min_inliers * self._track_ref, p.min_inlier_ratio * n) \
                or _angle_deg(normal, last[:3]) > p.track_max_turn_deg \
                or _angle_deg(normal, prior) > p.max_tilt_deg:
            return None
        return SupportPlane(normal, float(offset), inlier, count / n, sigma_deg)
