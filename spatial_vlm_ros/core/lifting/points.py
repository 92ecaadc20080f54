"""Step 3: the back-projected points. Points on the support plane dropped, silhouette pixels without
depth filled from their row, and the depth noise measured on the points against the model's.
Camera optical frame (x right, y down, z forward) and gravity frame (z up), metres.
"""
from __future__ import annotations

import numpy as np

from spatial_vlm_ros.core.lifting.params import LiftingParams
from spatial_vlm_ros.core.lifting.segments import _backproject, _image_flat, _seg_offsets, _subsample_step


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
    tell (its spread on rendered scenes: ``docs/measured_defaults.md``)."""
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
