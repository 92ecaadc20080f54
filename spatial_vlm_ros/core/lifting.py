"""Lifting: instance masks + metric depth -> 3D objects (``Observation``) with gravity-aligned boxes.

Per instance, working inside the bounding rectangle of its mask (found with one cv2.boundingRect):
1. mask-edge bleeding: erode the mask by ``erosion_px`` but keep rim pixels whose depth agrees with the
   interior next to them (segmentation masks and aligned depth disagree at object edges; a blind erosion
   would also shrink every box by a pixel on each side);
2. keep valid depth in ``[min_range_m, max_range_m]``; reject outliers along the optical axis with a
   median/MAD band, then keep the largest depth cluster (consecutive sorted depths closer than a gap that
   grows with the sensor noise), which drops background seen through or beside the mask;
3. back-project with the camera's cached per-pixel rays (distortion honoured), rotate into the gravity
   frame, drop points lying on the support plane (table seen beside the object through a spilled mask);
4. robust axis-aligned box in the gravity frame (``box_percentiles`` per axis), optional amodal correction
   for the unseen back, bottom snapped onto the support plane when it is within a centimetre or two;
5. the centre is the box centre, mapped back to the camera optical frame.

Frames: camera optical (x right, y down, z forward) and gravity (z up, y forward horizontal), metres.
Accuracy and speed are measured in ``test/core/test_lifting.py`` and ``benchmarks/bench_lifting.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy.special import ndtri

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.colors import color_name, median_color
from spatial_vlm_ros.core.depth import check_depth_image
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.observation import Observation

AMODAL_MODES = ("none", "symmetric", "auto", "mirror")


@dataclass(frozen=True)
class LiftingParams:
    """Settings of ``lift_instances``. Lengths in metres, angles in degrees.

    Amodal correction (``amodal``): one view sees only the surfaces facing the camera. Seen from above, a
    box's or cylinder's top face spans its whole depth, so the visible box is complete; seen from the side
    (camera at or below the top), only the front is seen and the box depth (gravity y, away from the
    camera) is underestimated (a cylinder shows half its depth, a box almost none), which pulls the centre
    towards the camera.
    - ``"none"``: the box of the visible surface;
    - ``"symmetric"``: assume the footprint is at least as deep as wide: extend the box backwards (+y) to
      ``max(visible depth, width)``; exact for upright cylinders and square boxes, too deep for objects
      wider than deep;
    - ``"auto"`` (default): ``"symmetric"`` only when the object's top is seen at less than
      ``amodal_min_elevation_deg`` from the camera (its top face cannot show the full depth), else
      ``"none"``.
    The default was chosen by measurement (``test/core/test_lifting.py``, boxes and cylinders, 10 scenes per
    view, fully visible objects within 1.5 m, noise-free; mean centre error in mm, none/symmetric/auto):
    camera 0.6 m above the table looking 35 deg down 1.0/4.3/1.0; 50 deg down 0.7/4.1/0.7; level camera
    below the tops 15.8/3.5/3.5; camera just above the tops 7.8/5.3/5.3. The correction assumes the object
    is seen from the front (it extends along gravity +y, not along the exact line of sight) and does not
    recover parts hidden by other objects.
    """

    min_pixels: int = 30               # valid depth pixels (after all rejection) needed to lift an instance
    erosion_px: int = 1                # mask erosion against edge bleeding (skipped if it leaves too few)
    edge_tolerance_m: float = 0.02     # eroded rim pixels within this depth of the interior are kept
    mad_k: float = 4.0                 # outlier band: |z - median| <= mad_k * 1.4826 * MAD, but never
    min_depth_band_m: float = 0.05     # narrower than this nor than the object's width
    cluster_gap_m: float = 0.03        # depth gap that splits clusters (at least 6 sigma(z) of ``noise``)
    noise: DepthNoiseModel = field(default_factory=DepthNoiseModel)
    box_percentiles: tuple[float, float] = (0.1, 99.9)  # robust box extent per gravity axis
    amodal: str = "auto"               # "none" | "symmetric" | "auto" (see above)
    noise_trim_sigmas: float = 0.0
    pixel_pad: bool = False
    fill_silhouette: bool = False
    mask_spill_px: int = 0
    amodal_band: float = 0.03
    occlusion_fraction: float = 0.2
    complete_points: bool = False
    rest_snap_m: float = 0.0
    adaptive_trim: str = ''
    profile_fit: bool = False
    profile_max_radius: float = 1.5
    profile_seen_back: float = 0.8
    amodal_min_elevation_deg: float = 15.0
    support_margin_m: float = 0.005    # points less than this (or 2.5 sigma) above the support are dropped
    snap_to_support_m: float = 0.015   # a box bottom this close above the support plane is put on it
    max_points: int = 2000             # inlier points kept per observation (evenly subsampled)
    min_range_m: float = 0.1
    max_range_m: float = 10.0

    def __post_init__(self):
        if self.amodal not in AMODAL_MODES:
            raise InputError(f"lifting: unknown amodal mode '{self.amodal}' "
                             f"(expected one of {', '.join(AMODAL_MODES)})")
        lo, hi = self.box_percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise InputError(f"lifting: box_percentiles must satisfy 0 <= low < high <= 100, got {lo}, {hi}")
        if self.erosion_px < 0 or self.min_pixels < 1 or self.max_points < 1:
            raise InputError("lifting: erosion_px must be >= 0, min_pixels and max_points >= 1")


def _check_frame(depth_m, camera: CameraModel, instances, rgb) -> None:
    check_depth_image(depth_m, camera.shape)
    if rgb is not None and (rgb.ndim != 3 or rgb.shape[:2] != depth_m.shape or rgb.shape[2] != 3):
        raise InputError(f"colour image is {rgb.shape[1]}x{rgb.shape[0]} but the depth image is "
                         f"{depth_m.shape[1]}x{depth_m.shape[0]}" if rgb.ndim >= 2 else
                         f"colour image: expected (H, W, 3), got shape {rgb.shape}")
    for inst in instances:
        if inst.mask.shape != depth_m.shape:
            raise InputError(f"mask of instance {inst.instance_id} '{inst.label}' is "
                             f"{inst.mask.shape[1]}x{inst.mask.shape[0]} but the depth image is "
                             f"{depth_m.shape[1]}x{depth_m.shape[0]}")
    if instances and not np.any(depth_m > 0.0):
        raise InputError("depth image has no valid pixels (all zero, negative or NaN)")


def _largest_depth_cluster(z: np.ndarray, gap: float) -> tuple[float, float]:
    """Depth interval ``[lo, hi)`` of the most populated run of non-empty ``gap``-wide depth bins: depths
    separated by an empty stretch of more than two gaps always split (more than one gap may), O(N)."""
    z0 = float(z.min())
    counts = np.bincount(((z - z0) * (1.0 / gap)).astype(np.intp))
    empty = np.flatnonzero(counts == 0)
    if empty.size == 0:
        return z0, z0 + counts.size * gap
    starts = np.concatenate(([0], empty + 1))
    ends = np.concatenate((empty, [counts.size]))            # run = bins [start, end)
    cum = np.concatenate(([0], np.cumsum(counts)))
    j = int(np.argmax(cum[ends] - cum[starts]))
    return z0 + starts[j] * gap, z0 + ends[j] * gap


def lift_instances(depth_m: np.ndarray, camera: CameraModel, instances, gravity: GravityFrame,
                   params: LiftingParams | None = None, stamp: float = 0.0, rgb: np.ndarray | None = None
                   ) -> tuple[list[Observation], list[str]]:
    """Lift each instance to an ``Observation``; instances with too little valid depth are skipped.

    ``depth_m`` (H, W) float metres with NaN (or <= 0) invalid; ``instances``: ``perception.base.Instance``
    list with (H, W) bool masks; ``rgb`` optional (H, W, 3) uint8 for the colour. Returns the observations
    and one warning string per skipped instance. Raises ``InputError`` for frame-level problems: depth not
    a float image, depth/camera, colour or mask size mismatch, no valid depth at all.
    """
    params = params or LiftingParams()
    _check_frame(depth_m, camera, instances, rgb)
    depth_m = np.ascontiguousarray(depth_m)        # no copy for the usual contiguous images
    rgb = np.ascontiguousarray(rgb) if rgb is not None else None
    rx, ry = camera.ray_grid()
    kernel = np.ones((2 * params.erosion_px + 1,) * 2, np.uint8) if params.erosion_px else None
    observations, warnings = [], []
    for inst in instances:
        result = _lift_one(depth_m, camera, rx, ry, inst, gravity, params, kernel, rgb, stamp)
        if isinstance(result, str):
            warnings.append(f"instance {inst.instance_id} '{inst.label}': {result}; skipped")
        else:
            observations.append(result)
    if gravity.support_height is not None and params.rest_snap_m > 0.0:
        observations = _rest_on_supports(observations, gravity, params)
    return observations, warnings


def _rest_on_supports(observations: list[Observation], gravity: GravityFrame, p: LiftingParams
                      ) -> list[Observation]:
    """Objects rest on something: a box bottom up to ``rest_snap_m`` above the highest surface beneath it
    (the support plane, or the top of another object whose footprint holds this object's centre) is put on
    that surface. The bottom of an object is often unseen: hidden by objects in front, or by the object
    itself (a sphere or a rounded bottom curves away under its silhouette)."""
    out = []
    for a in observations:
        bottom = float(a.box_min[2])
        centre = 0.5 * (a.box_min[:2] + a.box_max[:2])
        target = float(gravity.support_height)
        for b in observations:
            if b is a:
                continue
            top = float(b.box_max[2])
            inside = np.all(centre >= b.box_min[:2]) and np.all(centre <= b.box_max[:2])
            if inside and top <= bottom + p.snap_to_support_m and top > target:
                target = top
        if 0.0 < bottom - target <= p.rest_snap_m:
            lo = a.box_min.copy()
            lo[2] = target
            a = replace(a, box_min=lo, size=a.box_max - lo, center=gravity.to_camera((lo + a.box_max) / 2.0))
        out.append(a)
    return out


def _consistent_erosion(m, depth, kernel, p: LiftingParams) -> np.ndarray:
    """Pixels of the valid mask ``m`` kept after erosion: the eroded core, plus rim pixels whose depth agrees
    (within ``edge_tolerance_m`` or 4 sigma) with the mean depth of the core pixels around them. Rim pixels
    that see the background or a mixed depth go; a rim on the object's own surface stays, so the box is not
    shrunk by a pixel on every side. ``edge_tolerance_m = 0`` gives a plain erosion."""
    core = cv2.erode(m.view(np.uint8), kernel).view(bool)
    if p.edge_tolerance_m <= 0.0:
        return core
    rim = m & ~core
    rows, cols = np.nonzero(rim)
    if rows.size == 0:
        return core
    ksize = kernel.shape[::-1]
    core_depth = np.zeros(depth.shape, dtype=np.float32)
    np.copyto(core_depth, depth, where=core)
    total = cv2.boxFilter(core_depth, -1, ksize, normalize=False, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(core.view(np.uint8), cv2.CV_32F, ksize, normalize=False,
                          borderType=cv2.BORDER_CONSTANT)
    n = count[rows, cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = total[rows, cols] / n
        ok = (n > 0.5) & (np.abs(depth[rows, cols] - ref) <= np.maximum(p.edge_tolerance_m,
                                                                         4.0 * p.noise.sigma(ref)))
    keep = core.copy()
    keep[rows[ok], cols[ok]] = True
    return keep


def _silhouette_fill(mask, pix, z, y0, x0, W, p: LiftingParams):
    """(flat image indices, depths) for the pixels of ``mask`` (ROI at ``y0, x0``; shrunk by
    ``mask_spill_px`` when masks are known to spill over object edges) that have no accepted depth: each
    gets the depth of the nearest accepted pixel IN ITS ROW (stereo shadows and edge holes are horizontal
    runs; along a row the depth of a surface changes slowly, across rows of a surface seen at a grazing
    angle it changes fast). Rows without any accepted pixel are left out. None if nothing to fill."""
    h, w = mask.shape
    r, c = np.divmod(pix, W)
    r -= y0
    c -= x0
    accepted = np.zeros((h, w), bool)
    accepted[r, c] = True
    sil = mask
    if p.mask_spill_px > 0:
        k = np.ones((2 * p.mask_spill_px + 1,) * 2, np.uint8)
        sil = cv2.erode(mask.view(np.uint8), k).view(bool)
    todo = sil & ~accepted
    if not todo.any():
        return None
    zimg = np.zeros((h, w), np.float32)
    zimg[r, c] = z
    cols = np.broadcast_to(np.arange(w), (h, w))
    left = np.maximum.accumulate(np.where(accepted, cols, -1), axis=1)          # last accepted at or left
    right = np.minimum.accumulate(np.where(accepted, cols, w)[:, ::-1], axis=1)[:, ::-1]   # next at or right
    tr, tc = np.nonzero(todo)
    lc, rc = left[tr, tc], right[tr, tc]
    use_left = (lc >= 0) & ((rc >= w) | (tc - lc <= rc - tc))
    src = np.where(use_left, lc, rc)
    ok = (src >= 0) & (src < w)
    if not ok.any():
        return None
    tr, tc = tr[ok], tc[ok]
    return (tr + y0) * W + (tc + x0), zimg[tr, src[ok]]


def _subsample_step(n: int, limit: int) -> int:
    return max(1, -(-n // limit))


def _lift_one(depth_m, camera, rx, ry, inst, gravity: GravityFrame, p: LiftingParams, kernel, rgb, stamp):
    H, W = depth_m.shape
    full = inst.mask if inst.mask.flags.c_contiguous else np.ascontiguousarray(inst.mask)
    x, y, w, h = cv2.boundingRect(full.view(np.uint8))
    if w == 0 or h == 0:
        return "empty mask"
    e = p.erosion_px
    x0, y0, x1, y1 = max(x - e, 0), max(y - e, 0), min(x + w + e, W), min(y + h + e, H)
    roi = (slice(y0, y1), slice(x0, x1))
    mask = full[roi]
    depth = depth_m[roi]

    # 1. Valid depth inside the (depth-consistently eroded) mask; flat pixel indices into the image.
    m = mask & (depth >= p.min_range_m) & (depth <= p.max_range_m)   # NaN compares False
    if kernel is not None:
        core = _consistent_erosion(m, depth, kernel, p)
        if np.count_nonzero(core) >= p.min_pixels:       # thin objects keep their un-eroded mask
            m = core
    rows, cols = np.nonzero(m)
    if rows.size < p.min_pixels:
        return f"only {rows.size} valid depth pixels (need {p.min_pixels})"
    pix = (rows + y0) * W + (cols + x0)
    z = depth_m.ravel()[pix]

    # 2. Outliers along the optical axis: median/MAD band (statistics on <= 2048 samples), then the largest
    #    depth cluster. The band is never narrower than the object's width (metres at the median depth):
    #    objects seen at a grazing angle legitimately span a depth range about as large as they are wide.
    zs = z[::_subsample_step(z.size, 2048)]
    z_med = float(np.partition(zs, zs.size // 2)[zs.size // 2])
    dev = np.abs(zs - z_med)
    mad = float(np.partition(dev, dev.size // 2)[dev.size // 2])
    sigma = float(p.noise.sigma(z_med))
    band = max(p.mad_k * 1.4826 * mad, p.min_depth_band_m, w * z_med / camera.fx)
    inband = np.abs(z - z_med) <= band
    lo, hi = _largest_depth_cluster(z[inband], max(p.cluster_gap_m, 6.0 * sigma))
    sel = inband & (z >= lo) & (z < hi)
    pix, z = pix[sel], z[sel]

    # 3. Back-project with the cached rays ((3, N) float32 layout) and rotate into the gravity frame.
    support = gravity.support_height
    margin = max(p.support_margin_m, 2.5 * sigma)
    R = gravity.rotation.astype(np.float32)
    pts = np.empty((3, z.size), dtype=np.float32)
    np.multiply(rx.ravel()[pix], z, out=pts[0])
    np.multiply(ry.ravel()[pix], z, out=pts[1])
    pts[2] = z
    pts_g = R @ pts
    if support is not None:                      # points on the support surface are not the object
        above = pts_g[2] > support + margin
        if not above.all():
            keep = np.flatnonzero(above)
            pts, pts_g, pix = pts.take(keep, axis=1), pts_g.take(keep, axis=1), pix[keep]
    n = pts.shape[1]
    if n < p.min_pixels:
        return (f"only {n} depth pixels left after outlier and support-plane rejection "
                f"(need {p.min_pixels})")

    # 3b. Mask pixels without an accepted depth (sensor holes at edges, stereo shadows next to nearer
    #     objects, dropouts): back-project them at the depth of the nearest accepted pixel.
    if p.fill_silhouette:
        fill = _silhouette_fill(mask, pix, pts[2], y0, x0, W, p)
        if fill is not None:
            fpix, fz = fill
            fpts = np.empty((3, fz.size), dtype=np.float32)
            np.multiply(rx.ravel()[fpix], fz, out=fpts[0])
            np.multiply(ry.ravel()[fpix], fz, out=fpts[1])
            fpts[2] = fz
            box_pts, box_pts_g = np.concatenate([pts, fpts], axis=1), np.concatenate([pts_g, R @ fpts], axis=1)
        else:
            box_pts, box_pts_g = pts, pts_g
    else:
        box_pts, box_pts_g = pts, pts_g

    # 4. Robust box in the gravity frame (nearest-rank percentiles), amodal correction, bottom on the support.
    trim = _noise_trim(box_pts, box_pts_g, p)
    if p.amodal in ("mirror", "auto"):
        occluded = _occluded_sides(full, depth_m, sigma, p)
        completion = _completion(box_pts_g, occluded, p)
        if completion is not None:
            extra, src = completion
            box_pts_g = np.concatenate([box_pts_g, extra], axis=1)
            trim = np.concatenate([trim, trim[:, src]], axis=1)
    bmin, bmax = _robust_box(box_pts[2], box_pts_g, trim, camera, R, p)
    bmin, bmax = _amodal(bmin, bmax, box_pts_g, p)
    if support is not None and 0.0 < bmin[2] - support <= max(p.snap_to_support_m, margin + 0.005):
        bmin[2] = support
    center_c = gravity.to_camera((bmin + bmax) / 2.0)

    if p.complete_points and box_pts_g.shape[1] > n:
        m = box_pts_g.shape[1]
        points = (box_pts_g[:, ::_subsample_step(m, p.max_points)].T.astype(np.float64)) @ gravity.rotation
    else:
        points = pts[:, ::_subsample_step(n, p.max_points)].T.astype(np.float64)
    color, name = (0, 0, 0), ""
    if rgb is not None:
        color = median_color(rgb.reshape(-1, 3)[pix[::_subsample_step(n, 512)]])
        name = color_name(color)
    return Observation(label=inst.label, score=inst.score, center=center_c, size=bmax - bmin, box_min=bmin,
                       box_max=bmax, points=points, n_pixels=int(n), instance_id=inst.instance_id,
                       color_rgb=color, color_name=name, bbox_2d=(x, y, x + w - 1, y + h - 1),
                       stamp=float(stamp))


def _noise_trim(pts, pts_g, p: LiftingParams) -> np.ndarray:
    """(3, N) one-sigma displacement of each point along each gravity axis caused by its depth noise (a depth
    error moves a point along its ray: ``p_g * sigma(z) / z``), metres."""
    z = pts[2]
    return (p.noise.sigma(z) / z).astype(np.float32) * np.abs(pts_g)


def _extreme(v: np.ndarray, s: np.ndarray, k: int, p: LiftingParams, adaptive: bool = True) -> float:
    """Robust maximum of noisy coordinates ``v`` (one-sigma ``s``): the ``k``-th largest of ``v - c s``. The
    observed maximum of ``m`` noisy points on the true extreme exceeds it by about ``Phi^-1(1 - 0.5 / m)``
    sigmas (3.3 for the thousand points of a flat top, 1.6 for the ten of a rounded one), so ``c`` is that,
    with ``m`` the points within two sigmas of a first estimate, and never below ``noise_trim_sigmas``."""
    c0 = max(p.noise_trim_sigmas, 2.0)
    first = v - c0 * s
    e0 = float(np.partition(first, v.size - k)[v.size - k])
    if not adaptive:
        return e0 if p.noise_trim_sigmas >= 2.0 else float(np.partition(v - p.noise_trim_sigmas * s, v.size - k)[v.size - k])
    m = int(np.count_nonzero(v >= e0 - 2.0 * s))
    c = max(p.noise_trim_sigmas, float(ndtri(1.0 - 0.5 / max(m, 1))))
    moved = v - c * s
    return float(np.partition(moved, v.size - k)[v.size - k])


def _robust_box(z, pts_g, trim, camera, R, p: LiftingParams) -> tuple[np.ndarray, np.ndarray]:
    """Box of the points in the gravity frame: per axis and side the noise-aware extreme (``_extreme``) of
    the coordinates, ignoring the ``box_percentiles`` tails, grown by half a pixel footprint per side (pixel
    centres lie inside the silhouette)."""
    n = pts_g.shape[1]
    k_lo = int(round(p.box_percentiles[0] / 100.0 * (n - 1))) + 1
    k_hi = n - int(round(p.box_percentiles[1] / 100.0 * (n - 1)))
    bmin = np.empty(3)
    bmax = np.empty(3)
    for a in range(3):
        ad = "xyz"[a] in str(p.adaptive_trim)
        bmax[a] = _extreme(pts_g[a], trim[a], max(k_hi, 1), p, ad)
        bmin[a] = -_extreme(-pts_g[a], trim[a], max(k_lo, 1), p, ad)
    if p.pixel_pad:
        zc = float(np.median(z))
        half = 0.5 * zc * np.array([1.0 / camera.fx, 1.0 / camera.fy])
        pad = np.abs(R[:, :2].astype(np.float64)) @ half
        bmin, bmax = bmin - pad, bmax + pad
    return bmin, bmax


def _occluded_sides(mask, depth_m, sigma, p: LiftingParams, rows_fraction: float = 0.6,
                    reach_px: int = 4) -> tuple[bool, bool]:
    """(left, right): is the object's silhouette on that image side an occlusion boundary rather than its
    own outline? True when the mask touches the image border there, or when, on at least
    ``p.occlusion_fraction`` of the middle rows of the mask, the first valid depth just outside the mask
    (within ``reach_px``) is nearer than the object's depth at its edge by more than the depth-band tolerance
    (another object in front hides that side)."""
    H, W = mask.shape
    ys, xs = np.nonzero(mask)
    r0, r1 = int(ys.min()), int(ys.max())
    pad = 0.5 * (1.0 - rows_fraction) * (r1 - r0)
    rows = np.arange(int(r0 + pad), int(r1 - pad) + 1)
    rows = rows[mask[rows].any(axis=1)]
    if rows.size == 0:
        return False, False
    sub = mask[rows]
    cl = np.argmax(sub, axis=1)
    cr = W - 1 - np.argmax(sub[:, ::-1], axis=1)
    tol = max(p.edge_tolerance_m, 5.0 * sigma)

    def first_valid(cols_start, step):
        out = np.full(rows.size, np.nan, np.float32)
        for k in range(reach_px):
            c = cols_start + step * k
            ok = (c >= 0) & (c < W)
            val = np.full(rows.size, np.nan, np.float32)
            val[ok] = depth_m[rows[ok], c[ok]]
            take = np.isnan(out) & (val > 0)
            out[take] = val[take]
        return out

    result = []
    for edge, step in ((cl, -1), (cr, 1)):
        if np.any(edge == (0 if step < 0 else W - 1)):
            result.append(True)
            continue
        inside = first_valid(edge, -step)
        outside = first_valid(edge + step, step)
        with np.errstate(invalid="ignore"):
            nearer = outside < inside - tol
        result.append(bool(np.count_nonzero(nearer) >= p.occlusion_fraction * rows.size))
    return result[0], result[1]


def _profile_centre(u: np.ndarray, v: np.ndarray, p: LiftingParams, bins: int = 12) -> float | None:
    """Centre (along the line of sight) of a circle fitted to the object's front profile seen from above (the
    nearest point in each of ``bins`` slices across the view, outer tenths left out), or None when the
    profile is not clearly round: a fitted radius above ``profile_max_radius`` times the half width (a flat
    face) or a poor fit. Points at a silhouette are measured nearer than the silhouette itself, so the
    profile's middle locates a round object's centre better than its sides."""
    v0, v1 = float(v.min()), float(v.max())
    half = 0.5 * (v1 - v0)
    if half <= 0.0:
        return None
    edges = np.linspace(v0 + 0.1 * (v1 - v0), v1 - 0.1 * (v1 - v0), bins + 1)
    idx = np.digitize(v, edges) - 1
    ok = (idx >= 0) & (idx < bins)
    if np.count_nonzero(ok) < 3 * bins:
        return None
    front = np.full(bins, np.inf)
    np.minimum.at(front, idx[ok], u[ok])
    centres = 0.5 * (edges[:-1] + edges[1:])
    good = np.isfinite(front)
    if np.count_nonzero(good) < bins // 2:
        return None
    vv, uu = centres[good], front[good]
    A = np.column_stack([vv, uu, np.ones_like(vv)])
    sol, *_ = np.linalg.lstsq(A, -(vv * vv + uu * uu), rcond=None)
    vc, uc = -0.5 * sol[0], -0.5 * sol[1]
    r2 = vc * vc + uc * uc - sol[2]
    if r2 <= 0.0:
        return None
    r = float(np.sqrt(r2))
    if r > p.profile_max_radius * half or uc <= uu.min():
        return None
    if float(np.percentile(u, 98.0)) >= uc + p.profile_seen_back * r:     # the back is seen (a top face)
        return None
    resid = np.abs(np.hypot(vv - vc, uu - uc) - r)
    if float(np.median(resid)) > 0.1 * r:
        return None
    return float(uc)


def _mid_range(values: np.ndarray) -> float:
    """Midpoint of the 10th-90th percentile range (a side seen edge-on spans the object's whole depth)."""
    lo, hi = np.percentile(values, (10.0, 90.0))
    return 0.5 * float(lo + hi)


def _completion(pts_g, occluded: tuple[bool, bool], p: LiftingParams):
    """Amodal completion of the unseen back of an object; (3, M) gravity-frame points and the indices of the
    visible points they come from, or None.

    A camera sees each object up to its silhouette. Boxes (at any yaw), cylinders and spheres are symmetric
    under a half turn about the vertical axis through their centre, so the hidden back is the visible front
    turned by 180 deg about that axis. The centre is the midpoint of the object's two extreme points across
    the horizontal line of sight (its widest section: the left and right sides of a sphere or cylinder, the
    side corners of a yawed box); each side is the median of the ``amodal_band`` fraction of points
    furthest out. Only points in front of the centre are turned, so what is seen is never shrunk and the
    front never moves. When one side of the silhouette is an occlusion boundary (``occluded``), the centre
    along the line of sight comes from the other side alone and the front is mirrored about the vertical
    plane through it; when both are, nothing is completed."""
    if occluded[0] and occluded[1]:
        return None
    c = 0.5 * (pts_g[:2].min(axis=1) + pts_g[:2].max(axis=1))
    nrm = float(np.hypot(c[0], c[1]))
    if nrm < 1e-6:
        return None
    d = (c / nrm).astype(np.float32)                       # horizontal line of sight to the object
    u = d[0] * pts_g[0] + d[1] * pts_g[1]                  # along the line of sight
    v = d[0] * pts_g[1] - d[1] * pts_g[0]                  # across it, positive to the left
    n = u.size
    k = max(1, int(p.amodal_band * n))
    if 2 * k >= n:
        return None
    order = np.argpartition(v, (k, n - k - 1))
    right, left = order[:k], order[n - k:]                 # smallest v = rightmost in the image
    sides = [(left, occluded[0]), (right, occluded[1])]
    visible = [idx for idx, occ in sides if not occ]
    u_c = float(np.mean([_mid_range(u[idx]) for idx in visible]))
    if p.profile_fit and len(visible) == 2:
        u_fit = _profile_centre(u, v, p)
        if u_fit is not None:
            u_c = max(u_c, u_fit)
    src = np.flatnonzero(u < u_c)
    if src.size == 0:
        return None
    u_new = 2.0 * u_c - u[src]
    if len(visible) == 2:                                   # half turn about the vertical axis at the centre
        v_c = 0.5 * (_mid_range(v[left]) + _mid_range(v[right]))
        v_new = 2.0 * v_c - v[src]
    else:                                                   # mirror about the plane across the line of sight
        v_new = v[src]
    out = np.empty((3, src.size), np.float32)
    out[0] = d[0] * u_new - d[1] * v_new
    out[1] = d[1] * u_new + d[0] * v_new
    out[2] = pts_g[2, src]
    return out, src


def _amodal(bmin: np.ndarray, bmax: np.ndarray, pts_g, p: LiftingParams) -> tuple[np.ndarray, np.ndarray]:
    """Extend the box backwards (+y, away from the camera) per ``p.amodal``; see ``LiftingParams``."""
    if p.amodal in ("none", "mirror"):
        return bmin, bmax
    width, depth = bmax[0] - bmin[0], bmax[1] - bmin[1]
    if depth >= width:
        return bmin, bmax
    if p.amodal == "auto":
        horizontal = float(np.hypot((bmin[0] + bmax[0]) / 2.0, bmin[1]))
        elevation = np.degrees(np.arctan2(-bmax[2], horizontal))   # camera height above the top, as an angle
        if elevation >= p.amodal_min_elevation_deg:
            return bmin, bmax
    bmax = bmax.copy()
    bmax[1] = bmin[1] + width
    return bmin, bmax
