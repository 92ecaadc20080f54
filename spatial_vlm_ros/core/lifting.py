"""Lifting: instance masks + metric depth -> 3D objects (``Observation``) with gravity-aligned boxes.

Per instance, working inside the bounding rectangle of its mask (one cv2.boundingRect, or the crop itself):
1. mask-edge bleeding: erode the mask by ``erosion_px`` but keep rim pixels whose depth agrees with the
   interior next to them (segmentation masks and aligned depth disagree at object edges; a blind erosion
   would also shrink every box by a pixel on each side);
2. keep valid depth in ``[min_range_m, max_range_m]``; reject outliers along the optical axis with a
   median/MAD band, then keep the largest depth cluster (consecutive sorted depths closer than a gap that
   grows with the sensor noise), which drops background seen through or beside the mask;
3. back-project with the camera's cached per-pixel rays (distortion honoured), rotate into the gravity
   frame, drop points lying on the support plane (table seen beside the object through a spilled mask);
   mask pixels left without depth (sensor holes at edges, stereo shadows beside nearer objects) are
   back-projected at the depth of their nearest accepted neighbour in the same row (``fill_silhouette``),
   so the box spans the whole silhouette;
4. amodal completion of the unseen back (``amodal``), then a noise-aware box in the gravity frame: per axis
   the extreme coordinates after moving every point inwards by a few sigmas of its own depth noise
   (``noise_trim_sigmas``; on the vertical axis as many as the extreme of that many points needs), grown
   by half a pixel per side (pixel centres lie inside the silhouette);
5. after all instances: box bottoms hidden or curving away under the silhouette are put on the surface
   beneath them (support plane or another object's top, ``rest_snap_m``); a bottom seen with a gap under it
   (an object held above the table: ``_bottom_seen``) stays where it is; the centre is the box centre,
   mapped back to the camera optical frame.

Cost: step 1 runs per instance on its rectangle; steps 2-5 run once for the whole frame on the concatenated
pixels of all instances (instance ``g`` of each, segment offsets ``off``; segment reductions such as
``np.maximum.reduceat``, one ``np.bincount`` histogram for all instances, short per-instance loops only for
order statistics), with the same results as lifting each instance alone (``test/core/test_lifting_batch.py``).

Frames: camera optical (x right, y down, z forward) and gravity (z up, y forward horizontal), metres.
Accuracy: ``test/core/test_lifting.py`` (analytic scenes) and ``benchmarks/accuracy_offline.py`` (rendered
scenes with stereo-like noise through the whole pipeline); speed: ``benchmarks/bench_lifting.py`` and
``benchmarks/bench_pipeline.py`` (figures in ``docs/per_frame_cost.md``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from scipy.special import ndtri

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.colors import color_name
from spatial_vlm_ros.core.depth import check_depth_image
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.observation import Observation

AMODAL_MODES = ("none", "symmetric", "auto")


@dataclass(frozen=True)
class LiftingParams:
    """Settings of ``lift_instances``. Lengths in metres, angles in degrees.

    Amodal correction (``amodal``): one view sees only the surfaces facing the camera, so the visible box is
    too shallow (gravity y, away from the camera) and its centre too near: a sphere seen from 35 deg above
    shows ~80 % of its depth, a bottle's body or a cylinder seen from the side about half.
    - ``"none"``: the box of the visible surface;
    - ``"symmetric"``: assume the footprint is at least as deep as wide: extend the box backwards (+y) to
      ``max(visible depth, width)``; exact for upright cylinders and square boxes, too deep for objects
      wider than deep;
    - ``"auto"`` (default): complete the hidden back by symmetry (``_completion``): boxes at any yaw,
      cylinders and spheres map onto themselves under a half turn about the vertical axis through their
      centre, which lies midway between the object's left and right extremes (its widest section across the
      line of sight), so the visible front, turned, is the back. Points behind that centre are kept as they
      are (a top seen from above already shows the back). A silhouette side that is an occlusion boundary
      (a nearer object or the image border next to it) does not locate the centre: with one such side the
      front is mirrored about the plane across the line of sight through the other side's extreme, with two
      nothing is completed. When the object's top is seen at less than ``amodal_min_elevation_deg`` (only
      the front faces are visible) the ``"symmetric"`` rule is applied on top.
    Measured on rendered tabletop scenes with stereo-like noise through the whole pipeline
    (``benchmarks/accuracy_offline.py``, 45 scenes each; defaults chosen on seeds 101-103, checked on 201-203):
    ``"auto"`` against ``"none"``: box depth within +-10 % of the truth for 64 % / 64.5 % of the objects
    against 51.5 % / 51.5 %, mean error -8 % against -15 %; centre distances within +-10 %: 98.1 % / 99.5 %
    against 97.8 % / 99.2 %; closest-point gaps (the completed points are part of ``points``) within +-10 %:
    87 % / 85 % against 81 % / 81 %, bias +3 % against +6 %. Spheres remain ~22 % too shallow: the depth
    next to a silhouette lies on the surface in front of the limb, so their widest section is located too
    near. No completion recovers parts hidden by other objects. The analytic-scene checks are in
    ``test/core/test_lifting.py``.
    """

    min_pixels: int = 30               # valid depth pixels (after all rejection) needed to lift an instance
    erosion_px: int = 1                # mask erosion against edge bleeding (skipped if it leaves too few)
    edge_tolerance_m: float = 0.02     # eroded rim pixels within this depth of the interior are kept
    mad_k: float = 4.0                 # outlier band: |z - median| <= mad_k * 1.4826 * MAD, but never
    min_depth_band_m: float = 0.05     # narrower than this nor than the object's width
    cluster_gap_m: float = 0.03        # depth gap that splits clusters (at least 6 sigma(z) of ``noise``)
    noise: DepthNoiseModel = field(default_factory=DepthNoiseModel)
    interior_stride: int = 3           # pixels more than 2 px inside the mask: one in stride^2 is lifted
    # box extents (``_robust_box``)
    box_percentiles: tuple[float, float] = (0.02, 99.98)  # tails (percent of the points) ignored per axis;
                                       # a fixed 0.5 % cut ~5 % off the width of round objects
    noise_trim_sigmas: float = 2.0     # points move this many sigmas of their depth noise inwards (at least)
    detached_gap_m: float = 0.015      # extreme points cut off from the rest by an empty stretch this wide
    detached_gap_px: float = 8.0       # (or this many pixel footprints) are strays and ignored, if they are
    detached_fraction: float = 0.02    # at most this fraction of the points
    fill_silhouette: bool = True       # silhouette pixels without depth extend the box (see step 3)
    fill_min_row: int = 3              # ... taking depth from rows with at least this many accepted pixels
    mask_spill_px: int = 0             # the silhouette is the mask shrunk by this (masks known to spill over)
    # amodal completion (see above)
    amodal: str = "auto"               # "none" | "symmetric" | "auto"
    amodal_min_elevation_deg: float = 15.0
    amodal_band: float = 0.01          # fraction of the points taken as each left/right extreme
    amodal_max_points: int = 600       # visible points (evenly subsampled) turned to make the hidden back
    occlusion_fraction: float = 0.2    # share of a silhouette side's rows next to a nearer surface that makes
                                       # it an occlusion boundary
    amodal_points: bool = True         # the observation's points include the filled and completed ones (so
                                       # gaps to other objects see the hidden back)
    # support
    support_margin_m: float = 0.005    # points less than this (or 2.5 sigma) above the support are dropped
    snap_to_support_m: float = 0.015   # a box bottom this close above the support plane is put on it; also
                                       # the contact tolerance of one object resting on another
    rest_snap_m: float = 0.06          # a hidden box bottom up to this far above the surface beneath it
                                       # (support plane or another object's top) is put on it; 0 = off
    seen_gap_m: float = 0.02           # a bottom is seen (not put down) when what lies just below the
                                       # mask's lower rim is this much (or the support margin + 4 sigma)
    seen_gap_fraction: float = 0.5     # lower than the box bottom on this fraction of the rim columns,
    seen_max_undercut: float = 0.2     # and its lowest visible surface is upright: horizontal range from the
                                       # camera changes less than this per metre down (``_undercut_slopes``)
    max_points: int = 2000             # points kept per observation (evenly subsampled)
    min_range_m: float = 0.1
    max_range_m: float = 10.0

    def __post_init__(self):
        if self.amodal not in AMODAL_MODES:
            raise InputError(f"lifting: unknown amodal mode '{self.amodal}' "
                             f"(expected one of {', '.join(AMODAL_MODES)})")
        lo, hi = self.box_percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise InputError(f"lifting: box_percentiles must satisfy 0 <= low < high <= 100, got {lo}, {hi}")
        if self.erosion_px < 0 or self.mask_spill_px < 0 or min(self.min_pixels, self.max_points,
                                                                 self.interior_stride, self.fill_min_row,
                                                                 self.amodal_max_points) < 1:
            raise InputError("lifting: erosion_px and mask_spill_px must be >= 0; min_pixels, max_points, "
                             "interior_stride, fill_min_row and amodal_max_points >= 1")
        if min(self.noise_trim_sigmas, self.rest_snap_m, self.detached_fraction, self.seen_gap_m) < 0.0 \
                or not 0.0 < self.amodal_band < 0.5 or min(self.detached_gap_m, self.detached_gap_px) <= 0.0 \
                or not 0.0 < self.seen_gap_fraction <= 1.0:
            raise InputError("lifting: noise_trim_sigmas, rest_snap_m, seen_gap_m and detached_fraction must "
                             "be >= 0, detached_gap_m and detached_gap_px > 0, amodal_band in (0, 0.5), "
                             "seen_gap_fraction in (0, 1]")


def _check_frame(depth_m, camera: CameraModel, instances, rgb) -> None:
    check_depth_image(depth_m, camera.shape)
    if rgb is not None and (rgb.ndim != 3 or rgb.shape[:2] != depth_m.shape or rgb.shape[2] != 3):
        raise InputError(f"colour image is {rgb.shape[1]}x{rgb.shape[0]} but the depth image is "
                         f"{depth_m.shape[1]}x{depth_m.shape[0]}" if rgb.ndim >= 2 else
                         f"colour image: expected (H, W, 3), got shape {rgb.shape}")
    H, W = depth_m.shape
    for inst in instances:
        origin = getattr(inst, "origin", None)
        if origin is not None:                           # a crop at (row, col): it must lie inside the image
            h, w = inst.mask.shape
            if not (origin[0] >= 0 and origin[1] >= 0 and origin[0] + h <= H and origin[1] + w <= W):
                raise InputError(f"mask crop of instance {inst.instance_id} '{inst.label}' ({w}x{h} at row "
                                 f"{origin[0]}, column {origin[1]}) does not fit the {W}x{H} depth image")
        elif inst.mask.shape != depth_m.shape:
            raise InputError(f"mask of instance {inst.instance_id} '{inst.label}' is "
                             f"{inst.mask.shape[1]}x{inst.mask.shape[0]} but the depth image is "
                             f"{depth_m.shape[1]}x{depth_m.shape[0]}")
    if instances and not np.any(depth_m > 0.0):
        raise InputError("depth image has no valid pixels (all zero, negative or NaN)")


_NO_PIXELS = np.empty(0, np.intp)
#: cv2.erode's border arguments for nothing outside the array
_ZERO_BORDER: dict[str, Any] = {"borderType": cv2.BORDER_CONSTANT, "borderValue": 0}


@lru_cache(maxsize=8)
def _square(size: int) -> np.ndarray:
    """Square all-ones structuring element, ``size`` pixels wide (shared, read-only)."""
    kernel = np.ones((size, size), np.uint8)
    kernel.setflags(write=False)
    return kernel


def lift_instances(depth_m: np.ndarray, camera: CameraModel, instances, gravity: GravityFrame,
                   params: LiftingParams | None = None, stamp: float = 0.0, rgb: np.ndarray | None = None
                   ) -> tuple[list[Observation], list[str]]:
    """Lift each instance to an ``Observation``; instances with too little valid depth are skipped.

    ``depth_m`` (H, W) float metres with NaN (or <= 0) invalid; ``instances``: ``perception.base.Instance``
    list with (H, W) bool masks, or crops of them (an instance with an ``origin`` = (row, col): its ``mask``
    is the tight bounding rectangle of the instance at that pixel, ``perception.external.CroppedInstance``);
    ``rgb`` optional (H, W, 3) uint8 for the colour. Returns the observations (in instance order) and one
    warning string per skipped instance. Raises ``InputError`` for frame-level problems: depth not a float
    image, depth/camera, colour or mask size mismatch, no valid depth at all.

    Step 1 (pixel selection) works per instance in its mask's rectangle (``_select_pixels``); steps 2-5 run
    once over the concatenated pixels of all instances (segment reductions, a few short per-instance loops
    for order statistics), so their cost grows with the pixels, not with numpy calls per instance.
    """
    p = params or LiftingParams()
    _check_frame(depth_m, camera, instances, rgb)
    depth_m = np.ascontiguousarray(depth_m)        # no copy for the usual contiguous images
    rgb = np.ascontiguousarray(rgb) if rgb is not None else None
    results: list = [None] * len(instances)          # Observation or the reason it was skipped
    H, W = depth_m.shape
    items = []
    for index, inst in enumerate(instances):
        crop = _tight_crop(inst, H, W)
        if crop is None:
            results[index] = "empty mask"
        else:
            items.append((index, inst) + crop)
    picked = []
    for item, sel in zip(items, _select_pixels(depth_m, items, p)):
        if isinstance(sel, str):
            results[item[0]] = sel
        else:
            picked.append((item[0], sel))
    if picked:
        for index, value in _lift_batch(depth_m, camera, gravity, p, picked, rgb, stamp):
            results[index] = value
    observations = [r for r in results if isinstance(r, Observation)]
    warnings = [f"instance {inst.instance_id} '{inst.label}': {r}; skipped"
                for inst, r in zip(instances, results) if isinstance(r, str)]
    return observations, warnings


@dataclass
class _Selected:
    """Step 1 of one instance: its accepted pixels (row-major flat indices ``flat`` into its ROI, weights
    ``w``), silhouette pixels without depth (``holes``, flat ROI indices), the ROI's width ``roi_width`` and
    the image-flat index ``roi_shift`` of its corner (``_image_flat``), the mask's bounding rectangle
    ``(x, y, w, h)`` in pixels and, for the amodal completion, sampled middle rows with their left/right mask
    edges (image rows and columns)."""

    inst: object
    flat: np.ndarray
    w: np.ndarray
    holes: np.ndarray
    roi_width: int
    roi_shift: int
    bbox: tuple[int, int, int, int]
    edge_rows: np.ndarray | None = None
    edge_left: np.ndarray | None = None
    edge_right: np.ndarray | None = None
    rim_cols: np.ndarray | None = None       # sampled middle columns of the mask, image coordinates ...
    rim_rows: np.ndarray | None = None       # ... and the lowest mask row of each (``_lower_rim``)


def _tight_crop(inst, H: int, W: int):
    """(x, y, w, h, crop): the bounding rectangle (pixels) of the instance's mask and the mask cut to it
    (a view for full-size masks), or None for an empty mask."""
    origin = getattr(inst, "origin", None)
    mask = inst.mask if inst.mask.dtype == bool else inst.mask != 0
    if origin is not None:                                   # a crop (perception.external.CroppedInstance)
        y, x = int(origin[0]), int(origin[1])
        if mask.size == 0:
            return None
        if not (mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()):
            rows, cols = np.nonzero(mask)                    # not tight (or empty): tighten it
            if rows.size == 0:
                return None
            mask = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            y, x = y + int(rows.min()), x + int(cols.min())
        return x, y, mask.shape[1], mask.shape[0], mask
    full = mask if mask.flags.c_contiguous else np.ascontiguousarray(mask)
    x, y, w, h = cv2.boundingRect(full.view(np.uint8))
    if w == 0 or h == 0:
        return None
    return x, y, w, h, full[y:y + h, x:x + w]


def _select_pixels(depth_m: np.ndarray, items, p: LiftingParams) -> list:
    """Step 1 for every instance (``items``: (index, instance, x, y, w, h, crop)), each in its mask's
    rectangle grown by the erosion: per item a ``_Selected`` or the reason it cannot be lifted. Valid depth in
    range inside the (depth-consistently eroded, ``_rim_samples``) mask, the silhouette decimated inside
    (``_decimated_pixels``); the rim tests of all instances run as one vectorised test."""
    H, W = depth_m.shape
    e = max(p.erosion_px, 1)
    reach = max(p.erosion_px, 2, p.mask_spill_px)          # the widest window radius used below
    kernel = _square(2 * p.erosion_px + 1) if p.erosion_px else None
    rois = []
    for item in items:
        _, inst, x, y, w, h, crop = item
        if x >= reach and y >= reach and x + w + reach <= W and y + h + reach <= H:
            # no window reaches past the image border: work on the crop itself, with nothing around it
            x0, y0, mask, border = x, y, crop, _ZERO_BORDER
        else:                                                 # the rectangle grown by the erosion
            x0, y0, x1, y1 = max(x - e, 0), max(y - e, 0), min(x + w + e, W), min(y + h + e, H)
            mask = np.zeros((y1 - y0, x1 - x0), bool)
            mask[y - y0:y - y0 + h, x - x0:x - x0 + w] = crop
            border = {}                                       # cv2's: the image goes on, all set
        depth = depth_m[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]]
        m = mask & (depth >= p.min_range_m) & (depth <= p.max_range_m)   # NaN compares False
        core = rim = None
        if kernel is not None:
            core = cv2.erode(m.view(np.uint8), kernel, **border).view(bool)
            if p.edge_tolerance_m > 0.0:
                rim = _rim_samples(m, core, depth, kernel)
        rois.append((item, x0, y0, mask, depth, m, core, rim, border))
    agrees = _rim_agrees([roi[7] for roi in rois], p)
    return [_selected(*roi, ok, W, p) for roi, ok in zip(rois, agrees)]


def _selected(item, x0: int, y0: int, mask: np.ndarray, depth: np.ndarray, m: np.ndarray, core: np.ndarray | None,
              rim, border: dict[str, Any], ok: np.ndarray | None, W: int, p: LiftingParams) -> _Selected | str:
    """Step 1 of one item, in its ROI (corner ``(x0, y0)`` in an image ``W`` pixels wide: the mask, the depth
    and the in-range mask ``m`` there, the eroded ``core`` and its ``rim`` samples, which of those agree
    (``ok``)): its ``_Selected``, or the reason it cannot be lifted."""
    _, inst, x, y, w, h, crop = item
    if core is not None:
        if ok is not None:                               # + rim pixels consistent with the core
            core = core.copy()
            core.ravel()[rim[0][ok]] = True
        if np.count_nonzero(core) >= p.min_pixels:       # thin objects keep their un-eroded mask
            m = core
    # the interior grid starts at the corner of the rectangle grown by the erosion
    e = max(p.erosion_px, 1)
    phase = ((max(y - e, 0) - y0) % p.interior_stride, (max(x - e, 0) - x0) % p.interior_stride)
    flat, wgt, inner = _decimated_pixels(m, p.interior_stride, phase, border)
    total = wgt.sum()
    if total < p.min_pixels:
        return f"only {int(total)} valid depth pixels (need {p.min_pixels})"
    holes = _NO_PIXELS
    if p.fill_silhouette:
        sil = mask
        if p.mask_spill_px > 0:
            sil = cv2.erode(mask.view(np.uint8), _square(2 * p.mask_spill_px + 1), **border).view(bool)
        holes = np.flatnonzero((sil > inner) > (depth > 0.0))   # silhouette, not interior, no reading
    sel = _Selected(inst, flat, wgt, holes, m.shape[1], y0 * W + x0, (x, y, w, h))
    if p.amodal == "auto":
        _edges(sel, crop, x, y, 0, h - 1)
    if p.rest_snap_m > 0.0:
        _lower_rim(sel, crop, x, y)
    return sel


def _lower_rim(sel: _Selected, mask, x0: int, y0: int, cols_fraction: float = 0.6, max_cols: int = 32) -> None:
    """The middle ``cols_fraction`` of the columns of ``mask`` (the instance's tight crop at image pixel
    (``y0``, ``x0``); at most ``max_cols``, evenly spread) with the lowest mask row of each, in image
    coordinates, into ``sel`` (for ``_bottom_seen``)."""
    w = mask.shape[1]
    pad = 0.5 * (1.0 - cols_fraction) * (w - 1)
    lo, hi = int(np.ceil(pad)), int(w - 1 - pad)
    cols = np.arange(lo, hi + 1, max(1, (hi - lo + 1) // max_cols))
    sub = mask[:, cols]
    keep = sub.any(axis=0)
    cols, sub = cols[keep], sub[:, keep]
    sel.rim_cols = cols + x0
    sel.rim_rows = (mask.shape[0] - 1 + y0) - sub[::-1].argmax(axis=0)


def _edges(sel: _Selected, mask, x0: int, y0: int, r0: int, r1: int, rows_fraction: float = 0.6,
           max_rows: int = 32) -> None:
    """The middle ``rows_fraction`` of the rows ``r0..r1`` of ``mask`` (a crop of the instance mask whose
    pixel (0, 0) is image pixel (``y0``, ``x0``); at most ``max_rows`` rows, evenly spread) with their
    leftmost / rightmost mask column, in image coordinates, into ``sel`` (for ``_occluded_sides``)."""
    pad = 0.5 * (1.0 - rows_fraction) * (r1 - r0)
    lo, hi = int(np.ceil(r0 + pad)), int(r1 - pad)
    rows = np.arange(lo, hi + 1, max(1, (hi - lo + 1) // max_rows))
    sub = mask[rows]
    keep = sub.any(axis=1)
    if not keep.all():
        rows, sub = rows[keep], sub[keep]
    sel.edge_rows = rows + y0
    sel.edge_left = sub.argmax(axis=1) + x0
    sel.edge_right = (mask.shape[1] - 1 + x0) - sub[:, ::-1].argmax(axis=1)


def _rim_samples(m, core, depth, kernel):
    """Mask-edge bleeding, first half: the rim pixels of the valid ROI mask ``m`` (in ``m`` but not in its
    erosion ``core``) as flat ROI indices, with the number and the depth sum of the core pixels in the
    kernel window around each, and their own depth; None without rim."""
    rim = np.flatnonzero(m > core)                   # flat ROI indices (1-D gathers are the fast ones)
    if rim.size == 0:
        return None
    ksize = kernel.shape[::-1]
    total = cv2.boxFilter(np.where(core, depth, np.float32(0.0)), -1, ksize, normalize=False,
                          borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(core.view(np.uint8), cv2.CV_32F, ksize, normalize=False,
                          borderType=cv2.BORDER_CONSTANT)
    return rim, count.ravel().take(rim), total.ravel().take(rim), depth[rim // m.shape[1], rim % m.shape[1]]


def _rim_agrees(samples: list, p: LiftingParams) -> list:
    """Mask-edge bleeding, second half, for all instances at once (``samples``: ``_rim_samples`` or None per
    instance): which rim pixels are kept after the erosion, those whose depth agrees (within
    ``edge_tolerance_m`` or 4 sigma) with the mean depth of the core pixels around them. Rim pixels that see
    the background or a mixed depth go; a rim on the object's own surface stays, so the box is not shrunk
    by a pixel on every side (``edge_tolerance_m = 0``: a plain erosion)."""
    have = [s for s in samples if s is not None]
    if not have:
        return [None] * len(samples)
    n, total, d = (np.concatenate([s[j] for s in have]) for j in (1, 2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = total / n
        ok = (n > 0.5) & (np.abs(d - ref) <= np.maximum(p.edge_tolerance_m, 4.0 * p.noise.sigma(ref)))
    parts = iter(np.split(ok, np.cumsum([s[0].size for s in have[:-1]])))
    return [None if s is None else next(parts) for s in samples]


def _decimated_pixels(m: np.ndarray, stride: int, phase: tuple[int, int] = (0, 0), border: dict | None = None):
    """(flat ROI indices, weights, interior) of the pixels of the ROI mask ``m`` to lift: all of them within
    two pixels of its edge (the silhouette, where the box extremes and the amodal completion's anchors lie),
    one in ``stride`` x ``stride`` further inside (``interior``; the grid's first row and column: ``phase``),
    weighing ``stride**2`` so that counts stay pixel counts. The interior holds points well inside the box;
    thinning it cuts the lifting time without changing the boxes (measured on the tuning scenes, stride 1
    against 3: the same accuracy to +-0.5 %). ``border``: ``cv2.erode``'s border arguments."""
    inner = cv2.erode(m.view(np.uint8), _square(5), **(border or {})).view(bool)
    if stride <= 1:
        flat = np.flatnonzero(m)
        return flat, np.ones(flat.size, np.float32), inner
    keep = m > inner
    grid = (slice(phase[0], None, stride), slice(phase[1], None, stride))
    keep[grid] |= inner[grid]
    flat = np.flatnonzero(keep)
    wgt = np.where(inner.ravel().take(flat), np.float32(stride * stride), np.float32(1.0))
    return flat, wgt, inner


def _image_flat(sels, name: str, W: int) -> np.ndarray:
    """The ROI-flat pixel indices ``name`` of all ``_Selected`` as row-major flat image indices (W columns),
    concatenated (the order inside each instance kept)."""
    parts = [getattr(s, name) for s in sels]
    flat = np.concatenate(parts)
    n = [a.size for a in parts]
    rw = np.repeat(np.array([s.roi_width for s in sels]), n)
    return flat + (flat // rw) * (W - rw) + np.repeat(np.array([s.roi_shift for s in sels]), n)


def _subsample_step(n: int, limit: int) -> int:
    return max(1, -(-n // limit))


def _offsets(counts: np.ndarray) -> np.ndarray:
    """(K + 1,) segment offsets of segments with ``counts`` elements."""
    out = np.zeros(counts.size + 1, np.intp)
    np.cumsum(counts, out=out[1:])
    return out


def _seg_offsets(g: np.ndarray, K: int) -> np.ndarray:
    """(K + 1,) offsets of the segments of sorted segment numbers ``g`` (segments may be empty)."""
    return np.searchsorted(g, np.arange(K + 1))


def _seg_sum(values: np.ndarray, off: np.ndarray) -> np.ndarray:
    """(K,) float64 sums of the segments ``off`` of ``values`` (0 for empty segments)."""
    if values.size == 0:
        return np.zeros(off.size - 1)
    sums = np.add.reduceat(values, np.minimum(off[:-1], values.size - 1)).astype(np.float64)
    return np.where(off[1:] > off[:-1], sums, 0.0)


def _seg_strided(off: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Indices of every ``step[k]``-th element of each segment ``k`` (``off``), from its first, in order."""
    return np.concatenate([np.arange(off[k], off[k + 1], step[k]) for k in range(off.size - 1)])


def _lift_batch(depth_m, camera: CameraModel, gravity: GravityFrame, p: LiftingParams, picked, rgb, stamp):
    """Steps 2-5 for all selected instances at once; yields ``(instance index, Observation or reason)``.

    Arrays are concatenated per instance in instance order (``g``: the instance's batch index, sorted;
    ``off``: segment offsets), each segment in row-major pixel order as the per-instance algorithm has it."""
    H, W = depth_m.shape
    K = len(picked)
    sels = [s for _, s in picked]
    counts = np.array([s.flat.size for s in sels])
    pix = _image_flat(sels, "flat", W)
    z = depth_m.ravel().take(pix)
    wgt = np.concatenate([s.w for s in sels])
    g = np.repeat(np.arange(K), counts)
    off = _offsets(counts)
    bw = np.array([s.bbox[2] for s in sels], np.float64)

    # 2. Outliers along the optical axis: median/MAD band (statistics on <= 2048 samples per instance), then
    #    the largest depth cluster. The band is never narrower than the object's width (metres at the median
    #    depth): objects seen at a grazing angle legitimately span a depth range about as large as they are.
    z_med, mad = _depth_medians(z, off, counts)
    sigma = np.asarray(p.noise.sigma(z_med), np.float64).reshape(K)
    band = np.maximum(np.maximum(p.mad_k * 1.4826 * mad, p.min_depth_band_m), bw * z_med / camera.fx)
    inband = np.abs(z - z_med.astype(np.float32)[g]) <= band.astype(np.float32)[g]
    sel = _largest_depth_clusters(z, g, off, inband, np.maximum(p.cluster_gap_m, 6.0 * sigma))
    if not sel.all():
        pix, z, wgt, g = pix[sel], z[sel], wgt[sel], g[sel]

    # 3. Back-project with the cached per-pixel rays ((3, N) float32), rotate into the gravity frame, drop
    #    points on the support surface; instances left with too few pixels are skipped.
    support = gravity.support_height
    margin = np.maximum(p.support_margin_m, 2.5 * sigma)
    R = gravity.rotation.astype(np.float32)
    rx, ry = camera.ray_grid()
    pts = _backproject(rx, ry, pix, z)
    pts_g = R @ pts
    if support is not None:
        pts, pts_g, pix, wgt, g = _above_support(pts, pts_g, pix, wgt, g, support + margin)
    off = _seg_offsets(g, K)
    n_pix = np.rint(_seg_sum(wgt, off)).astype(np.intp)
    alive = n_pix >= p.min_pixels
    for j in np.flatnonzero(~alive):
        yield picked[j][0], (f"only {n_pix[j]} depth pixels left after outlier and support-plane rejection "
                             f"(need {p.min_pixels})")
    if not alive.any():
        return
    if not alive.all():                                  # renumber the instances left
        keep = np.flatnonzero(alive[g])
        pts, pts_g, pix, wgt = pts.take(keep, axis=1), pts_g.take(keep, axis=1), pix.take(keep), wgt.take(keep)
        remap = np.cumsum(alive) - 1
        g = remap[g.take(keep)]
        picked = [pk for pk, a in zip(picked, alive) if a]
        sels = [s for s, a in zip(sels, alive) if a]
        z_med, sigma, margin, n_pix = z_med[alive], sigma[alive], margin[alive], n_pix[alive]
        K = len(picked)
        off = _seg_offsets(g, K)
    z = pts[2]

    # ... silhouette pixels without depth, at the depth of their row's nearest accepted pixel
    all_pts, all_g, all_w, ga = pts, pts_g, wgt, g
    if p.fill_silhouette:
        all_pts, all_g, all_w, ga = _with_silhouette_fill(sels, pix, pts, pts_g, wgt, g, (H, W), rx, ry, R, p)
    off_a = _seg_offsets(ga, K)

    # 4. Amodal completion, noise-aware box in the gravity frame, bottom on the support.
    scale = _noise_scales(pix, z, g, K, sigma)
    noise = (np.asarray(p.noise.sigma(all_pts[2]), np.float32) * scale.astype(np.float32)[ga]) / all_pts[2]
    noise = noise * np.abs(all_g)
    if p.amodal == "auto":
        all_g, noise, all_w, ga, off_a = _with_completion(sels, depth_m, all_g, noise, all_w, ga, off_a, sigma,
                                                          z_med / camera.fx, p)
    bmin, bmax = _robust_boxes(all_g, noise, all_w, ga, off_a, z_med, camera, gravity.rotation, p)
    bmin, bmax = _amodal(bmin, bmax, p)
    if support is not None:
        _snap_to_support(bmin, bmax, support, margin, sigma, scale, sels, depth_m, camera, gravity, pts_g, off, p)
    centres = gravity.to_camera((bmin + bmax) / 2.0)

    # 5. Observations: points (subsampled), colour, 2D box.
    source, src_off = (all_g, off_a) if p.amodal_points else (pts, off)
    points = _subsampled_points(source, src_off, gravity if p.amodal_points else None, p.max_points)
    colors = _median_colors(rgb, pix, off) if rgb is not None else [(0, 0, 0)] * K
    for k, (index, s) in enumerate(picked):
        color = colors[k]
        name = color_name(color) if rgb is not None else ""
        x, y, w, h = s.bbox
        inst = s.inst
        yield index, Observation(label=inst.label, score=inst.score, center=centres[k].copy(),
                                 size=bmax[k] - bmin[k], box_min=bmin[k].copy(), box_max=bmax[k].copy(),
                                 points=points[k], n_pixels=int(n_pix[k]), instance_id=inst.instance_id,
                                 color_rgb=color, color_name=name, bbox_2d=(x, y, x + w - 1, y + h - 1),
                                 stamp=float(stamp))


def _depth_medians(z: np.ndarray, off: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per instance (segments ``off`` of the depths ``z``, metres), the upper median depth and the median
    absolute deviation from it, both on <= 2048 evenly spread samples."""
    K = counts.size
    z_med, mad = np.empty(K), np.empty(K)
    for k in range(K):
        zs = z[off[k]:off[k + 1]:_subsample_step(int(counts[k]), 2048)]
        half = zs.size // 2
        z_med[k] = np.partition(zs, half)[half]
        dev = np.abs(zs - np.float32(z_med[k]))
        mad[k] = np.partition(dev, half)[half]
    return z_med, mad


def _above_support(pts, pts_g, pix, wgt, g, floor_m: np.ndarray):
    """The points (camera ``pts``, gravity ``pts_g``, flat pixels, weights, instance indices ``g``) whose
    gravity height lies above their instance's ``floor_m`` (the support height plus its margin, metres)."""
    above = pts_g[2] > floor_m.astype(np.float32)[g]
    if above.all():
        return pts, pts_g, pix, wgt, g
    keep = np.flatnonzero(above)
    return pts.take(keep, axis=1), pts_g.take(keep, axis=1), pix.take(keep), wgt.take(keep), g.take(keep)


def _with_silhouette_fill(sels, pix, pts, pts_g, wgt, g, shape: tuple[int, int], rx, ry, R, p: LiftingParams):
    """The accepted points (camera ``pts``, gravity ``pts_g``, weights, instance indices ``g``) with the
    silhouette pixels without depth (``_silhouette_fill``) merged in, per instance after its accepted ones:
    ``(all_pts, all_g, all_w, ga)``; the inputs themselves when there are none."""
    H, W = shape
    fill = _silhouette_fill(sels, pix, pts[2], g, H * W, W, p)
    if fill is None:
        return pts, pts_g, wgt, g
    fq, fz, fg = fill
    fpts = _backproject(rx, ry, fq, fz)
    order = np.argsort(np.concatenate([g, fg]), kind="stable")   # per instance: accepted, filled
    return (np.concatenate([pts, fpts], axis=1).take(order, axis=1),
            np.concatenate([pts_g, R @ fpts], axis=1).take(order, axis=1),
            np.concatenate([wgt, np.ones(fq.size, np.float32)]).take(order),
            np.concatenate([g, fg]).take(order))


def _with_completion(sels, depth_m, all_g, noise, all_w, ga, off_a, sigma, tie_m, p: LiftingParams):
    """The gravity-frame points with the amodal completion's points (``_completion``, for the sides
    ``_occluded_sides`` finds hidden) merged in, per instance after the others, with their noise (the source
    point's), zero weights (copies: no data), instance indices and segment offsets:
    ``(all_g, noise, all_w, ga, off_a)``; the inputs themselves when nothing is completed."""
    occluded = _occluded_sides(sels, depth_m, sigma, p)
    comp = _completion(all_g, ga, off_a, occluded, tie_m, p)
    if comp is None:
        return all_g, noise, all_w, ga, off_a
    extra, src, cg = comp
    order = np.argsort(np.concatenate([ga, cg]), kind="stable")   # per instance: ..., completed
    ga = np.concatenate([ga, cg]).take(order)
    return (np.concatenate([all_g, extra], axis=1).take(order, axis=1),
            np.concatenate([noise, noise.take(src, axis=1)], axis=1).take(order, axis=1),
            np.concatenate([all_w, np.zeros(src.size, np.float32)]).take(order),
            ga, _seg_offsets(ga, off_a.size - 1))


def _snap_to_support(bmin, bmax, support: float, margin, sigma, scale, sels, depth_m, camera: CameraModel,
                     gravity: GravityFrame, pts_g, off, p: LiftingParams) -> None:
    """Bottoms (``bmin[:, 2]``, gravity frame, metres) just above the support height snap onto it; with
    ``rest_snap_m``, objects whose bottom is not seen rest on the supports (``_rest_on_supports``). In place."""
    lift = bmin[:, 2] - support
    snap = (lift > 0.0) & (lift <= np.maximum(p.snap_to_support_m, margin + 0.005))
    bmin[snap, 2] = support
    if p.rest_snap_m > 0.0:
        # a resting object's bottom is measured about the support margin plus the noise trim high
        min_gap = np.maximum(p.seen_gap_m, margin + 4.0 * sigma * np.clip(scale, 1.0, 2.0))
        seen = _bottom_seen(sels, depth_m, camera, gravity, bmin[:, 2], min_gap, p)
        if seen.any():                       # ... and the lowest visible surface is an upright side
            slope = _undercut_slopes(pts_g, off, bmin[:, 2], bmax[:, 2], 2.0 / camera.fx)
            seen &= np.abs(slope) < p.seen_max_undercut
        _rest_on_supports(bmin, bmax, float(support), p, ~seen)


def _subsampled_points(source: np.ndarray, src_off: np.ndarray, gravity: GravityFrame | None, max_points: int
                       ) -> list[np.ndarray]:
    """Per instance (segments ``src_off`` of the (3, N) points ``source``), <= ``max_points`` of its points,
    evenly spread, as (n, 3) float64 in the camera frame (``gravity``: the points are in its frame)."""
    n_src = np.diff(src_off)
    step = -(-n_src // max_points)                          # <= max_points per instance, evenly spread
    points = source.take(_seg_strided(src_off, step), axis=1).T.astype(np.float64)
    if gravity is not None:                                 # gravity frame -> camera frame
        points = points @ np.asarray(gravity.rotation, np.float64)
    return np.split(points, np.cumsum(-(-n_src // step))[:-1])


def _median_colors(rgb: np.ndarray, pix: np.ndarray, off: np.ndarray) -> list[tuple[int, int, int]]:
    """Per instance (``off``: segments of the flat pixel indices ``pix``), the per-channel upper median of
    the colour of <= 512 of its pixels, evenly spread (``colors.median_color``: an actual value per
    channel)."""
    n = np.diff(off)
    step = -(-n // 512)
    px = rgb.reshape(-1, 3).take(pix.take(_seg_strided(off, step)), axis=0)
    out = []
    for block in np.split(px, np.cumsum(-(-n // step))[:-1]):
        med = np.partition(block, block.shape[0] // 2, axis=0)[block.shape[0] // 2]
        out.append((int(med[0]), int(med[1]), int(med[2])))
    return out


def _largest_depth_clusters(z, g, off, inband, gap) -> np.ndarray:
    """Per instance, the in-band depths in the most populated run of non-empty ``gap``-wide depth bins
    (depths separated by an empty stretch of more than two gaps always split, more than one gap may): a bool
    selection over ``z``. One ``np.bincount`` over all instances, an empty bin between them."""
    K = off.size - 1
    z0 = np.minimum.reduceat(np.where(inband, z, np.float32(np.inf)), off[:-1])
    inv = (1.0 / gap).astype(np.float32)
    b = ((z - z0[g]) * inv[g]).astype(np.intp)
    b[~inband] = -1
    nb = np.maximum.reduceat(b, off[:-1]) + 1                 # bins per instance (>= 1: the median is in)
    base = _offsets(nb + 1)                                   # + 1 empty bin closing every instance
    counts = np.bincount((b + base[:-1][g])[inband], minlength=int(base[-1]))
    empty = counts == 0
    z0 = z0.astype(np.float64)
    if np.count_nonzero(empty) == K:                          # one run per instance: nothing to cut
        lo, hi = z0.astype(np.float32), (z0 + nb * gap).astype(np.float32)
        return inband & (z >= lo[g]) & (z < hi[g])
    run = np.cumsum(empty)                                    # run id of each non-empty bin
    full = np.flatnonzero(~empty)
    rid = run[full]
    size = np.bincount(rid, counts[full])[rid]                # points in the run of each non-empty bin
    inst = np.repeat(np.arange(K), nb + 1)[full]
    first = _seg_offsets(inst, K)[:-1]
    best = np.maximum.reduceat(size, first)[inst]
    cand = np.flatnonzero(size == best)                       # bins of the best runs; the first run wins
    ci = inst[cand]
    pick = cand[np.r_[True, ci[1:] != ci[:-1]]]
    chosen = np.full(int(run[-1]) + 1, -1)
    chosen[rid[pick]] = np.arange(K)
    in_run = chosen[rid] >= 0
    bins, owner = full[in_run], chosen[rid[in_run]]
    starts = _seg_offsets(owner, K)[:-1]
    lo_bin = np.minimum.reduceat(bins, starts) - base[:-1]
    hi_bin = np.maximum.reduceat(bins, starts) - base[:-1] + 1
    lo = (z0 + lo_bin * gap).astype(np.float32)
    hi = (z0 + hi_bin * gap).astype(np.float32)
    return inband & (z >= lo[g]) & (z < hi[g])


def _backproject(rx, ry, pix, z) -> np.ndarray:
    """(3, N) float32 camera-frame points of flat pixel indices ``pix`` at depths ``z`` (cached rays)."""
    pts = np.empty((3, z.size), dtype=np.float32)
    np.multiply(rx.ravel()[pix], z, out=pts[0])
    np.multiply(ry.ravel()[pix], z, out=pts[1])
    pts[2] = z
    return pts


def _silhouette_fill(sels, pix, z, g, hw: int, W: int, p: LiftingParams):
    """(flat image indices, depths, instance) for the silhouette pixels of each instance (those not in the
    interior of its valid pixels two pixels in; the mask shrunk by ``mask_spill_px`` first when masks are
    known to spill over object edges) that have no depth reading (``_Selected.holes``): each gets the depth
    of the nearest accepted pixel of its instance IN ITS ROW (``pix``/``z``/``g``: row-major flat indices,
    depths and instance of the accepted pixels, grouped by instance). Stereo shadows and edge dropouts are
    horizontal runs, and along a row the depth of a surface changes slowly while across the rows of a
    surface seen at a grazing angle it changes fast. Only rows with at least ``fill_min_row`` accepted
    pixels are used (a row's lone pixels may be outliers). Pixels WITH a reading that was rejected are not
    filled: their depth says they are something else (background, the table, a mixed edge pixel) or a
    steep side that another depth would misplace. Holes inside the silhouette do not change the box and are
    left alone. None if nothing to fill."""
    nh = np.array([s.holes.size for s in sels])
    if not nh.any():
        return None
    q = _image_flat(sels, "holes", W)
    qg = np.repeat(np.arange(len(sels)), nh)
    key = g * hw + pix                                       # sorted: by instance, then row-major
    qk = qg * hw + q
    row_start = qk - q % W
    n = key.size
    pos = np.searchsorted(key, qk)
    n_row = np.searchsorted(key, row_start + W) - np.searchsorted(key, row_start)
    left = key[np.maximum(pos - 1, 0)]
    right = key[np.minimum(pos, n - 1)]
    has_left = (pos > 0) & (left >= row_start)
    has_right = (pos < n) & (right < row_start + W)
    use_left = has_left & (~has_right | (qk - left <= right - qk))
    ok = (has_left | has_right) & (n_row >= p.fill_min_row)
    if not ok.any():
        return None
    src = np.where(use_left, pos - 1, np.minimum(pos, n - 1))[ok]
    return q[ok], z[src], qg[ok]


def _noise_scales(pix, z, g, K: int, model_sigma: np.ndarray, min_triples: int = 30) -> np.ndarray:
    """(K,) measured depth noise of each instance relative to the model's ``sigma(z)`` at its median depth,
    in [0, 2]: second differences of accepted pixels that are three in a row, one or two pixels apart
    (``pix`` flat indices in row-major order per instance, ``z`` their depths; ``z[u+d] - 2 z[u] + z[u-d]``
    cancels the surface's own slope, white noise gives it ``sqrt(6) sigma``), robust scale by the MAD.
    Noise-free depth gives ~0 (no trimming, so exact boxes stay exact); 1 when there are too few triples to
    tell. Measured on the rendered stereo-like scenes: median 0.96 (5-95 %: 0.64-1.18) of the default
    model."""
    out = np.ones(K)
    if pix.size < 3:
        return out
    d1, d2_ = pix[1:-1] - pix[:-2], pix[2:] - pix[1:-1]
    row3 = (d1 == d2_) & (d1 <= 2) & (g[2:] == g[:-2])       # evenly spaced, 1 or 2 px, one instance
    idx = np.flatnonzero(row3)
    d2 = z[idx + 2] - 2.0 * z[idx + 1] + z[idx]
    off = _seg_offsets(g.take(idx), K)
    n = np.diff(off)
    for k in np.flatnonzero((n >= min_triples) & (model_sigma > 0.0)):
        d = d2[off[k]:off[k + 1]]
        d = d[::_subsample_step(d.size, 2048)]
        med = float(np.partition(d, d.size // 2)[d.size // 2])
        dev = np.abs(d - med)
        s = 1.4826 * float(np.partition(dev, dev.size // 2)[dev.size // 2]) / np.sqrt(6.0)
        out[k] = float(np.clip(s / model_sigma[k], 0.0, 2.0))
    return out


def _seg_kth_largest(values: np.ndarray, off: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """(R, K) float64: per row of (R, N) ``values`` and segment ``k`` (``off``), its ``ks[r, k]``-th largest
    value (1 = the maximum)."""
    out = np.maximum.reduceat(values, off[:-1], axis=1).astype(np.float64)
    for r, k in zip(*np.nonzero(ks > 1)):
        seg = values[r, off[k]:off[k + 1]]
        j = seg.size - int(ks[r, k])
        out[r, k] = float(np.partition(seg, j)[j])
    return out


def _detached_counts(pts_g, g, off, gap: np.ndarray, max_count: np.ndarray) -> np.ndarray:
    """(3, K, 2) per gravity axis and instance: how many of the largest / smallest coordinates (at most
    ``max_count``) are cut off from the rest by an empty ``gap``-wide bin of a histogram of that coordinate:
    a few points of another surface (a mask spilling onto an object behind, a flying pixel) that passed the
    depth tests. A surface sampled by pixels leaves no such gaps: neighbouring pixels are millimetres apart.
    One ``np.bincount`` for all axes and instances (a row of bins per axis and instance), O(N)."""
    K = off.size - 1
    lo = np.minimum.reduceat(pts_g, off[:-1], axis=1)                     # (3, K)
    idx = ((pts_g - lo.take(g, axis=1)) * (1.0 / gap).astype(np.float32)[g]).astype(np.intp)
    size = np.maximum.reduceat(idx.max(axis=0), off[:-1]) + 1            # bins per row of instance k
    row_len = np.repeat(size, 3)                                          # rows: instance-major, then axis
    row_off = _offsets(row_len)
    idx += row_off[:-1][3 * g] + np.arange(3)[:, None] * size[g]          # flat bin of each coordinate
    counts = np.bincount(idx.ravel(), minlength=int(row_off[-1]))
    cum = np.cumsum(counts)
    start = np.concatenate(([0], cum))[row_off[:-1]]                     # points before each row
    row = np.repeat(np.arange(3 * K), row_len)
    below = cum - start[row]                                              # in this bin or lower
    above = (cum[row_off[1:] - 1] - start)[row] - below + counts          # in this bin or higher
    empty = counts == 0
    limit = np.repeat(max_count, 3)[row]
    out = np.zeros((3 * K, 2), np.intp)
    for j, cum_side in enumerate((above, below)):
        cand = np.flatnonzero(empty & (cum_side <= limit))
        if cand.size == 0:
            continue
        r = row[cand]
        # high side: the innermost (lowest) such bin of a row; low side: the highest
        edge = np.r_[True, r[1:] != r[:-1]] if j == 0 else np.r_[r[1:] != r[:-1], True]
        out[r[edge], j] = cum_side[cand[edge]]
    return out.reshape(K, 3, 2).transpose(1, 0, 2)


def _robust_boxes(pts_g, noise, weights, g, off, z_typical, camera: CameraModel, rotation, p: LiftingParams
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(K, 3) min and max corners of the noise-aware boxes of the instances' (3, N) gravity-frame points
    (``g``/``off``: instance segments) with one-sigma depth noise ``noise`` (3, N), grown by half a pixel
    footprint per side at depth ``z_typical`` (pixel centres lie inside the silhouette).

    Per axis and side: the ``k``-th extreme of the coordinates moved inwards by ``c`` sigmas, ``k`` leaving
    out the ``box_percentiles`` tail and ``_detached_counts`` strays, ``c = noise_trim_sigmas``. On the
    vertical axis ``c`` grows with the number ``m`` of pixels lying on the extreme (within two sigmas of a
    first estimate; ``weights``: the pixels each point stands for): the largest of ``m`` noisy points on a
    flat face exceeds it by about ``Phi^-1(1 - 0.5 / m)`` sigmas (3.3 for a thousand points on a box top seen
    from above, 1.6 for ten on a rounded top); a fixed trim left thin objects 15 % too tall. The horizontal
    extremes are silhouettes with few points there, whose depths are already biased inwards (a ray just
    inside a silhouette meets the surface in front of it), so the fixed trim serves them better (measured
    on the tuning scenes: box depth within +-10 % 66 % against 57 %)."""
    n = np.diff(off)
    gap = np.maximum(p.detached_gap_m, p.detached_gap_px * z_typical / camera.fx)
    max_count = np.maximum(2, (p.detached_fraction * n).astype(np.intp))
    detached = _detached_counts(pts_g, g, off, gap, max_count)              # far strays are ignored
    k_hi = np.maximum(n - np.round(p.box_percentiles[1] / 100.0 * (n - 1)).astype(np.intp), detached[:, :, 0] + 1)
    k_lo = np.maximum(1 + np.round(p.box_percentiles[0] / 100.0 * (n - 1)).astype(np.intp), detached[:, :, 1] + 1)
    c0 = p.noise_trim_sigmas
    trim = c0 * noise
    bmax = _seg_kth_largest(pts_g - trim, off, k_hi)                        # (3, K)
    bmin = -_seg_kth_largest(-(pts_g + trim), off, k_lo)
    v, s = pts_g[2], noise[2]
    for sign, ks, out in ((1.0, k_hi[2], bmax), (-1.0, k_lo[2], bmin)):
        vs, first = sign * v, sign * out[2]
        near = vs >= first[g] - 2.0 * s
        m = _seg_sum(np.where(near, weights, np.float32(0.0)), off)
        c = ndtri(1.0 - 0.5 / np.maximum(m, 1.0))
        grow = c > c0
        if grow.any():
            redo = _seg_kth_largest((vs - c.astype(np.float32)[g] * s)[None], off, ks[None])[0]
            out[2] = np.where(grow, sign * redo, out[2])
    half = 0.5 * z_typical[:, None] * np.array([1.0 / camera.fx, 1.0 / camera.fy])
    pad = half @ np.abs(np.asarray(rotation, dtype=np.float64)[:, :2]).T     # (K, 3)
    return bmin.T - pad, bmax.T + pad


def _occluded_sides(sels, depth_m, sigma: np.ndarray, p: LiftingParams, reach_in: int = 16,
                    reach_out: int = 6) -> np.ndarray:
    """(K, 2) bool (left, right): is the instance's silhouette on that image side an occlusion boundary
    rather than its own outline? True when the mask touches the image border there, or when, on at least
    ``occlusion_fraction`` of its sampled middle rows (``_edges``), the first valid depth outside the edge
    (within ``reach_out`` pixels) is nearer than the first valid depth inside (within ``reach_in``: the
    object's pixels next to a nearer object are often in its stereo shadow, without depth) by more than
    ``max(edge_tolerance_m, 5 sigma)``: another object in front hides that side."""
    H, W = depth_m.shape
    K = len(sels)
    nr = np.array([s.edge_rows.size for s in sels])
    out = np.zeros((K, 2), bool)
    if not nr.any():
        return out
    rows = np.concatenate([s.edge_rows for s in sels])
    left = np.concatenate([s.edge_left for s in sels])
    right = np.concatenate([s.edge_right for s in sels])
    owner = np.repeat(np.arange(K), nr)
    offsets = np.concatenate([-np.arange(reach_in), np.arange(1, reach_out + 1)])   # inwards, then outwards
    cols = np.concatenate([left[:, None] - offsets, right[:, None] + offsets])        # (2n, reach_in+reach_out)
    valid = (cols >= 0) & (cols < W)
    flat = np.concatenate([rows, rows])[:, None] * W + np.clip(cols, 0, W - 1)
    vals = depth_m.ravel().take(flat)
    valid &= vals > 0.0                                          # NaN compares False
    inner_ok, outer_ok = valid[:, :reach_in], valid[:, reach_in:]
    every = np.arange(flat.shape[0])
    inside = np.where(inner_ok.any(axis=1), vals[every, inner_ok.argmax(axis=1)], np.nan)
    outside = np.where(outer_ok.any(axis=1), vals[every, reach_in + outer_ok.argmax(axis=1)], np.nan)
    thr = np.maximum(p.edge_tolerance_m, 5.0 * sigma).astype(np.float32)
    with np.errstate(invalid="ignore"):
        nearer = outside < inside - np.concatenate([thr[owner], thr[owner]])
    m = rows.size
    need = p.occlusion_fraction * nr
    out[:, 0] = (np.bincount(owner[left == 0], minlength=K) > 0) | \
        (np.bincount(owner[nearer[:m]], minlength=K) >= need)
    out[:, 1] = (np.bincount(owner[right == W - 1], minlength=K) > 0) | \
        (np.bincount(owner[nearer[m:]], minlength=K) >= need)
    out[nr == 0] = False
    return out


def _seg_mid_ranges(values: np.ndarray, seg: np.ndarray, K: int) -> np.ndarray:
    """(K,) per segment ``0..K-1`` (``seg``: each value's), the midpoint of the 10th-90th percentile range of
    its float32 ``values`` (a side seen edge-on spans the object's whole depth); NaN for an empty one."""
    out = np.full(K, np.nan)
    if values.size == 0:
        return out
    order = np.lexsort((values, seg))
    vals = values.take(order)
    off = np.searchsorted(seg.take(order), np.arange(K + 1))
    has = off[1:] > off[:-1]
    last = np.maximum(off[1:] - off[:-1] - 1, 0)
    lo = np.minimum(off[:-1] + np.round(0.1 * last).astype(np.intp), vals.size - 1)
    hi = np.minimum(off[:-1] + np.round(0.9 * last).astype(np.intp), vals.size - 1)
    out[has] = 0.5 * (vals[lo] + vals[hi]).astype(np.float64)[has]
    return out


def _completion(pts_g, g, off, occluded: np.ndarray, tie_m: np.ndarray, p: LiftingParams):
    """Amodal completion of the unseen backs (see ``LiftingParams``): (3, M) gravity-frame points, the
    indices (into ``pts_g``) of the points they were made from and their instances, or None.

    Per instance: the horizontal line of sight ``d`` to the object gives along-sight ``u`` and across-sight
    ``v`` coordinates (at most ``2 * amodal_max_points`` points, evenly thinned). Each left/right extreme is
    the ``amodal_band`` fraction of points furthest out, plus every point within ``tie_m`` (a pixel
    footprint) of them, so a box side seen edge-on comes whole; it is located at the midpoint of their 10-90 %
    range along the line of sight (such a side spans the depth). The centre is midway between the two
    extremes; points in front of it (smaller ``u``, at most ``amodal_max_points``) are turned half a turn
    about the vertical axis through it. With one side an occlusion boundary, ``u`` of the centre comes from
    the other side and the front is mirrored about the plane ``u = u_c``; with both, nothing."""
    K = off.size - 1
    lo = np.minimum.reduceat(pts_g[:2], off[:-1], axis=1)
    hi = np.maximum.reduceat(pts_g[:2], off[:-1], axis=1)
    c = 0.5 * (lo + hi)                                       # (2, K) float32
    nrm = np.hypot(c[0], c[1])
    ok = ~(occluded[:, 0] & occluded[:, 1]) & (nrm >= 1e-6)
    if not ok.any():
        return None
    d = c / np.where(ok, nrm, np.float32(1.0))
    step = -(-np.diff(off) // (2 * p.amodal_max_points))      # evenly thinned: <= 2x the budget
    thin = None
    if step.max() > 1:
        thin = _seg_strided(off, step)
        tg, gx, gy = g.take(thin), pts_g[0].take(thin), pts_g[1].take(thin)
    else:
        tg, gx, gy = g, pts_g[0], pts_g[1]
    dx, dy = d[0][tg], d[1][tg]
    u = dx * gx + dy * gy                                     # along the line of sight
    v = dx * gy - dy * gx                                     # across it, positive to the left
    t_off = _seg_offsets(tg, K)
    n = np.diff(t_off)
    kb = np.maximum(1, (p.amodal_band * n).astype(np.intp))   # points in each extreme band
    todo = ok & (2 * kb < n)
    if not todo.any():
        return None
    thr_right = np.full(K, -np.inf, np.float32)
    thr_left = np.full(K, np.inf, np.float32)
    for k in np.flatnonzero(todo):                            # the band edges, plus a pixel footprint
        part = np.partition(v[t_off[k]:t_off[k + 1]], (kb[k] - 1, n[k] - kb[k]))
        thr_right[k] = part[kb[k] - 1] + float(tie_m[k])     # smallest v = rightmost in the image
        thr_left[k] = part[n[k] - kb[k]] - float(tie_m[k])
    right = np.flatnonzero(v <= thr_right[tg])
    left = np.flatnonzero(v >= thr_left[tg])
    use_left, use_right = todo & ~occluded[:, 0], todo & ~occluded[:, 1]
    lg, rg = tg.take(left), tg.take(right)                   # mid-ranges of u and v on each side, at once
    mids = _seg_mid_ranges(np.concatenate([u.take(left), u.take(right), v.take(left), v.take(right)]),
                           np.concatenate([lg, rg + K, lg + 2 * K, rg + 3 * K]), 4 * K).reshape(4, K)
    with np.errstate(invalid="ignore"):
        u_c = (np.where(use_left, mids[0], 0.0) + np.where(use_right, mids[1], 0.0)) / (use_left * 1 + use_right)
    u_c = np.where(todo, u_c, np.nan)
    two = use_left & use_right
    v_sum = mids[2] + mids[3]
    with np.errstate(invalid="ignore"):
        front = np.flatnonzero(u < u_c.astype(np.float32)[tg])
    f_off = _seg_offsets(tg.take(front), K)
    step2 = -(-np.diff(f_off) // p.amodal_max_points)
    if step2.max(initial=0) > 1:
        front = front.take(_seg_strided(f_off, np.maximum(step2, 1)))
    cg = tg.take(front)
    u_new = 2.0 * u_c.astype(np.float32)[cg] - u[front]
    v_new = np.where(two[cg], v_sum.astype(np.float32)[cg] - v[front], v[front])
    dx, dy = d[0][cg], d[1][cg]
    out = np.empty((3, front.size), np.float32)
    out[0] = dx * u_new - dy * v_new
    out[1] = dy * u_new + dx * v_new
    src = thin[front] if thin is not None else front          # indices into ``pts_g``
    out[2] = pts_g[2, src]
    return out, src, cg


def _amodal(bmin: np.ndarray, bmax: np.ndarray, p: LiftingParams) -> tuple[np.ndarray, np.ndarray]:
    """The ``"symmetric"`` rule (``"auto"``: only for tops seen below ``amodal_min_elevation_deg``) on (K, 3)
    boxes: extend each box backwards (+y, away from the camera) to at least its width; see ``LiftingParams``."""
    if p.amodal == "none":
        return bmin, bmax
    width, depth = bmax[:, 0] - bmin[:, 0], bmax[:, 1] - bmin[:, 1]
    extend = depth < width
    if p.amodal == "auto":
        horizontal = np.hypot((bmin[:, 0] + bmax[:, 0]) / 2.0, bmin[:, 1])
        elevation = np.degrees(np.arctan2(-bmax[:, 2], horizontal))   # camera height above the top, as an angle
        extend &= elevation < p.amodal_min_elevation_deg
    if extend.any():
        bmax = bmax.copy()
        bmax[extend, 1] = bmin[extend, 1] + width[extend]
    return bmin, bmax


def _rest_on_supports(bmin: np.ndarray, bmax: np.ndarray, support: float, p: LiftingParams,
                      hidden: np.ndarray) -> None:
    """Objects whose bottom is hidden rest on something: such a box bottom (``hidden``: (K,) bool) up to
    ``rest_snap_m`` above the highest surface beneath it (the support plane, or the top of another object
    whose footprint holds this object's centre and which is not above this object's bottom by more than
    ``snap_to_support_m``) is put on that surface, in place on the (K, 3) corners. An object's bottom is
    often unseen: hidden by objects in front, or by the object itself (a sphere's or a rounded bottom curves
    away under its silhouette), and points just above the support are dropped as table. A bottom with a gap
    seen under it (``_bottom_seen``: an object held or hanging above the table) stays where it is. Measured
    (``benchmarks/accuracy_offline.py``, tuning seeds, without -> with): heights within +-10 % 84 % ->
    98.5 %, vertical distances between centres 74 % -> 98 %."""
    bottom, top = bmin[:, 2].copy(), bmax[:, 2]
    centre = 0.5 * (bmin[:, :2] + bmax[:, :2])
    inside = np.all((centre[:, None] >= bmin[None, :, :2]) & (centre[:, None] <= bmax[None, :, :2]), axis=2)
    beneath = (top[None, :] > support) & (top[None, :] <= bottom[:, None] + p.snap_to_support_m) & inside
    np.fill_diagonal(beneath, False)
    target = np.max(np.where(beneath, top[None, :], support), axis=1, initial=support)
    rest = hidden & (bottom - target > 0.0) & (bottom - target <= p.rest_snap_m)
    bmin[rest, 2] = target[rest]


def _bottom_seen(sels, depth_m, camera: CameraModel, gravity: GravityFrame, bottom: np.ndarray,
                 min_gap: np.ndarray, p: LiftingParams, reach: int = 6, max_tilt_deg: float = 30.0
                 ) -> np.ndarray:
    """(K,) bool: is the instance's box bottom (gravity z ``bottom``, metres) seen, with a gap under it?

    Per sampled column of the mask's lower rim (``_lower_rim``), the first valid depth within ``reach``
    pixels below the rim is back-projected into the gravity frame. Seen from above, the rays just under a
    floating object pass through the gap and meet the table (or whatever lies beneath) under it, lower than
    the object's lowest point by the gap; under a resting object they meet the surface it stands on at its
    contact line, and a nearer object hiding the bottom is met at its top edge, above the lowest point seen
    (the ray to that point passes over it, descending). The bottom is seen when on at least
    ``seen_gap_fraction`` of the columns with a reading the surface below is more than ``min_gap`` (K,)
    lower than ``bottom``: a resting object's bottom is itself measured that high (the support margin and
    the noise trim), so objects held less than that above a surface are still put down on it. Columns
    without a reading (stereo shadows, the image border, nothing within range) say nothing; with none, or a
    camera rolled more than ``max_tilt_deg`` (the image's columns no longer point down), the bottom counts
    as hidden. A rounded bottom curving away under the silhouette (a ball, a bowl) shows such a gap too:
    ``_undercut_slopes`` tells it apart."""
    K = len(sels)
    out = np.zeros(K, bool)
    down = -np.asarray(gravity.rotation, np.float64)[2]            # gravity's down, camera frame
    if down[1] < np.cos(np.radians(max_tilt_deg)) * np.hypot(down[0], down[1]):
        return out
    H, W = depth_m.shape
    nc = np.array([0 if s.rim_cols is None else s.rim_cols.size for s in sels])
    if not nc.any():
        return out
    cols = np.concatenate([s.rim_cols for s in sels if s.rim_cols is not None])
    rows = np.concatenate([s.rim_rows for s in sels if s.rim_rows is not None])
    owner = np.repeat(np.arange(K), nc)
    below = rows[:, None] + np.arange(1, reach + 1)                # (n, reach) rows under the rim
    inside = below < H
    flat = np.minimum(below, H - 1) * W + cols[:, None]
    vals = depth_m.ravel().take(flat)
    valid = inside & (vals >= p.min_range_m) & (vals <= p.max_range_m)   # NaN compares False
    has = valid.any(axis=1)
    first = valid.argmax(axis=1)
    every = np.arange(rows.size)
    pix = flat[every, first][has]
    zq = vals[every, first][has].astype(np.float32)
    owner = owner[has]
    rx, ry = camera.ray_grid()
    height = (np.asarray(gravity.rotation, np.float32)[2] @ _backproject(rx, ry, pix, zq)).astype(np.float64)
    gap = height < bottom[owner] - min_gap[owner]
    n = np.bincount(owner, minlength=K)
    return (n > 0) & (np.bincount(owner[gap], minlength=K) >= p.seen_gap_fraction * n)



def _undercut_slopes(pts_g, off, bottom: np.ndarray, top: np.ndarray, bin_rad: float, band_m: float = 0.03
                     ) -> np.ndarray:
    """(K,) per instance, how much its lowest visible surface recedes under it: in each bin of azimuth
    (``bin_rad`` wide, about the camera's vertical axis: the gravity frame's origin is the camera, so the
    points of a vertical line on a surface share one), the horizontal range of the points in the lower third
    of a band ``min(band_m, half the box height)`` above the box ``bottom``, minus that of the points in the
    band's upper third, over their height difference; the median over the bins with both (``inf`` with
    fewer than three). A vertical side (a box at any yaw, a cylinder) gives ~0; a rounded bottom (a ball
    below its equator, a bowl) a positive slope: going down, its visible surface moves away from the camera
    until the rays graze it, and the rest is hidden under the object; a part leaning out towards the camera
    (a plush toy's feet) a negative one, its underside unseen. Only a near-vertical lowest surface with a gap
    under it makes a bottom "seen" (``_lift_batch``). ``pts_g``: (3, N) gravity-frame points, ``off``: the
    instance segments."""
    K = off.size - 1
    out = np.full(K, np.inf)
    for k in range(K):
        x, y, z = (pts_g[i, off[k]:off[k + 1]].astype(np.float64) for i in range(3))
        h = z - bottom[k]
        band = min(band_m, 0.5 * (top[k] - bottom[k]))
        low, high = h < band / 3.0, (h >= 2.0 * band / 3.0) & (h < band)
        if not (low.any() and high.any()):
            continue
        rng = np.hypot(x, y)
        bins, col = np.unique(np.floor(np.arctan2(x, y) / bin_rad).astype(np.intp), return_inverse=True)
        stats = []
        for part in (low, high):
            n = np.bincount(col[part], minlength=bins.size)
            with np.errstate(invalid="ignore", divide="ignore"):
                stats.append((np.bincount(col[part], rng[part], bins.size) / n,
                              np.bincount(col[part], h[part], bins.size) / n))
        both = np.isfinite(stats[0][0]) & np.isfinite(stats[1][0])
        if np.count_nonzero(both) >= 3:
            (r_lo, h_lo), (r_hi, h_hi) = stats
            out[k] = float(np.median((r_lo[both] - r_hi[both]) / (h_hi[both] - h_lo[both])))
    return out
