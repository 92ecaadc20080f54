"""Step 4: the noise-aware box in the gravity frame (z up), metres: per axis the k-th extreme after
the tails, detached strays and a few sigmas of depth noise, with a vertical trim that grows with
the number of points on the extreme.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.lifting.params import LiftingParams
from spatial_vlm_ros.core.lifting.segments import _offsets, _seg_kth_largest, _seg_sum


def _detached_counts(pts_g, g, off, gap: np.ndarray, max_count: np.ndarray, sub: int = 8) -> np.ndarray:
    """(3, K, 2) per gravity axis and instance: how many of the largest / smallest coordinates (at most
    ``max_count``) are cut off from the rest by an empty stretch at least ``gap`` wide: a few points of
    another surface (a mask spilling onto an object behind, a flying pixel mixed with a nearer occluder's
    range) that passed the depth tests. A surface sampled by pixels leaves no such gaps: neighbouring
    pixels are millimetres apart. The stretch is found as ``sub`` empty bins in a row of a histogram with
    bins ``gap / sub`` wide, so every empty stretch of ``(1 + 1 / sub) * gap`` or more is found (one bin
    ``gap`` wide misses stretches up to twice that, depending on where the bins fall). One
    ``np.bincount`` for all axes and instances (a row of bins per axis and instance), O(N)."""
    K = off.size - 1
    lo = np.minimum.reduceat(pts_g, off[:-1], axis=1)                     # (3, K)
    idx = ((pts_g - lo.take(g, axis=1)) * (sub / gap).astype(np.float32)[g]).astype(np.intp)
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
    # a row's first and last bins hold its extremes, so no run of empty bins crosses rows
    bins = np.arange(counts.size)
    filled = counts > 0
    run_down = bins - np.maximum.accumulate(np.where(filled, bins, -1))   # empty bins ending here
    run_up = np.minimum.accumulate(np.where(filled, bins, counts.size)[::-1])[::-1] - bins   # ... starting
    limit = np.repeat(max_count, 3)[row]
    out = np.zeros((3 * K, 2), np.intp)
    for j, (cum_side, run) in enumerate(((above, run_down), (below, run_up))):
        cand = np.flatnonzero((run >= sub) & (cum_side <= limit))
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
    footprint per side at depth ``z_typical`` (pixel centers lie inside the silhouette).

    Per axis and side: the ``k``-th extreme of the coordinates moved inwards by ``c`` sigmas, ``k`` leaving
    out the ``box_percentiles`` tail and ``_detached_counts`` strays, ``c = noise_trim_sigmas``. On the
    vertical axis ``c`` grows with the number ``m`` of pixels lying on the extreme (within two sigmas of a
    first estimate; ``weights``: the pixels each point stands for): the largest of ``m`` noisy points on a
    flat face exceeds it by about ``Phi^-1(1 - 0.5 / m)`` sigmas (3.3 for a thousand points on a box top seen
    from above, 1.6 for ten on a rounded top); a fixed trim leaves thin objects too tall. The horizontal
    extremes are silhouettes with few points there, whose depths are already biased inwards (a ray just
    inside a silhouette meets the surface in front of it), so the fixed trim serves them better (figures:
    ``docs/measured_defaults.md``)."""
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
