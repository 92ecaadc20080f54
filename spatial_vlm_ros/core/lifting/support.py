"""Step 5: box bottoms on the surfaces beneath them. Bottoms just above the support plane snap onto
it; hidden bottoms rest on the support or another object's top; a bottom seen with a gap under it
stays. Gravity frame (z up), metres.
"""
from __future__ import annotations

import numpy as np

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.lifting.params import LiftingParams
from spatial_vlm_ros.core.lifting.segments import _backproject


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
        rounded_reach = np.maximum(p.rest_snap_m, p.rest_snap_rounded_fraction * (bmax[:, 2] - bmin[:, 2]))
        # bottoms beyond rest_snap_m but within the rounded reach need the slope too
        lift = bmin[:, 2] - support
        ask = seen | ((lift > p.rest_snap_m) & (lift <= rounded_reach))
        slope = np.full(len(bmin), np.inf)
        if ask.any():
            slope = _undercut_slopes(pts_g, off, bmin[:, 2], bmax[:, 2], 2.0 / camera.fx, only=ask)
        seen &= np.abs(slope) < p.seen_max_undercut       # ... and the lowest visible surface is upright
        rounded = np.isfinite(slope) & (slope >= p.seen_max_undercut)
        _rest_on_supports(bmin, bmax, float(support), p, ~seen, np.where(rounded, rounded_reach, p.rest_snap_m))


def _rest_on_supports(bmin: np.ndarray, bmax: np.ndarray, support: float, p: LiftingParams,
                      hidden: np.ndarray, reach: np.ndarray) -> None:
    """Objects whose bottom is hidden rest on something: such a box bottom (``hidden``: (K,) bool) up to
    ``reach`` (K,) metres (``rest_snap_m``, more for a rounded bottom: ``_snap_to_support``) above
    the highest surface beneath it (the support plane, or the top of another object
    whose footprint holds this object's center and which is not above this object's bottom by more than
    ``snap_to_support_m``) is put on that surface, in place on the (K, 3) corners. An object's bottom is
    often unseen: hidden by objects in front, or by the object itself (a sphere's or a rounded bottom curves
    away under its silhouette), and points just above the support are dropped as table. A bottom with a gap
    seen under it (``_bottom_seen``: an object held or hanging above the table) stays where it is (figures:
    ``docs/measured_defaults.md``)."""
    bottom, top = bmin[:, 2].copy(), bmax[:, 2]
    center = 0.5 * (bmin[:, :2] + bmax[:, :2])
    inside = np.all((center[:, None] >= bmin[None, :, :2]) & (center[:, None] <= bmax[None, :, :2]), axis=2)
    beneath = (top[None, :] > support) & (top[None, :] <= bottom[:, None] + p.snap_to_support_m) & inside
    np.fill_diagonal(beneath, False)
    target = np.max(np.where(beneath, top[None, :], support), axis=1, initial=support)
    rest = hidden & (bottom - target > 0.0) & (bottom - target <= reach)
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


def _undercut_slopes(pts_g, off, bottom: np.ndarray, top: np.ndarray, bin_rad: float, band_m: float = 0.03,
                     only: np.ndarray | None = None) -> np.ndarray:
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
    instance segments; ``only`` (K,) bool: the instances to compute (the others stay ``inf``)."""
    K = off.size - 1
    out = np.full(K, np.inf)
    for k in range(K) if only is None else np.flatnonzero(only):
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
