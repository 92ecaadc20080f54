"""Step 4: amodal completion of the unseen backs (see ``LiftingParams``): occlusion boundaries of the
silhouette, the half-turn completion (``"auto"``) and the ``"symmetric"`` rule. Gravity frame
(z up, y forward horizontal), metres.
"""
from __future__ import annotations

import numpy as np

from spatial_vlm_ros.core.lifting.params import LiftingParams
from spatial_vlm_ros.core.lifting.segments import _seg_mid_ranges, _seg_offsets, _seg_strided


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


def _completion(pts_g, g, off, occluded: np.ndarray, tie_m: np.ndarray, p: LiftingParams):
    """Amodal completion of the unseen backs (see ``LiftingParams``): (3, M) gravity-frame points, the
    indices (into ``pts_g``) of the points they were made from and their instances, or None.

    Per instance: the horizontal line of sight ``d`` to the object gives along-sight ``u`` and across-sight
    ``v`` coordinates (at most ``2 * amodal_max_points`` points, evenly thinned). Each left/right extreme is
    the ``amodal_band`` fraction of points furthest out, plus every point within ``tie_m`` (a pixel
    footprint) of them, so a box side seen edge-on comes whole; it is located at the midpoint of their 10-90 %
    range along the line of sight (such a side spans the depth). The center is midway between the two
    extremes; points in front of it (smaller ``u``, at most ``amodal_max_points``) are turned half a turn
    about the vertical axis through it. With one side an occlusion boundary, ``u`` of the center comes from
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
