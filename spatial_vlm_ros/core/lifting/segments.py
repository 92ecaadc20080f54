"""Segment arrays: the values of all instances of a frame concatenated in instance order, with
segment offsets ``off`` ((K + 1,) ints) or sorted segment numbers ``g``; reductions and order
statistics per segment, and back-projection with the camera's cached per-pixel rays.
"""
from __future__ import annotations

import numpy as np


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


def _backproject(rx, ry, pix, z) -> np.ndarray:
    """(3, N) float32 camera-frame points of flat pixel indices ``pix`` at depths ``z`` (cached rays)."""
    pts = np.empty((3, z.size), dtype=np.float32)
    np.multiply(rx.ravel()[pix], z, out=pts[0])
    np.multiply(ry.ravel()[pix], z, out=pts[1])
    pts[2] = z
    return pts


def _seg_kth_largest(values: np.ndarray, off: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """(R, K) float64: per row of (R, N) ``values`` and segment ``k`` (``off``), its ``ks[r, k]``-th largest
    value (1 = the maximum)."""
    out = np.maximum.reduceat(values, off[:-1], axis=1).astype(np.float64)
    for r, k in zip(*np.nonzero(ks > 1)):
        seg = values[r, off[k]:off[k + 1]]
        j = seg.size - int(ks[r, k])
        out[r, k] = float(np.partition(seg, j)[j])
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
