"""Object masks from 2D boxes and depth: any box detector's output becomes instance masks without a model.

All boxes of a frame are segmented jointly, inside the bounding rectangle of all boxes (grown by a margin):

1. Candidate pixels: valid depth higher than ``min_height_m`` (and the depth noise) above the support plane
   of the frame's ``GravityFrame`` (heights along its up vector, metres), so the table is never part of an
   object.
2. Segments: 4-connected components of the candidates, cut where neighbouring depths jump (the farther pixel
   of the pair is dropped: background seen beside an object) and at color edges (Canny) where depth is flat;
   color-edge pixels rejoin a neighbouring segment. A segment reaching into a box that does not claim it
   (touching objects, e.g. one standing on another) is cut again at thickened color edges.
3. Ownership: a box claims a segment lying (almost) wholly inside it (``containment``; a tight box holds all
   of its object's visible pixels, so background and neighbours reaching out of the box are never claimed).
   A segment claimed by one box is that box's object. A segment inside several boxes (overlapping boxes: a
   mug in front of a box, an object standing on another) goes to the box whose object it fits: each box's
   profile, from the pixels it owns alone, gives per image row the depth interval of its surface, its overall
   depth interval and its top height (when it owns pixels in its top rows); a pixel nearer than that
   interval (an occluder in front), behind it, or higher than the top does not fit. The box with the fewest
   misfits wins (a box with no pixels of its own counts half its pixels as misfits, so a surface that fits
   another box's profile goes there); near ties go to the box whose own points are nearest in 3D, then to
   the smaller box. A segment spread over several boxes but mostly inside their union is split per pixel the
   same way; one mostly outside every box (wall, table edge, objects without a box) is nobody's.
4. A box left without pixels falls back to its largest unowned candidate segment. Low pixels enclosed by
   the mask (a plate's inside) are added, and so are pixels without depth within the mask's row or column
   span, next to it, or between it and a nearer surface on the same row (sensor holes, edge dropouts and
   stereo shadows are part of the silhouette; lifting fills their depth from neighbours): within
   ``max_shadow_px``, or at any width when that surface lies inside the box. Low pixels of a region closed
   off by the object, occluders and holes (not reaching the box border) join it too (a plate's inside
   where an occluder hides one side of its rim), with the stereo shadows beside them.

Pixels: u right, v down, center of pixel (u, v) at integer coordinates; boxes are ``core.frame.Detection2D``.
Depth in metres along the camera optical z axis. Speed: ``benchmarks/bench_boxes.py`` (figures in
``docs/boxes_detector.md``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.depth import check_depth_image
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D
from spatial_vlm_ros.core.gravity import fit_support_plane, highest_support
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.perception.base import BoxSegmenter, Instance


@dataclass(frozen=True)
class DepthBoxParams:
    """Settings of ``DepthBoxSegmenter``. Lengths in metres, image distances in pixels."""

    min_height_m: float = 0.008        # candidates are at least this high above the support plane ...
    height_noise_sigmas: float = 2.5   # ... and this many depth-noise sigmas
    max_height_m: float = 1.5          # ... and at most this high
    min_range_m: float = 0.1
    max_range_m: float = 10.0
    depth_jump_ratio: float = 0.03     # neighbours whose depths differ by more than ratio * z + jump_m are cut
    depth_jump_m: float = 0.005
    color_edges: bool = True           # cut segments at color edges (Canny on the grey image)
    canny_low: int = 50
    canny_high: int = 120
    containment: float = 0.9           # fraction of a segment inside a box for the box to claim it
    box_margin_px: int = 2             # boxes grown by this for that test (detector jitter)
    spill_fraction: float = 0.05       # a segment with more than this inside a box that does not claim it
                                       # is cut again at thickened color edges (touching objects)
    crop_margin_px: int = 12           # the working rectangle extends this far beyond the boxes
    depth_tolerance_m: float = 0.02    # slack of the per-row depth interval of a box's own pixels ...
    depth_tolerance_sigmas: float = 4.0  # ... at least this many depth-noise sigmas
    height_tolerance_m: float = 0.004  # slack above a box's top height (its own pixels' 99.5th percentile)
    fill_holes: bool = True            # add pixels without depth inside the silhouette (see module doc)
    max_shadow_px: int = 25            # widest run without depth between a mask and a nearer surface that joins
                                       # the mask (stereo shadow on the object beside an occluder)
    fill_low: bool = True              # add low pixels enclosed by the object (a plate's or bowl's inside)
    min_pixels: int = 10               # masks with fewer pixels are dropped (warning)
    support_stride: int = 4            # pixel stride of the cloud used when the support plane is unknown ...
    plane_max_tilt_deg: float = 60.0   # ... and the largest tilt of a plane fitted then from the assumed up
    noise: DepthNoiseModel = field(default_factory=DepthNoiseModel)

    def __post_init__(self):
        if not 0.0 < self.containment <= 1.0:
            raise InputError(f"boxes segmenter: containment must be in (0, 1], got {self.containment}")
        if min(self.box_margin_px, self.crop_margin_px) < 0 or self.support_stride < 1 or self.min_pixels < 1:
            raise InputError("boxes segmenter: margins must be >= 0, support_stride and min_pixels >= 1")
        if self.max_height_m <= self.min_height_m or self.max_range_m <= self.min_range_m:
            raise InputError("boxes segmenter: max_height_m must exceed min_height_m and max_range_m "
                             "min_range_m")


def box_pixels(box: Detection2D, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Inclusive pixel rectangle ``(col0, row0, col1, row1)`` of the pixel centers inside ``box``, clipped to
    a ``width`` x ``height`` image; None when the box has no pixel in the image."""
    u0, v0, u1, v1 = box.corners()
    c0, r0 = int(np.floor(u0 + 0.5)), int(np.floor(v0 + 0.5))
    c1, r1 = int(np.ceil(u1 - 0.5)), int(np.ceil(v1 - 0.5))
    if c1 < c0:                     # a box thinner than a pixel: the pixel holding its center
        c0 = c1 = int(np.floor(box.center_x + 0.5))
    if r1 < r0:
        r0 = r1 = int(np.floor(box.center_y + 0.5))
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, width - 1), min(r1, height - 1)
    if c1 < c0 or r1 < r0:
        return None
    return c0, r0, c1, r1


