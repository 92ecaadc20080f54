"""Weight-free tabletop detector: objects are what stands on the dominant support plane.

1. Support plane: up from the frame's gravity estimate (or a RANSAC fit, ``core.gravity.fit_support_plane``,
   when the estimate is only the level-camera default); the support is the highest large horizontal
   surface along up (a table rather than the floor around it).
2. Candidate pixels: valid depth between ``min_height_m`` and ``max_height_m`` above the plane (heights
   along the plane normal, metres).
3. Clusters: 4-connected components of the candidate pixels, with the image cut wherever neighbouring depths
   jump (the farther pixel of the pair is dropped), so objects in front of one another separate. This is a
   3D clustering on the image grid: fast and deterministic. Objects touching in 3D merge.
4. Each cluster becomes an ``Instance`` labelled by its dominant colour, e.g. ``"red object"``; when several
   clusters share a colour a size word is added (``"small red object"``, ``"large red object"``).
The detector has no learned confidence: ``score`` is 1.0.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.colors import color_name, median_color
from spatial_vlm_ros.core.depth import check_depth_image
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity import fit_support_plane, highest_support
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.perception.base import Detector, Instance


@dataclass(frozen=True)
class TabletopParams:
    """Settings of ``TabletopDetector``; metres unless stated."""

    min_height_m: float = 0.012      # candidate pixels are at least this high above the plane ...
    max_height_m: float = 0.6        # ... and at most this high
    max_range_m: float = 3.0         # depth beyond this is ignored
    depth_jump_ratio: float = 0.03   # neighbours whose depths differ by more than ratio * z + 5 mm are cut
    min_pixels: int = 150            # smaller clusters are dropped (noise, slivers)
    max_size_m: float = 0.8          # clusters wider/deeper/taller than this are not tabletop objects
    plane_distance_m: float = 0.01   # RANSAC threshold when the plane is fitted here
    plane_max_tilt_deg: float = 60.0 # ... and the largest angle of its normal from the gravity estimate's up
    plane_stride: int = 4            # pixel stride of the cloud for that fit
    support_fraction: float = 0.3    # the support is the highest horizontal surface with at least this
                                     # fraction of the points of the largest one
    small_m: float = 0.08            # largest extent below this: "small"; above ``large_m``: "large"
    large_m: float = 0.2


class TabletopDetector(Detector):
    """Objects on the support plane as clusters of above-plane depth pixels, named by colour and size."""

    name = "tabletop"

    def __init__(self, params: TabletopParams | None = None):
        self.params = params or TabletopParams()
        self.status = "not run yet"

    def detect(self, rgb: np.ndarray | None, depth_m: np.ndarray, camera: CameraModel,
               gravity: GravityFrame, boxes=None) -> list[Instance]:
        """Instances in one frame (see module doc). Returns [] (and says why in ``status``) when there is no
        support plane. Raises ``InputError`` when depth, colour and camera sizes disagree."""
        p = self.params
        check_depth_image(depth_m, camera.shape)
        if rgb is not None and rgb.shape[:2] != depth_m.shape:
            raise InputError(f"colour image is {rgb.shape[1]}x{rgb.shape[0]} but the depth image is "
                             f"{depth_m.shape[1]}x{depth_m.shape[0]}")
        plane = self._support(depth_m, camera, gravity)
        if plane is None:
            self.status = "no support plane found"
            return []
        up, support = plane
        rx, ry = camera.ray_grid()
        z = depth_m
        with np.errstate(invalid="ignore"):
            valid = (z > 0.0) & (z < p.max_range_m)
            u0, u1, u2 = (float(c) for c in up)
            height = (rx * u0 + ry * u1 + u2) * z - float(support)
            cand = valid & (height > p.min_height_m) & (height < p.max_height_m)
        cand &= ~self._far_side_of_jumps(z)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cand.view(np.uint8), connectivity=4)
        found = []
        for k in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[k])
            if area < p.min_pixels:
                continue
            roi = (slice(y, y + h), slice(x, x + w))
            sel = labels[roi] == k
            extent = self._extent(rx[roi][sel], ry[roi][sel], z[roi][sel], height[roi][sel], up)
            if max(extent) > p.max_size_m:
                continue
            mask = np.zeros(z.shape, dtype=bool)
            mask[roi] = sel
            color = median_color(rgb[roi][sel][:: max(1, area // 2000)]) if rgb is not None else None
            found.append((area, mask, color, extent))
        found.sort(key=lambda f: -f[0])                # largest first: ids 1, 2, ... by pixel area
        self.status = f"{len(found)} object(s) on the support plane"
        return [Instance(f[1], label, 1.0, i) for i, (f, label) in enumerate(zip(found, self._names(found)), 1)]

    def _support(self, depth_m, camera: CameraModel, gravity: GravityFrame):
        """(up (3,), support height) in the camera frame: the up direction of the gravity estimate (or of a
        plane fitted here when the estimate is only the level-camera default), and the height of the highest
        horizontal surface holding at least ``support_fraction`` as many points as the largest one (so a table
        wins over the floor around it)."""
        p = self.params
        s = max(1, p.plane_stride)
        rx, ry = camera.ray_grid()
        z = depth_m[::s, ::s]
        with np.errstate(invalid="ignore"):
            ok = (z > 0.0) & (z < p.max_range_m)
        zk = z[ok]
        pts = np.stack([rx[::s, ::s][ok] * zk, ry[::s, ::s][ok] * zk, zk], axis=1).astype(np.float64)
        if gravity.source in ("plane", "static"):
            up = gravity.up
        else:
            plane = fit_support_plane(pts, prior_up=gravity.up, max_tilt_deg=p.plane_max_tilt_deg,
                                      distance_threshold_m=p.plane_distance_m)
            if plane is None:
                return None
            up = plane.normal_c
        support = highest_support(pts, up, bin_m=p.plane_distance_m, fraction=p.support_fraction)
        return None if support is None else (up, support)

    def _far_side_of_jumps(self, z: np.ndarray) -> np.ndarray:
        """Pixels whose 4-neighbour is much nearer: the background side of a depth discontinuity."""
        r = self.params.depth_jump_ratio
        cut = np.zeros(z.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            for a, b, ca, cb in ((z[:, :-1], z[:, 1:], cut[:, :-1], cut[:, 1:]),
                                 (z[:-1, :], z[1:, :], cut[:-1, :], cut[1:, :])):
                jump = np.abs(a - b) > r * np.fmin(a, b) + 0.005
                ca |= jump & (a > b)
                cb |= jump & (b > a)
        return cut

    @staticmethod
    def _extent(rx, ry, z, height, up) -> tuple[float, float, float]:
        """Horizontal extents (two axes of the plane) and height (metres) of a cluster, robust to strays."""
        pts = np.stack([rx * z, ry * z, z], axis=1).astype(np.float64)
        a = np.cross(up, [0.0, 0.0, 1.0])
        a = a / np.linalg.norm(a) if np.linalg.norm(a) > 1e-6 else np.array([1.0, 0.0, 0.0])
        b = np.cross(up, a)
        lo, hi = np.percentile(np.stack([pts @ a, pts @ b, height], axis=1), [2.0, 98.0], axis=0)
        return float(hi[0] - lo[0]), float(hi[1] - lo[1]), float(hi[2])

    def _names(self, found) -> list[str]:
        p = self.params
        base = [f"{color_name(c)} object" if c is not None else "object" for _, _, c, _ in found]
        names = []
        for b, (_, _, _, extent) in zip(base, found):
            if base.count(b) > 1:
                size = max(extent)
                word = "small" if size < p.small_m else "large" if size > p.large_m else "medium"
                b = f"{word} {b}"
            names.append(b)
        return names
