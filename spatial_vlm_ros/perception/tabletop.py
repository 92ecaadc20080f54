"""Weight-free tabletop detector: objects are what stands on the dominant support plane.

1. Support plane: up from the frame's gravity estimate (or a RANSAC fit, ``core.gravity.fit_support_plane``,
   when the estimate is only the level-camera default); the support is the highest large horizontal
   surface along up (a table rather than the floor around it).
2. Candidate pixels: valid depth between ``min_height_m`` and ``max_height_m`` above the plane (heights
   along the plane normal, metres).
3. Clusters: 4-connected components of the candidate pixels, with the image cut wherever neighbouring depths
   jump (the farther pixel of the pair is dropped), so objects in front of one another separate. This is a
   3D clustering on the image grid: fast and deterministic. Clusters that meet through invalid-depth pixels
   of about one depth (dropouts on dark or shiny surfaces) and share a color are joined
   (``hole_bridge_px``, ``hole_join_color_delta``; pieces of two colors bridged together make two objects,
   e.g. a speckled black block and the can standing on it); clusters under ``min_pixels`` are dropped, and those
   under ``sliver_pixels`` lying beside a larger cluster of their color (slivers cut off by a jump).
4. Stacks: an object resting on another one touches it, so the two form one cluster. A cluster is split
   where its height histogram has a horizontal face (a peak: many pixels at one height, the top of the lower
   object) with enough pixels above it that lie, seen from above, over that face (the upper object's
   footprint is on the support's top; a bowl's inner bottom, whose walls rise AROUND it, is not split).
   Pixels higher than the face (plus ``stack_face_tol_m``) go to the upper object, the rest to the lower.
5. Each cluster becomes an ``Instance`` labelled by its dominant color, e.g. ``"red object"``; when several
   clusters share a color a size word is added (``"small red object"``, ``"large red object"``).
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
    min_pixels: int = 80             # smaller clusters are dropped (noise)
    sliver_pixels: int = 150         # smaller clusters next to a larger one of their color are dropped ...
    sliver_gap_px: int = 3           # ... "next to": within this many pixels
    hole_bridge_px: int = 2          # clusters meeting through invalid-depth pixels within this many px ...
    hole_join_color_delta: float = 12.0  # ... are one object when their colors differ by at most this Delta E
    stack_split: bool = True         # split clusters of an object resting on another one (module doc, 4)
    stack_bin_m: float = 0.004       # height-histogram bin for finding the lower object's top face
    stack_face_min_pixels: int = 40  # a top face has at least this many pixels in its peak (+- one bin) ...
    stack_face_ratio: float = 2.5    # ... and this many times the cluster's median bin count
    stack_face_tol_m: float = 0.008  # pixels this much above the face belong to the upper object
    stack_min_rise_m: float = 0.02   # the upper object reaches at least this far above the face
    stack_inside: float = 0.8        # fraction of upper pixels over the face's footprint (dilated 1 cm)
    stack_min_color_delta: float = 20.0  # and the parts' median colors differ by this CIE76 Delta E (Lab)
    max_size_m: float = 0.8          # clusters wider/deeper/taller than this are not tabletop objects
    plane_distance_m: float = 0.01   # RANSAC threshold when the plane is fitted here
    plane_max_tilt_deg: float = 60.0 # ... and the largest angle of its normal from the gravity estimate's up
    plane_stride: int = 4            # pixel stride of the cloud for that fit
    support_fraction: float = 0.3    # the support is the highest horizontal surface with at least this
                                     # fraction of the points of the largest one
    small_m: float = 0.08            # largest extent below this: "small"; above ``large_m``: "large"
    large_m: float = 0.2


def _lab(rgb) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB colors (..., 3) in 0..255."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]])
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
                    axis=-1)


def color_delta(a, b) -> float:
    """CIE76 Delta E between two RGB colors (3,) in 0..255, or between the median colors of two sets of
    (N, 3) pixels (0 = same color; about 2.3 is a just-noticeable difference)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 2:
        a = median_color(a[:: max(1, len(a) // 2000)])
    if b.ndim == 2:
        b = median_color(b[:: max(1, len(b) // 2000)])
    return float(np.linalg.norm(_lab(a) - _lab(b)))


class TabletopDetector(Detector):
    """Objects on the support plane as clusters of above-plane depth pixels, named by color and size."""

    name = "tabletop"

    def __init__(self, params: TabletopParams | None = None):
        self.params = params or TabletopParams()
        self.status = "not run yet"

    def detect(self, rgb: np.ndarray | None, depth_m: np.ndarray, camera: CameraModel,
               gravity: GravityFrame, boxes=None) -> list[Instance]:
        """Instances in one frame (see module doc). Returns [] (and says why in ``status``) when there is no
        support plane. Raises ``InputError`` when depth, color and camera sizes disagree."""
        p = self.params
        check_depth_image(depth_m, camera.shape)
        if rgb is not None and rgb.shape[:2] != depth_m.shape:
            raise InputError(f"color image is {rgb.shape[1]}x{rgb.shape[0]} but the depth image is "
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
        jumps = self._jumps(z)
        cand &= ~self._far_side(jumps, z)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cand.view(np.uint8), connectivity=4)
        if p.hole_bridge_px > 0 and n > 2:
            n, labels, stats = self._join_across_holes(labels, n, stats, cand, z, valid, rgb)
        a_axis, b_axis = self._plane_axes(up)
        found = []
        for k in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[k])
            if area < p.min_pixels:
                continue
            roi = (slice(y, y + h), slice(x, x + w))
            sel = labels[roi] == k
            if int(sel.sum()) >= p.min_pixels:
                found.extend(self._cluster_objects(sel, (x, y), z, height, (rx, ry), (a_axis, b_axis), rgb))
        found.sort(key=lambda f: -f[0])                # largest first: ids 1, 2, ... by pixel area
        found = self._drop_slivers(found)
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

    def _jumps(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Depth discontinuities between horizontal (H, W-1) and vertical (H-1, W) neighbours: depths differ
        by more than ``depth_jump_ratio`` * z + 5 mm (NaN pairs are no jump)."""
        r = self.params.depth_jump_ratio
        with np.errstate(invalid="ignore"):
            return tuple(np.abs(a - b) > r * np.fmin(a, b) + 0.005
                         for a, b in ((z[:, :-1], z[:, 1:]), (z[:-1, :], z[1:, :])))

    @staticmethod
    def _far_side(jumps, z: np.ndarray) -> np.ndarray:
        """Pixels whose 4-neighbour is much nearer: the background side of a depth discontinuity."""
        cut = np.zeros(z.shape, dtype=bool)
        (jh, jv) = jumps
        with np.errstate(invalid="ignore"):
            cut[:, :-1] |= jh & (z[:, :-1] > z[:, 1:])
            cut[:, 1:] |= jh & (z[:, 1:] > z[:, :-1])
            cut[:-1, :] |= jv & (z[:-1, :] > z[1:, :])
            cut[1:, :] |= jv & (z[1:, :] > z[:-1, :])
        return cut

    def _drop_slivers(self, found: list) -> list:
        """Drop clusters under ``sliver_pixels`` that lie within ``sliver_gap_px`` of a larger cluster of the
        same color (Delta E <= ``hole_join_color_delta``): pieces of that object cut off by a depth jump or
        dropouts, not objects of their own. ``found`` is sorted largest first."""
        p = self.params
        if p.sliver_pixels <= p.min_pixels or len(found) < 2:
            return found
        kernel = np.ones((2 * p.sliver_gap_px + 1, 2 * p.sliver_gap_px + 1), np.uint8)
        keep = []
        for i, f in enumerate(found):
            if f[0] < p.sliver_pixels and f[2] is not None:
                grown = cv2.dilate(f[1].view(np.uint8), kernel).view(bool)
                if any(g[2] is not None and (grown & g[1]).any()
                       and color_delta(f[2], g[2]) <= p.hole_join_color_delta for g in found[:i]):
                    continue
            keep.append(f)
        return keep

    def _cluster_objects(self, sel: np.ndarray, corner: tuple[int, int], z: np.ndarray, height: np.ndarray,
                         rays: tuple[np.ndarray, np.ndarray], axes: tuple[np.ndarray, np.ndarray],
                         rgb: np.ndarray | None) -> list[tuple]:
        """The objects of one cluster (``sel``: its pixels in its bounding rectangle, top-left ``corner``
        (x, y) in pixels): the whole cluster, or the lower and upper part of a stack (``stack_split``), each
        as ``(pixel count, full-size mask, median color or None, extent)`` when it is large enough and not
        larger than ``max_size_m``. ``height``: gravity height above the support (metres) per pixel; ``rays``
        the camera's ray grid; ``axes`` two orthonormal directions in the support plane."""
        p = self.params
        x, y = corner
        roi = (slice(y, y + sel.shape[0]), slice(x, x + sel.shape[1]))
        (rx, ry), (a_axis, b_axis) = rays, axes
        zs, hs = z[roi][sel], height[roi][sel]
        pts = np.stack([rx[roi][sel] * zs, ry[roi][sel] * zs, zs], axis=1).astype(np.float64)
        horiz = np.stack([pts @ a_axis, pts @ b_axis], axis=1)
        parts = [np.ones(zs.size, dtype=bool)]
        if p.stack_split:
            colors = rgb[roi][sel] if rgb is not None else None
            upper = self._upper_of_stack(hs, horiz, colors)
            if upper is not None:
                parts = [~upper, upper]
        rows, cols = np.nonzero(sel)
        found = []
        for part in parts:
            count = int(part.sum())
            if count < p.min_pixels:
                continue
            extent = self._extent(horiz[part], hs[part])
            if max(extent) > p.max_size_m:
                continue
            mask = np.zeros(z.shape, dtype=bool)
            mask[rows[part] + y, cols[part] + x] = True
            color = None
            if rgb is not None:
                color = median_color(rgb[roi][sel][part][:: max(1, count // 2000)])
            found.append((count, mask, color, extent))
        return found

    def _join_across_holes(self, labels: np.ndarray, n: int, stats: np.ndarray, cand: np.ndarray, z: np.ndarray,
                           valid: np.ndarray, rgb: np.ndarray | None) -> tuple[int, np.ndarray, np.ndarray]:
        """Join clusters that touch through fillable holes (``_fillable_holes``) when their median colors
        agree within ``hole_join_color_delta`` (or there is no color): the pieces of one object broken by
        depth dropouts. Returns relabelled (n, labels, stats) as ``cv2.connectedComponentsWithStats``."""
        p = self.params
        bridged = cand | self._fillable_holes(cand, z, valid)
        m, joined = cv2.connectedComponents(bridged.view(np.uint8), connectivity=4)
        if m - 1 == n - 1:
            return n, labels, stats
        group = np.zeros(n, dtype=np.int64)
        keys = joined[cand]
        group[labels[cand]] = keys                      # each cluster's bridged component
        by_group: dict[int, list[int]] = {}
        for k in range(1, n):
            by_group.setdefault(int(group[k]), []).append(k)
        parent = _join_parents(n, by_group, labels, stats, rgb, p.hole_join_color_delta, p.min_pixels)
        if (parent == np.arange(n)).all():
            return n, labels, stats
        return _merge_clusters(parent, labels, stats)

    def _fillable_holes(self, cand: np.ndarray, z: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Invalid-depth pixels (dropouts on dark or shiny surfaces) whose candidate neighbours within
        ``hole_bridge_px`` all have about the same depth: they connect the pieces of one object, never an
        object and what lies behind it (their neighbourhood spans a depth jump)."""
        r = int(self.params.hole_bridge_px)
        if r <= 0:
            return np.zeros(cand.shape, dtype=bool)
        kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
        near = np.where(cand, z, np.inf).astype(np.float32)
        far = np.where(cand, z, 0.0).astype(np.float32)
        zmin = cv2.erode(near, kernel)
        zmax = cv2.dilate(far, kernel)
        holes = ~valid & (zmax > 0.0)
        with np.errstate(invalid="ignore"):
            return holes & (zmax - zmin <= self.params.depth_jump_ratio * zmin + 0.005)

    @staticmethod
    def _plane_axes(up) -> tuple[np.ndarray, np.ndarray]:
        """Two orthonormal directions in the support plane (camera frame)."""
        up = np.asarray(up, dtype=np.float64)
        a = np.cross(up, [0.0, 0.0, 1.0])
        a = a / np.linalg.norm(a) if np.linalg.norm(a) > 1e-6 else np.array([1.0, 0.0, 0.0])
        return a, np.cross(up, a)

    @staticmethod
    def _extent(horiz, height) -> tuple[float, float, float]:
        """Horizontal extents (two axes of the plane) and height (metres) of a cluster, robust to strays."""
        lo, hi = np.percentile(np.column_stack([horiz, height]), [2.0, 98.0], axis=0)
        return float(hi[0] - lo[0]), float(hi[1] - lo[1]), float(hi[2])

    def _upper_of_stack(self, height: np.ndarray, horiz: np.ndarray, colors: np.ndarray | None = None
                        ) -> np.ndarray | None:
        """Pixels of the upper object when a cluster is one object resting on another (module doc, 4), else
        None. ``height`` (N,) above the support and ``horiz`` (N, 2) plane coordinates, metres; ``colors``
        (N, 3) uint8 RGB or None: with color, the two parts must differ by ``stack_min_color_delta``."""
        p = self.params
        n = height.size
        if n < 2 * p.min_pixels:
            return None
        bins = np.floor((height - p.min_height_m) / p.stack_bin_m).astype(np.int64)
        bins = np.clip(bins, 0, None)
        hist = np.bincount(bins)
        if hist.size < 3:
            return None
        peak = np.convolve(hist, np.ones(3, dtype=np.int64), mode="same")      # counts within +- one bin
        floor = p.stack_face_ratio * 3 * max(float(np.median(hist[hist > 0])), 1.0)
        top = float(np.percentile(height, 98.0))
        for b in range(1, hist.size - 1):
            if peak[b] < max(p.stack_face_min_pixels, floor) or peak[b] < peak[b - 1] or peak[b] < peak[b + 1]:
                continue
            face_h = p.min_height_m + (b + 0.5) * p.stack_bin_m
            if top < face_h + p.stack_min_rise_m:
                break                                   # nothing stands high enough above this face
            upper = height > face_h + p.stack_face_tol_m
            if upper.sum() < p.min_pixels or n - upper.sum() < p.min_pixels:
                continue
            face = np.abs(height - face_h) <= 1.5 * p.stack_bin_m
            if self._inside_footprint(horiz[face], horiz[upper]) < p.stack_inside:
                continue
            if colors is not None and color_delta(colors[upper], colors[~upper]) < p.stack_min_color_delta:
                continue
            return upper
        return None

    @staticmethod
    def _inside_footprint(face: np.ndarray, pts: np.ndarray, cell_m: float = 0.005, margin_m: float = 0.01
                          ) -> float:
        """Fraction of ``pts`` (N, 2) inside the convex hull of ``face`` (M, 2) grown by ``margin_m``."""
        if len(face) < 3 or len(pts) == 0:
            return 0.0
        lo = np.minimum(face.min(axis=0), pts.min(axis=0)) - 2 * margin_m
        hi = np.maximum(face.max(axis=0), pts.max(axis=0)) + 2 * margin_m
        size = np.ceil((hi - lo) / cell_m).astype(int) + 1
        if size.prod() > 4_000_000:
            return 0.0
        grid = np.zeros((size[1], size[0]), dtype=np.uint8)
        hull = cv2.convexHull(np.round((face - lo) / cell_m).astype(np.int32))
        cv2.fillConvexPoly(grid, hull, 1)
        r = int(np.ceil(margin_m / cell_m))
        grid = cv2.dilate(grid, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        ij = np.round((pts - lo) / cell_m).astype(int)
        return float(grid[ij[:, 1], ij[:, 0]].mean())

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


def _join_parents(n: int, by_group: dict[int, list[int]], labels: np.ndarray, stats: np.ndarray,
                  rgb: np.ndarray | None, max_color_delta: float, median_from_px: int) -> np.ndarray:
    """Union parents of the clusters (``cv2.connectedComponentsWithStats`` ``labels`` and ``stats``): within
    each group of clusters bridged by fillable holes, largest first, each joins the largest earlier cluster
    whose color agrees within ``max_color_delta`` (CIE76 Delta E; always the group's largest without color),
    or starts a new object. So the speckled pieces of a dark object bridged to a brighter object it touches
    (a black block under a red can) join each other, not the other object."""
    parent = np.arange(n)
    groups = [sorted(m, key=lambda k: -stats[k, cv2.CC_STAT_AREA]) for m in by_group.values() if len(m) > 1]
    if rgb is None:
        for members in groups:
            parent[members[1:]] = members[0]
        return parent
    lab_of = _ClusterColors(labels, stats, rgb, groups, median_from_px)
    for members in groups:
        anchors, anchor_labs = [members[0]], [lab_of(members[0])]
        for k in members[1:]:
            deltas = np.linalg.norm(np.asarray(anchor_labs) - lab_of(k), axis=1)
            first = int(np.argmax(deltas <= max_color_delta))
            if deltas[first] <= max_color_delta:
                parent[k] = anchors[first]
            else:
                anchors.append(k)
                anchor_labs.append(lab_of(k))
    return parent


class _ClusterColors:
    """CIE L*a*b* color of a cluster by label: the median color of a cluster of at least ``median_from_px``
    pixels, the mean of a smaller piece (all the pieces of ``groups`` in one pass over the image)."""

    def __init__(self, labels: np.ndarray, stats: np.ndarray, rgb: np.ndarray, groups: list[list[int]],
                 median_from_px: int):
        self.labels, self.stats, self.rgb, self.median_from_px = labels, stats, rgb, median_from_px
        self.cache: dict[int, np.ndarray] = {}
        members = np.concatenate([np.asarray(m) for m in groups] or [np.zeros(0, np.int64)])
        small = members[stats[members, cv2.CC_STAT_AREA] < median_from_px]
        self.small_labs = None
        if small.size:
            n = stats.shape[0]
            keep = np.zeros(n, dtype=bool)
            keep[small] = True
            on = keep[labels]
            ids, px = labels[on], rgb[on].astype(np.float64)
            counts = np.maximum(np.bincount(ids, minlength=n), 1)
            sums = np.stack([np.bincount(ids, px[:, c], minlength=n) for c in range(3)], axis=1)
            self.small_labs = _lab(sums / counts[:, None])

    def __call__(self, q: int) -> np.ndarray:
        if self.small_labs is not None and self.stats[q, cv2.CC_STAT_AREA] < self.median_from_px:
            return self.small_labs[q]
        if q not in self.cache:
            x, y, w, h = self.stats[q, :4]
            roi = (slice(y, y + h), slice(x, x + w))
            px = self.rgb[roi][self.labels[roi] == q]
            self.cache[q] = _lab(median_color(px[:: max(1, len(px) // 500)]))
        return self.cache[q]


def _merge_clusters(parent: np.ndarray, labels: np.ndarray, stats: np.ndarray
                    ) -> tuple[int, np.ndarray, np.ndarray]:
    """The clusters merged into their ``parent``s and renumbered: (n, labels, stats) as
    ``cv2.connectedComponentsWithStats`` (background 0)."""
    n = parent.size
    roots = np.unique(parent[1:])
    new_id = np.zeros(n, dtype=np.int32)
    new_id[roots] = np.arange(1, roots.size + 1)
    merged = new_id[parent]
    labels = merged[labels]
    out = np.zeros((roots.size + 1, 5), dtype=np.int64)
    for k in range(1, n):
        x, y, w, h, area = stats[k]
        j = merged[k]
        if out[j, 4] == 0:
            out[j] = (x, y, x + w, y + h, area)
        else:
            out[j] = (min(out[j, 0], x), min(out[j, 1], y), max(out[j, 2], x + w), max(out[j, 3], y + h),
                      out[j, 4] + area)
    out[:, 2:4] -= out[:, 0:2]                      # back to (x, y, w, h, area)
    return roots.size + 1, labels, out