class DepthBoxSegmenter(BoxSegmenter):
    """Masks for 2D boxes from depth (and color edges), overlapping boxes resolved jointly (module doc)."""

    name = "depth"

    def __init__(self, params: DepthBoxParams | None = None):
        super().__init__()
        self.params = params or DepthBoxParams()

    # ------------------------------------------------------------------------------------------------ api
    def segment(self, rgb: np.ndarray | None, depth_m: np.ndarray, camera: CameraModel,
                gravity: GravityFrame, boxes: list[Detection2D]) -> list[Instance]:
        """One ``Instance`` per box that could be segmented, in box order (``instance_id`` = the box's
        index + 1). Boxes wholly outside the image, or left with too few pixels, are skipped with a reason
        in ``self.warnings``. Raises ``InputError`` when depth, color and camera sizes disagree."""
        p = self.params
        self.warnings = []
        check_depth_image(depth_m, camera.shape)
        H, W = depth_m.shape
        if rgb is not None and (rgb.ndim != 3 or rgb.shape[:2] != (H, W)):
            raise InputError(f"color image is {rgb.shape[1]}x{rgb.shape[0]} but the depth image is "
                             f"{W}x{H}" if rgb.ndim >= 2 else f"color image: bad shape {rgb.shape}")
        rects, keep = [], []
        for k, box in enumerate(boxes):
            r = box_pixels(box, W, H) if np.isfinite([box.center_x, box.center_y, box.size_x,
                                                       box.size_y]).all() else None
            if r is None:
                self.warnings.append(f"box {k} '{box.label}': lies outside the {W}x{H} image; skipped")
                continue
            rects.append(r)
            keep.append(k)
        if not rects:
            return []
        masks = self._masks(rgb, depth_m, camera, gravity, np.array(rects, dtype=np.int64))
        out = []
        for k, mask in zip(keep, masks):
            box = boxes[k]
            if mask is None or np.count_nonzero(mask) < p.min_pixels:
                self.warnings.append(f"box {k} '{box.label}': no object found above the support inside the "
                                     "box; skipped")
                continue
            out.append(Instance(mask, box.label, box.score, k + 1))
        return out

    # ------------------------------------------------------------------------------------------ internals
    def _masks(self, rgb, depth_m, camera: CameraModel, gravity: GravityFrame, rects: np.ndarray):
        """One full-image mask (or None) per inclusive pixel rectangle ``(col0, row0, col1, row1)`` of
        ``rects`` (module doc, steps 1-4)."""
        p = self.params
        H, W = depth_m.shape
        # working rectangle: all boxes plus a margin (segments reaching out of every box must show it)
        x0 = max(int(rects[:, 0].min()) - p.crop_margin_px, 0)
        y0 = max(int(rects[:, 1].min()) - p.crop_margin_px, 0)
        x1 = min(int(rects[:, 2].max()) + p.crop_margin_px, W - 1)
        y1 = min(int(rects[:, 3].max()) + p.crop_margin_px, H - 1)
        crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        rel = rects - np.array([x0, y0, x0, y0])            # box rectangles in crop coordinates
        rx, ry = camera.ray_grid()
        z = depth_m[crop].astype(np.float32, copy=False)
        with np.errstate(invalid="ignore"):
            valid = (z >= p.min_range_m) & (z <= p.max_range_m)
        zf = np.where(valid, z, np.float32(np.nan))
        up, support = gravity.up, gravity.support_height
        if support is None or gravity.source == "camera":     # no (reliable) support plane: find one here
            up, support = self._support(depth_m, camera, gravity)
        up = np.asarray(up, dtype=np.float32)
        with np.errstate(invalid="ignore"):
            if support is not None:
                height = (rx[crop] * up[0] + ry[crop] * up[1] + up[2]) * zf - np.float32(support)
                sig = p.noise.sigma0 + p.noise.k * zf * zf
                cand = valid & (height > np.maximum(p.min_height_m, p.height_noise_sigmas * sig)) \
                    & (height < p.max_height_m)
            else:                                           # no support known: every valid pixel
                height = (rx[crop] * up[0] + ry[crop] * up[1] + up[2]) * zf
                cand = valid.copy()
        cand &= ~_far_side_of_jumps(zf, p.depth_jump_ratio, p.depth_jump_m)
        label_in = cand
        edges = None
        if p.color_edges and rgb is not None:
            grey = cv2.cvtColor(np.ascontiguousarray(rgb[crop]), cv2.COLOR_RGB2GRAY)
            edges = cv2.Canny(grey, p.canny_low, p.canny_high) > 0
            label_in = cand & ~edges
        m = p.box_margin_px
        grown = np.stack([np.maximum(rel[:, 0] - m, 0), np.maximum(rel[:, 1] - m, 0),
                          np.minimum(rel[:, 2] + m, cand.shape[1] - 1),
                          np.minimum(rel[:, 3] + m, cand.shape[0] - 1)], axis=1)
        in_any = np.zeros(cand.shape, dtype=bool)
        for c0, r0, c1, r1 in grown:
            in_any[r0:r1 + 1, c0:c1 + 1] = True
        n, labels, area, claims, owner, contain = self._segments(label_in, cand, edges, grown, in_any)
        partial = ((contain > p.spill_fraction) & ~claims).any(axis=0) & (owner != -1)
        if edges is not None and np.any((owner == -3) | partial):
            # segments spread over several boxes (touching objects): cut again at thickened color edges
            spread = ((owner == -3) | partial)[labels]
            thick = cv2.dilate(edges.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) & spread
            n, labels, area, claims, owner, _ = self._segments(label_in & ~thick, cand, edges | thick, grown,
                                                               in_any)
        seg_owner = owner[labels]                           # (h, w) per pixel
        # pixel ownership: exclusive segments, plus pixels of split segments lying in exactly one box
        count_in = np.zeros(labels.shape, dtype=np.int16)
        which = np.full(labels.shape, -1, dtype=np.int16)
        for i, (c0, r0, c1, r1) in enumerate(rel):
            count_in[r0:r1 + 1, c0:c1 + 1] += 1
            which[r0:r1 + 1, c0:c1 + 1] = i
        pix_owner = np.maximum(seg_owner, -1)
        split = seg_owner == -3
        pix_owner[split & (count_in == 1)] = which[split & (count_in == 1)]
        ambiguous = (seg_owner == -2) | (split & (count_in > 1))
        if ambiguous.any():
            self._resolve(ambiguous, pix_owner, seg_owner, labels, n, claims, rel, zf, height,
                          (rx[crop], ry[crop]))
        return self._complete(pix_owner, labels, cand, valid, zf, height, rel, (H, W), (x0, y0))

    def _complete(self, pix_owner, labels, cand, valid, zf, height, rel, shape, origin):
        """Full-image masks (None where a box got nothing) from the pixel owners of the crop at ``origin``
        (x0, y0): fallback segment, enclosed low pixels and pixels without depth (module doc, step 4)."""
        p = self.params
        H, W = shape
        x0, y0 = origin
        masks = []
        taken = pix_owner >= 0                              # a pixel goes to one box at most
        with np.errstate(invalid="ignore"):
            low = valid & ~cand & (height < p.max_height_m)     # valid, but too low to be a candidate
        holes = ~valid
        shadow = _shadow_owner(zf, valid, pix_owner, p.max_shadow_px, p.depth_tolerance_m, rel,
                               p.box_margin_px) \
            if p.fill_holes else None
        kernel = np.ones((3, 3), np.uint8)
        for i, (c0, r0, c1, r1) in enumerate(rel):
            roi = (slice(r0, r1 + 1), slice(c0, c1 + 1))
            own = pix_owner[roi] == i
            if not own.any():
                own = self._fallback(labels[roi], cand[roi], np.where(taken[roi], 0, -1))
            if own is None or not own.any():
                masks.append(None)
                continue
            if p.fill_low or p.fill_holes:
                free = ~taken[roi]
                rows, cols = _spans(own)
                added = None
                if p.fill_low:                              # low parts enclosed by the object (a plate's center)
                    added = _enclosed_low(rows, cols, free & low[roi])
                    own |= added
                if p.fill_holes:                            # pixels without depth inside the silhouette
                    near = cv2.dilate(own.view(np.uint8), kernel).view(bool)
                    sh = shadow[roi] == i
                    if added is not None and np.count_nonzero(added) >= \
                            np.count_nonzero(rows & cols & free & low[roi]) + 50:
                        # an enclosed inside beyond the spans (a plate behind occluders): its stereo shadows too
                        sh |= _shadow_owner(zf[roi], valid[roi], np.where(own, 0, -1).astype(np.int16),
                                            p.max_shadow_px, p.depth_tolerance_m,
                                            np.array([[0, 0, c1 - c0, r1 - r0]]), 0) == 0
                    own |= free & ((holes[roi] & (rows | cols | near)) | sh)
            taken[roi] |= own
            mask = np.zeros((H, W), dtype=bool)
            mask[y0 + r0:y0 + r1 + 1, x0 + c0:x0 + c1 + 1] = own
            masks.append(mask)
        return masks

    def _resolve(self, ambiguous, pix_owner, seg_owner, labels, n: int, claims, rel, zf, height, rays):
        """Give the ``ambiguous`` pixels (of segments claimed by several boxes, or of split segments where
        boxes overlap) to the box whose object they fit (module doc, step 3), in place in ``pix_owner``."""
        p = self.params
        nb = len(rel)
        pts_crop = rays
        ay, ax = np.nonzero(ambiguous)
        involved = [bool(np.any((ax >= c0) & (ax <= c1) & (ay >= r0) & (ay <= r1)))
                    for c0, r0, c1, r1 in rel]
        profiles = [self._profile(pix_owner, i, rel[i], zf, height, pts_crop) if involved[i] else None
                    for i in range(nb)]
        az, ah, alab = zf[ay, ax], height[ay, ax], labels[ay, ax]
        atol = np.maximum(p.depth_tolerance_m,
                          p.depth_tolerance_sigmas * (p.noise.sigma0 + p.noise.k * az * az))
        bad = np.full((nb, ay.size), np.inf, dtype=np.float32)     # misfit per box and ambiguous pixel
        for i, (c0, r0, c1, r1) in enumerate(rel):
            inb = (ax >= c0) & (ax <= c1) & (ay >= r0) & (ay <= r1)
            bad[i, inb] = self._misfit(profiles[i], az[inb], ah[inb], atol[inb], ay[inb] - r0)
        apts = np.stack([pts_crop[0][ay, ax] * az, pts_crop[1][ay, ax] * az, az], axis=1)
        # shared segments: fewest misfits, then nearest in 3D to the box's own pixels, then smaller box
        seg_amb = seg_owner[ay, ax] == -2
        shared = np.unique(alab[seg_amb])
        if shared.size:
            areas = (rel[:, 2] - rel[:, 0] + 1) * (rel[:, 3] - rel[:, 1] + 1)
            lab = alab[seg_amb]
            total = np.bincount(lab, minlength=n)[shared].astype(np.float64)
            frac = np.empty((nb, shared.size))
            for i in range(nb):
                bi = bad[i, seg_amb]
                ok = np.isfinite(bi)
                frac[i] = np.bincount(lab[ok], weights=bi[ok], minlength=n)[shared] / np.maximum(total, 1)
                frac[i, ~claims[i, shared]] = np.inf
            order = np.argsort(lab, kind="stable")
            bounds = np.searchsorted(lab[order], np.concatenate([shared, [n]]))
            seg_pts = apts[seg_amb][order]
            best = np.argmin(frac + areas[:, None] / float(areas.max() + 1) * 1e-3, axis=0)
            near = np.isfinite(frac) & (frac <= frac.min(axis=0) + 0.02)
            for k in np.flatnonzero(near.sum(axis=0) > 1):       # near ties: the 3D distance decides
                cands = np.flatnonzero(near[:, k])
                if cands.size > 1:
                    sp = seg_pts[bounds[k]:bounds[k + 1]][:: max(1, (bounds[k + 1] - bounds[k]) // 100)]
                    dist = np.array([self._distance(profiles[i], sp) for i in cands])
                    cands = cands[dist <= dist.min() + 0.005]
                best[k] = cands[np.argmin(areas[cands])] if cands.size > 1 else cands[0]
            resolved = np.full(n, -1, dtype=np.int64)
            resolved[shared] = best
            win = resolved[lab]
            # a pixel that does not fit the winner but fits another claiming box goes there (a mixed segment)
            b = np.where(claims[:, lab], bad[:, seg_amb], np.inf)
            cols = np.arange(lab.size)
            alt = np.argmin(b, axis=0)
            move = (b[win, cols] >= 1.0) & (b[alt, cols] < b[win, cols])
            win[move] = alt[move]
            pix_owner[ay[seg_amb], ax[seg_amb]] = win
        # split segments: per pixel, fewest misfits, then nearest in 3D to the box's own pixels
        px = ~seg_amb
        if px.any():
            b = bad[:, px].astype(np.float64)
            for i in range(nb):
                inb = np.isfinite(b[i])
                if inb.any():
                    b[i, inb] += 0.1 * self._distances(profiles[i], apts[px][inb])
            win = np.argmin(b, axis=0)
            fine = np.isfinite(b.min(axis=0))
            pix_owner[ay[px][fine], ax[px][fine]] = win[fine]

    def _segments(self, label_in, cand, edges, grown, in_any):
        """Connected components of ``label_in`` (edge pixels of ``cand`` rejoined to a neighbour) and who
        claims them: ``(n, labels, area, claims (boxes x segments), owner, contain)``; owner per segment =
        the one box claiming it, -1 nobody, -2 several boxes (shared), -3 none but mostly inside their union
        (split per pixel); contain = fraction of each segment inside each box."""
        p = self.params
        n, labels = cv2.connectedComponents(label_in.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
        if edges is not None:
            labels = _rejoin(labels, cand & edges)
        area = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
        area[0] = 0.0
        inside = np.zeros((len(grown), n))
        for i, (c0, r0, c1, r1) in enumerate(grown):
            inside[i] = np.bincount(labels[r0:r1 + 1, c0:c1 + 1].ravel(), minlength=n)
        inside[:, 0] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            contain = inside / area
            union_frac = np.bincount(labels.ravel(), weights=in_any.ravel(), minlength=n) / area
        claims = contain >= p.containment
        n_claims = claims.sum(axis=0)
        owner = np.full(n, -1, dtype=np.int64)
        one = n_claims == 1
        owner[one] = np.argmax(claims[:, one], axis=0)
        owner[n_claims > 1] = -2
        owner[(n_claims == 0) & (union_frac >= p.containment)] = -3
        owner[0] = -1
        return n, labels, area, claims, owner, contain

    def _support(self, depth_m, camera: CameraModel, gravity: GravityFrame):
        """(up (3,) camera frame, support height along it in metres, or None) when the frame's gravity has no
        support plane or only assumes a level camera: a RANSAC plane fit (``core.gravity``) near the assumed
        up, then the highest large horizontal surface along its normal (a table rather than the floor)."""
        s = self.params.support_stride
        rx, ry = camera.ray_grid()
        z = depth_m[::s, ::s]
        with np.errstate(invalid="ignore"):
            ok = (z > self.params.min_range_m) & (z < self.params.max_range_m)
        zk = z[ok]
        pts = np.stack([rx[::s, ::s][ok] * zk, ry[::s, ::s][ok] * zk, zk], axis=1).astype(np.float64)
        if pts.shape[0] < 100:
            return gravity.up, None
        up = gravity.up
        if gravity.source == "camera":
            plane = fit_support_plane(pts, prior_up=up, max_tilt_deg=self.params.plane_max_tilt_deg)
            if plane is not None:
                up = plane.normal_c
        return up, highest_support(pts, up)

    @staticmethod
    def _profile(pix_owner, i: int, rect, zf, height, rays, max_points: int = 1500):
        """What box ``i``'s own pixels say about its object: the depth interval per row of its rectangle
        (inf/-inf where it owns nothing on a row), the overall depth interval, its top height (only when it
        owns pixels in the top rows of its rectangle, where an object's top shows), and up to
        ``max_points`` of its points (camera frame, metres) as a KD-tree. None if it owns too few pixels."""
        c0, r0, c1, r1 = rect
        roi = (slice(r0, r1 + 1), slice(c0, c1 + 1))
        own = pix_owner[roi] == i
        ys, xs = np.nonzero(own)
        if ys.size < 5:
            return None
        z = zf[roi]
        row_lo = np.where(own, z, np.inf).min(axis=1)
        row_hi = np.where(own, z, -np.inf).max(axis=1)
        h = height[roi][ys, xs]
        top_rows = max(2, (r1 - r0 + 1) // 10)
        top = None
        if np.isfinite(row_lo[:top_rows]).any():
            k = int(0.995 * (h.size - 1))
            top = float(np.partition(h, k)[k])
        zo = z[ys, xs]
        return {"row_lo": row_lo, "row_hi": row_hi, "z": (float(zo.min()), float(zo.max())), "top": top,
                "pixels": (ys + r0, xs + c0), "rays": rays, "zf": zf, "max_points": max_points}

    @staticmethod
    def _tree(prof):
        """KD-tree of up to ``max_points`` of the box's own points (camera frame, metres), built once."""
        if "tree" not in prof:
            from scipy.spatial import cKDTree
            ys, xs = prof["pixels"]
            step = max(1, ys.size // prof["max_points"])
            yy, xx = ys[::step], xs[::step]
            zz = prof["zf"][yy, xx]
            rays = prof["rays"]
            prof["tree"] = cKDTree(np.stack([rays[0][yy, xx] * zz, rays[1][yy, xx] * zz, zz], axis=1))
        return prof["tree"]

    def _misfit(self, prof, z, h, tol, rows):
        """Per pixel (depth ``z``, height ``h``, tolerance ``tol``, row in the box's rectangle ``rows``): 1
        where it cannot belong to the box's object (nearer or farther than its surface on that row beyond
        ``tol``, or than its overall depth interval beyond ``2 tol`` on rows where it owns nothing; higher
        than its top), else 0; 0.5 everywhere for a box without pixels of its own."""
        if prof is None:
            return np.full(z.shape, 0.5, np.float32)
        lo, hi = prof["row_lo"][rows], prof["row_hi"][rows]
        known = np.isfinite(lo)
        glo, ghi = prof["z"]
        slack = np.where(known, tol, 2.0 * tol)
        lo = np.where(known, lo, glo)
        hi = np.where(known, hi, ghi)
        bad = (z < lo - slack) | (z > hi + slack)
        if prof["top"] is not None:
            bad |= h > prof["top"] + self.params.height_tolerance_m
        return bad.astype(np.float32)

    @staticmethod
    def _distances(prof, pts) -> np.ndarray:
        """Distance (metres, at most 1) of each of ``pts`` to the box's own points; 0.02 without any."""
        if prof is None:
            return np.full(len(pts), 0.02)
        return np.minimum(DepthBoxSegmenter._tree(prof).query(pts, k=1, distance_upper_bound=1.0)[0], 1.0)

    @staticmethod
    def _distance(prof, pts) -> float:
        """Median distance (metres) of ``pts`` to the box's own points; 0.02 for a box without any."""
        if prof is None or len(pts) == 0:
            return 0.02
        return float(np.median(DepthBoxSegmenter._tree(prof).query(pts, k=1)[0]))

    @staticmethod
    def _fallback(labels, cand, pix_owner):
        """The largest candidate segment (by its pixels inside the rectangle) nobody owns, or None."""
        free = cand & (pix_owner < 0) & (labels > 0)
        if not free.any():
            return None
        counts = np.bincount(labels[free], minlength=int(labels.max()) + 1)
        return free & (labels == int(np.argmax(counts)))


def _far_side_of_jumps(z: np.ndarray, ratio: float, jump_m: float) -> np.ndarray:
    """Pixels whose 4-neighbour is much nearer: the background side of a depth discontinuity."""
    cut = np.zeros(z.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for a, b, ca, cb in ((z[:, :-1], z[:, 1:], cut[:, :-1], cut[:, 1:]),
                             (z[:-1, :], z[1:, :], cut[:-1, :], cut[1:, :])):
            jump = np.abs(a - b) > ratio * np.fmin(a, b) + jump_m
            ca |= jump & (a > b)
            cb |= jump & (b > a)
    return cut


def _rejoin(labels: np.ndarray, pixels: np.ndarray, passes: int = 2) -> np.ndarray:
    """Give ``pixels`` (unlabelled color-edge pixels) the largest label among their 8 neighbours (twice, so
    two-pixel-wide edges fill too)."""
    out = labels
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(passes):
        todo = pixels & (out == 0)
        if not todo.any():
            break
        grown = cv2.dilate(out.astype(np.float32), kernel).astype(np.int32)
        out = np.where(todo, grown, out)
    return out


def _shadow_owner(zf: np.ndarray, valid: np.ndarray, owner: np.ndarray, max_run: int, tol: float,
                  rects: np.ndarray | None = None, margin: int = 0) -> np.ndarray:
    """Per pixel of the crop, the box (index, else -1) whose pixels a run without depth touches on its row
    when the other end of the run is a nearer surface at most ``max_run`` pixels away, or anywhere inside
    that box's rectangle (``rects``, inclusive crop pixels ``(col0, row0, col1, row1)``, grown by ``margin``):
    a stereo shadow or edge dropout on the object next to an occluder (the silhouette reaches the occluder;
    a tight box around an object mostly hidden in the shadow ends at the occluder). ``zf`` depth (NaN
    invalid), ``owner`` box index per pixel (-1 none)."""
    h, w = zf.shape
    col = np.broadcast_to(np.arange(w, dtype=np.int32), (h, w))
    left = np.maximum.accumulate(np.where(valid, col, -1), axis=1)           # last valid column at or left
    right = np.minimum.accumulate(np.where(valid, col, w)[:, ::-1], axis=1)[:, ::-1]   # first at or right
    longest = max_run if rects is None or not len(rects) else max(max_run, int((rects[:, 2] - rects[:, 0]).max())
                                                                  + 2 * margin)
    ys, xs = np.nonzero(~valid & (left >= 0) & (right < w) & (right - left <= longest + 1))
    li, ri = left[ys, xs], right[ys, xs]
    lz, rz = zf[ys, li], zf[ys, ri]
    lo, ro = owner[ys, li], owner[ys, ri]
    short = ri - li <= max_run + 1
    out = np.full((h, w), -1, dtype=np.int16)
    for this, other, near, far, oth_col in ((lo, ro, rz, lz, ri), (ro, lo, lz, rz, li)):
        ok = (this >= 0) & (this != other) & (near < far - tol)   # a nearer surface at the run's other end
        if rects is not None and len(rects) and not short.all():
            r = rects[np.maximum(this, 0)]
            ok &= short | ((oth_col >= r[:, 0] - margin) & (oth_col <= r[:, 2] + margin))
        else:
            ok &= short
        out[ys[ok], xs[ok]] = this[ok]
    return out


def _enclosed_low(rows: np.ndarray, cols: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Low pixels (``low``: valid, too low to be candidates, free) enclosed by the object: inside both its
    row and column spans, plus (when some low pixels lie in its column span only) every region of low pixels
    (8-connected) holding such a pixel that does not reach the border of the box, i.e. is closed off by the
    object, occluders and pixels without depth: a plate's flat inside on rows where occluders in front hide
    one side of its rim. Table seen beside the object reaches the box border and stays out."""
    seed = rows & cols & low
    if not seed.any() or not (cols & low & ~rows).any():     # nothing enclosed beyond the spans rule
        return seed
    lab, n = ndimage.label(low, structure=np.ones((3, 3), bool))
    n += 1
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    keep = np.bincount(border, minlength=n) == 0            # regions not reaching the box border ...
    keep[0] = False
    if not keep.any():
        return seed
    keep &= np.bincount(lab[seed], minlength=n) > 0          # ... holding a pixel of the spans rule
    return seed | keep[lab]


def _spans(own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels between the leftmost and rightmost pixel of ``own`` on their row, and between the top and
    bottom one in their column."""
    h, w = own.shape
    out = []
    for axis, n in ((1, w), (0, h)):
        first = np.argmax(own, axis=axis)
        last = n - 1 - np.argmax(np.flip(own, axis=axis), axis=axis)
        last = np.where(own.any(axis=axis), last, -1)
        idx = np.arange(n)
        if axis == 1:
            out.append((idx[None, :] >= first[:, None]) & (idx[None, :] <= last[:, None]))
        else:
            out.append((idx[:, None] >= first[None, :]) & (idx[:, None] <= last[None, :]))
    return out[0], out[1]

