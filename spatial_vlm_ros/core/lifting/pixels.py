"""Step 1, per instance in its mask's bounding rectangle: the pixels to lift. Mask-edge bleeding
(a depth-consistent erosion), valid depth in range, the interior decimated, the silhouette pixels
without depth, and the mask rows/columns the amodal completion and the support step sample.
Pixels: u right, v down; depth in metres.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from spatial_vlm_ros.core.lifting.params import LiftingParams

_NO_PIXELS = np.empty(0, np.intp)


#: a surface's depth change per pixel footprint that ``_occluded_band`` tolerates within its window (a
#: surface at about 63 degrees to the line of sight)
SLANT = 2.0

#: cv2.erode's border arguments for nothing outside the array
_ZERO_BORDER: dict[str, Any] = {"borderType": cv2.BORDER_CONSTANT, "borderValue": 0}


@lru_cache(maxsize=8)
def _square(size: int) -> np.ndarray:
    """Square all-ones structuring element, ``size`` pixels wide (shared, read-only)."""
    kernel = np.ones((size, size), np.uint8)
    kernel.setflags(write=False)
    return kernel


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


def _select_pixels(depth_m: np.ndarray, items, p: LiftingParams, fx: float) -> list:
    """Step 1 for every instance (``items``: (index, instance, x, y, w, h, crop)), each in its mask's
    rectangle grown by the erosion: per item a ``_Selected`` or the reason it cannot be lifted. Valid depth in
    range inside the (depth-consistently eroded, ``_rim_samples``) mask, the silhouette decimated inside
    (``_decimated_pixels``); the rim tests of all instances run as one vectorised test. ``fx``: the focal
    length, pixels (a pixel's footprint, for ``_occluded_band``)."""
    H, W = depth_m.shape
    e = max(p.erosion_px, 1)
    reach = max(p.erosion_px, 2, p.mask_spill_px)          # the widest window radius used below
    kernel = _square(2 * p.erosion_px + 1) if p.erosion_px else None
    coverage = _mask_coverage(items, H, W, p.occluded_band_px) if p.occluded_band_px and len(items) > 1 else None
    rois = []
    for n, item in enumerate(items):
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
        occluded = None
        if coverage is not None:
            found = _occluded_band(depth_m, coverage, n, item, x0, y0, mask.shape, p, fx)
            if found is not None:
                occluded, mixed = found
                m &= ~mixed
        core = rim = None
        if kernel is not None:
            core = cv2.erode(m.view(np.uint8), kernel, **border).view(bool)
            if p.edge_tolerance_m > 0.0:
                rim = _rim_samples(m, core, depth, kernel)
        rois.append((item, x0, y0, mask, depth, m, core, rim, border, occluded))
    agrees = _rim_agrees([roi[7] for roi in rois], p)
    return [_selected(*roi, ok, W, p) for roi, ok in zip(rois, agrees)]


def _mask_coverage(items, H: int, W: int, reach: int) -> tuple[np.ndarray, list]:
    """For ``_occluded_band``: how many of the instances' masks cover each pixel ((H, W) uint8), and per
    instance the part of its mask's rectangle within ``reach`` pixels of another mask's rectangle (x0, y0,
    x1, y1; None when no other is that close)."""
    cover = np.zeros((H, W), np.uint8)
    for _, _, x, y, w, h, crop in items:
        cover[y:y + h, x:x + w] += crop
    boxes = np.array([(x, y, x + w, y + h) for _, _, x, y, w, h, _ in items], np.intp).reshape(-1, 4)
    lo = np.maximum(boxes[None, :, :2] - reach, boxes[:, None, :2])          # (own, other, 2)
    hi = np.minimum(boxes[None, :, 2:] + reach, boxes[:, None, 2:])
    touch = np.all(lo < hi, axis=2)
    np.fill_diagonal(touch, False)
    windows = [None if not t.any() else (*lo[k][t].min(axis=0), *hi[k][t].max(axis=0))
               for k, t in enumerate(touch)]
    return cover, windows


def _occluded_band(depth_m: np.ndarray, coverage: tuple[np.ndarray, list], index: int, item, x0: int, y0: int,
                   shape: tuple[int, int], p: LiftingParams, fx: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Occlusion boundaries of instance ``index`` of ``coverage`` (``_mask_coverage``), (h, w) bool each in its
    ROI (corner ``(x0, y0)``, ``shape``): ``band``, its mask pixels within ``occluded_band_px`` of another
    instance's pixel that is nearer than this instance's own surface there (its farthest valid depth within
    ``occluded_band_px + 1`` pixels) by more than a tolerance; and ``mixed``, the band's valid pixels that are
    themselves that much nearer than the surface. None without such a band. The tolerance is the largest of
    ``edge_tolerance_m``, 4 sigma and what a surface slanted at ``SLANT`` footprints per pixel (``fx``) spans
    over the window: in a coarse image a slanted top's own pixels differ that much.

    At an occlusion boundary the occluded object's pixels mix its depth with the occluder's (ToF and stereo
    flying pixels, a mask that spills onto the occluder). Lifted, they make the object reach towards the
    camera, e.g. a block's top raised by the can standing in front of it. ``mixed`` pixels are dropped, and
    silhouette pixels without depth in the band are not filled (they would take such a depth). The
    occluder's pixels next to it are kept, since they are nearer than what lies behind them; so are the
    occluded object's own readings in the band. Only the part of the mask's rectangle within reach of
    another mask's rectangle is examined."""
    cover, windows = coverage
    if windows[index] is None:
        return None
    b = p.occluded_band_px
    r = b + 1                                               # the widest window radius below
    H, W = depth_m.shape
    wx0, wy0, wx1, wy1 = windows[index]                     # the part that can hold a band
    gx0, gy0, gx1, gy1 = max(wx0 - r, 0), max(wy0 - r, 0), min(wx1 + r, W), min(wy1 + r, H)
    _, _, x, y, w, h, crop = item
    own = np.zeros((gy1 - gy0, gx1 - gx0), np.uint8)
    cx0, cy0, cx1, cy1 = max(x, gx0), max(y, gy0), min(x + w, gx1), min(y + h, gy1)
    own[cy0 - gy0:cy1 - gy0, cx0 - gx0:cx1 - gx0] = crop[cy0 - y:cy1 - y, cx0 - x:cx1 - x]
    depth = depth_m[gy0:gy1, gx0:gx1]
    valid = (depth >= p.min_range_m) & (depth <= p.max_range_m)
    others = (cover[gy0:gy1, gx0:gx1] > own) & valid
    if not others.any():
        return None
    far = np.float32(np.finfo(np.float32).max)
    depth = depth.astype(np.float32, copy=False)
    nearest_other = cv2.erode(np.where(others, depth, far), _square(2 * b + 1), borderType=cv2.BORDER_CONSTANT,
                              borderValue=float(far))
    own_surface = cv2.dilate(np.where(own.view(bool) & valid, depth, np.float32(0.0)), _square(2 * r + 1),
                             borderType=cv2.BORDER_CONSTANT, borderValue=0.0)
    slant = np.float32(SLANT * r / fx)                    # metres of depth per metre of range over the window
    iy, ix = np.nonzero(own.view(bool) & (nearest_other < own_surface - np.maximum(p.edge_tolerance_m,
                                                                                   slant * own_surface)))
    surface = own_surface[iy, ix]                          # the noise term only where it can matter
    behind = surface - np.maximum(np.maximum(p.edge_tolerance_m, slant * surface),
                                  4.0 * np.asarray(p.noise.sigma(surface), np.float32))
    keep = nearest_other[iy, ix] < behind
    if not keep.any():
        return None
    mixed = valid[iy, ix] & (depth[iy, ix] < behind)
    iy, ix = iy + (gy0 - y0), ix + (gx0 - x0)              # ROI coordinates (the ROI holds the whole mask)
    band, near = np.zeros(shape, bool), np.zeros(shape, bool)
    band[iy[keep], ix[keep]] = True
    near[iy[keep & mixed], ix[keep & mixed]] = True
    return band, near


def _selected(item, x0: int, y0: int, mask: np.ndarray, depth: np.ndarray, m: np.ndarray, core: np.ndarray | None,
              rim, border: dict[str, Any], occluded: np.ndarray | None, ok: np.ndarray | None, W: int,
              p: LiftingParams) -> _Selected | str:
    """Step 1 of one item, in its ROI (corner ``(x0, y0)`` in an image ``W`` pixels wide: the mask, the depth
    and the in-range mask ``m`` there, the eroded ``core`` and its ``rim`` samples, the pixels next to a nearer
    instance (``occluded``: ``_occluded_band``), which rim samples agree (``ok``)): its ``_Selected``, or the
    reason it cannot be lifted."""
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
        no_reading = depth > 0.0
        if occluded is not None:
            no_reading = no_reading | occluded                 # not filled either
        holes = np.flatnonzero((sil > inner) > no_reading)    # silhouette, not interior, no reading
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
    thinning it cuts the lifting time without changing the boxes (``docs/measured_defaults.md``).
    ``border``: ``cv2.erode``'s border arguments."""
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
