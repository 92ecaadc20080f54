"""Pinhole camera model from ``sensor_msgs/CameraInfo``: pixel <-> ray, back-projection, projection.

Camera optical frame (REP 103): x right, y down, z forward, metres. Pixel ``(u, v)``: column, row, with
the center of the top-left pixel at ``(0, 0)`` (the CameraInfo / OpenCV convention).

Distortion is honoured only when ``D`` has a non-zero coefficient: ``plumb_bob`` and
``rational_polynomial`` through ``cv2.undistortPoints`` / ``cv2.projectPoints``, ``equidistant`` through
``cv2.fisheye``. Per-pixel rays of the full image are computed once per model and cached
(``ray_grid``), so back-projecting a mask is one vectorised multiply by the depth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import check_image_size

#: Distortion models understood (CameraInfo ``distortion_model`` strings), with their coefficient counts.
DISTORTION_MODELS = {"plumb_bob": (4, 5, 8, 12, 14), "rational_polynomial": (4, 5, 8, 12, 14),
                     "equidistant": (4,)}

#: Plausibility bounds of ``CameraModel.validate``: nominal field of view (deg, each image axis), the
#: largest image side (px) and the largest ratio between fx and fy.
FOV_RANGE_DEG = (1.0, 179.0)
MAX_IMAGE_SIDE_PX = 20000
MAX_PIXEL_ASPECT = 4.0

# Undistortion is iterative; OpenCV's default (5 iterations) leaves ~0.1 px errors on strong lenses.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)


def _intrinsic_arrays(K, D) -> tuple[np.ndarray, np.ndarray]:
    """``K`` as a (3, 3) and ``D`` as a (k,) float64 array (``D`` None: no coefficients)."""
    try:
        return (np.array(K, dtype=np.float64).reshape(3, 3),
                np.array(D if D is not None else [], dtype=np.float64).ravel())
    except (TypeError, ValueError) as err:
        raise InputError(f"camera intrinsics: K must have 9 numbers and D be numeric ({err})") from None


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Intrinsics of one camera: image size (pixels), ``K`` (3x3), distortion ``D`` and its model name."""

    width: int
    height: int
    K: np.ndarray                        # (3, 3) float64 [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    D: np.ndarray                        # (k,) float64 distortion coefficients, may be empty
    distortion_model: str = "plumb_bob"
    frame_id: str = ""
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        K, D = _intrinsic_arrays(self.K, self.D)
        K.setflags(write=False)
        D.setflags(write=False)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "distortion_model", str(self.distortion_model or "plumb_bob"))

    # ------------------------------------------------------------------------------------ constructors
    @classmethod
    def from_intrinsics(cls, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                        D=None, distortion_model: str = "plumb_bob", frame_id: str = "") -> CameraModel:
        """Validated model from focal lengths and principal point (pixels)."""
        K, D = _intrinsic_arrays([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], D)
        camera = cls(width, height, K, D, distortion_model, frame_id)
        camera.validate()
        return camera

    @classmethod
    def from_camera_info_fields(cls, width: int, height: int, k, d, distortion_model: str,
                                frame_id: str = "") -> CameraModel:
        """Validated model from the CameraInfo fields ``width``, ``height``, ``k`` (9, row-major), ``d``."""
        k = list(k)
        if len(k) != 9:
            raise InputError(f"camera_info: K must have 9 values, got {len(k)}")
        K, D = _intrinsic_arrays(k, list(d))
        camera = cls(width, height, K, D, distortion_model, frame_id)
        camera.validate()
        return camera

    def validate(self) -> None:
        """Raise ``InputError`` unless the intrinsics are plausible: positive image size (at most
        ``MAX_IMAGE_SIDE_PX`` a side), finite ``K`` and ``D``, ``K`` of the pinhole form (zero lower
        triangle, ``K[2, 2] = 1``), positive focal lengths whose nominal field of view
        (``2 atan(size / 2f)``, distortion ignored) lies within ``FOV_RANGE_DEG`` in both directions, a pixel
        aspect ratio ``fx / fy`` within ``MAX_PIXEL_ASPECT`` either way, the principal point inside the
        image, and a known distortion model with the right number of coefficients."""
        self._check_image_size()
        self._check_intrinsic_matrix()
        self._check_distortion()

    def _check_image_size(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"camera_info: image size {self.width}x{self.height} is not positive "
                             "(is the camera calibrated?)")
        if max(self.width, self.height) > MAX_IMAGE_SIDE_PX:
            raise InputError(f"camera_info: image size {self.width}x{self.height} is implausible (more than "
                             f"{MAX_IMAGE_SIDE_PX} px a side)")

    def _check_intrinsic_matrix(self) -> None:
        if not np.all(np.isfinite(self.K)):
            raise InputError("camera_info: K contains NaN or infinite values")
        if self.fx <= 0.0 or self.fy <= 0.0:
            raise InputError(f"camera_info: focal lengths fx={self.fx:g}, fy={self.fy:g} must be positive "
                             "(an all-zero K means an uncalibrated camera)")
        if self.K[1, 0] != 0.0 or self.K[2, 0] != 0.0 or self.K[2, 1] != 0.0 or \
                not math.isclose(self.K[2, 2], 1.0, rel_tol=1e-9):
            raise InputError(f"camera_info: K is not a pinhole camera matrix [[fx, s, cx], [0, fy, cy], "
                             f"[0, 0, 1]] (got {np.round(self.K, 6).tolist()})")
        lo, hi = FOV_RANGE_DEG
        for axis, size, focal in (("horizontal", self.width, self.fx), ("vertical", self.height, self.fy)):
            fov = math.degrees(2.0 * math.atan2(size / 2.0, focal))
            if not lo <= fov <= hi:
                raise InputError(f"camera_info: {axis} field of view {fov:.6g} deg (image {size} px, focal "
                                 f"{focal:g} px) is outside the plausible {lo:g}-{hi:g} deg: the intrinsics "
                                 "are garbage or in the wrong units")
        if not 1.0 / MAX_PIXEL_ASPECT <= self.fx / self.fy <= MAX_PIXEL_ASPECT:
            raise InputError(f"camera_info: fx={self.fx:g} and fy={self.fy:g} differ by more than a factor "
                             f"{MAX_PIXEL_ASPECT:g}: implausible pixel aspect ratio")
        if not (0.0 <= self.cx <= self.width and 0.0 <= self.cy <= self.height):
            raise InputError(f"camera_info: principal point ({self.cx:g}, {self.cy:g}) lies outside the "
                             f"{self.width}x{self.height} image")

    def _check_distortion(self) -> None:
        if not np.all(np.isfinite(self.D)):
            raise InputError("camera_info: D contains NaN or infinite values")
        if self.has_distortion:
            counts = DISTORTION_MODELS.get(self.distortion_model)
            if counts is None:
                raise InputError(f"camera_info: unsupported distortion model '{self.distortion_model}' "
                                 f"(supported: {', '.join(DISTORTION_MODELS)})")
            if self.D.size not in counts:
                raise InputError(f"camera_info: distortion model '{self.distortion_model}' takes "
                                 f"{' or '.join(map(str, counts))} coefficients, got {self.D.size}")

    # ------------------------------------------------------------------------------------- properties
    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``, the numpy shape of this camera's images."""
        return (self.height, self.width)

    @property
    def has_distortion(self) -> bool:
        """True when any distortion coefficient is non-zero."""
        return bool(self.D.size and np.any(self.D != 0.0))

    @property
    def _fisheye(self) -> bool:
        return self.distortion_model == "equidistant"

    # ---------------------------------------------------------------------------------------- geometry
    def pixel_rays(self, u, v) -> np.ndarray:
        """(N, 3) rays with ``z = 1`` through pixels ``(u, v)`` (undistorted when ``D`` is non-zero)."""
        u = np.asarray(u, dtype=np.float64).ravel()
        v = np.asarray(v, dtype=np.float64).ravel()
        if u.shape != v.shape:
            raise InputError(f"pixel_rays: u and v have different lengths ({u.size} vs {v.size})")
        rays = np.ones((u.size, 3), dtype=np.float64)
        if u.size == 0:
            return rays
        if not self.has_distortion:
            rays[:, 0] = (u - self.cx) / self.fx
            rays[:, 1] = (v - self.cy) / self.fy
            return rays
        pts = np.stack([u, v], axis=1).reshape(-1, 1, 2)
        if self._fisheye:
            norm = cv2.fisheye.undistortPoints(pts, self.K, self.D, criteria=_UNDISTORT_CRITERIA)
        else:
            # cv2's stub wants matrices for R and P; None (identity, normalised output) is what OpenCV documents
            norm = cv2.undistortPointsIter(pts, self.K, self.D, None, None,  # type: ignore[call-overload]
                                           _UNDISTORT_CRITERIA)
        rays[:, :2] = norm.reshape(-1, 2)
        return rays

    def ray_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Cached ``(rx, ry)``, each (height, width) float32: the ray through pixel ``(u, v)`` is
        ``(rx[v, u], ry[v, u], 1)``, so a pixel at depth ``z`` is ``(rx * z, ry * z, z)``. Read-only."""
        grid = self._cache.get("rays")
        if grid is None:
            if self.width <= 0 or self.height <= 0:
                self.validate()
            vv, uu = np.mgrid[0:self.height, 0:self.width]
            rays = self.pixel_rays(uu.ravel(), vv.ravel())
            rx = rays[:, 0].reshape(self.height, self.width).astype(np.float32)
            ry = rays[:, 1].reshape(self.height, self.width).astype(np.float32)
            rx.setflags(write=False)
            ry.setflags(write=False)
            grid = (rx, ry)
            self._cache["rays"] = grid
        return grid

    def backproject(self, u, v, z) -> np.ndarray:
        """(N, 3) camera-frame points (metres) of pixels ``(u, v)`` at optical depth ``z`` (metres)."""
        rays = self.pixel_rays(u, v)
        z = np.asarray(z, dtype=np.float64).ravel()
        if z.size not in (1, rays.shape[0]):
            raise InputError(f"backproject: {rays.shape[0]} pixels but {z.size} depths")
        return rays * z[:, None]

    def backproject_mask(self, depth_m: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """(N, 3) float32 camera-frame points of the pixels of ``mask`` (all pixels if None) with finite,
        positive depth. ``depth_m`` is (height, width) metres; order is row-major over the image."""
        rx, ry = self.ray_grid()
        check_image_size("depth image", depth_m.shape, rx.shape)
        with np.errstate(invalid="ignore"):
            keep = depth_m > 0.0
        if mask is not None:
            keep &= mask
        z = depth_m[keep]
        return np.stack([rx[keep] * z, ry[keep] * z, z], axis=1)

    def project(self, points) -> np.ndarray:
        """(N, 2) pixel coordinates of (N, 3) camera-frame points; NaN for points with ``z <= 0``."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        out = np.full((p.shape[0], 2), np.nan)
        front = p[:, 2] > 0.0
        if not np.any(front):
            return out
        q = p[front]
        if not self.has_distortion:
            out[front, 0] = self.fx * q[:, 0] / q[:, 2] + self.cx
            out[front, 1] = self.fy * q[:, 1] / q[:, 2] + self.cy
            return out
        rvec = tvec = np.zeros(3)
        if self._fisheye:
            px, _ = cv2.fisheye.projectPoints(q.reshape(-1, 1, 3), rvec, tvec, self.K, self.D)
        else:
            px, _ = cv2.projectPoints(q.reshape(-1, 1, 3), rvec, tvec, self.K, self.D)
        out[front] = px.reshape(-1, 2)
        return out

    def __eq__(self, other) -> bool:
        if not isinstance(other, CameraModel):
            return NotImplemented
        return (self.width == other.width and self.height == other.height
                and np.array_equal(self.K, other.K) and np.array_equal(self.D, other.D)
                and self.distortion_model == other.distortion_model and self.frame_id == other.frame_id)

    def __hash__(self) -> int:
        return hash((self.width, self.height, self.K.tobytes(), self.D.tobytes(), self.distortion_model,
                     self.frame_id))
