"""Step 2: outliers along the optical axis. A median/MAD band per instance, then the largest depth
cluster (one histogram for all instances). Depths in metres along the optical axis.
"""
from __future__ import annotations

import numpy as np

from spatial_vlm_ros.core.lifting.segments import _offsets, _seg_offsets, _subsample_step


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
