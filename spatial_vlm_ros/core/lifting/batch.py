"""The batch driver ``lift_instances``: frame checks, step 1 per instance, steps 2-5 once for all the
instances of a frame (``_lift_batch``), and the observations (points, color, 2D box).
"""
from __future__ import annotations

import numpy as np

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.colors import color_name
from spatial_vlm_ros.core.frame import check_crop_fits, check_frame_arrays, check_image_size, check_valid_depth
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.lifting.amodal import _amodal, _with_completion
from spatial_vlm_ros.core.lifting.box import _robust_boxes
from spatial_vlm_ros.core.lifting.depth_band import _depth_medians, _largest_depth_clusters
from spatial_vlm_ros.core.lifting.params import LiftingParams
from spatial_vlm_ros.core.lifting.pixels import _select_pixels, _tight_crop
from spatial_vlm_ros.core.lifting.points import _above_support, _noise_scales, _with_silhouette_fill
from spatial_vlm_ros.core.lifting.segments import (
    _backproject,
    _image_flat,
    _offsets,
    _seg_offsets,
    _seg_strided,
    _seg_sum,
)
from spatial_vlm_ros.core.lifting.support import _snap_to_support
from spatial_vlm_ros.core.observation import Observation


def _check_frame(depth_m, camera: CameraModel, instances, rgb) -> None:
    """``InputError`` unless the depth (float metres), the color image and every instance mask (or crop, with
    an ``origin``) fit the camera, and some depth is valid (``core.frame``'s checks)."""
    check_frame_arrays(camera, rgb=rgb, depth=depth_m)
    for inst in instances:
        which = f"of instance {inst.instance_id} '{inst.label}'"
        origin = getattr(inst, "origin", None)
        if origin is not None:                           # a crop at (row, col): it must lie inside the image
            check_crop_fits(f"mask crop {which}", origin, inst.mask.shape, depth_m.shape)
        else:
            check_image_size(f"mask {which}", inst.mask.shape, depth_m.shape)
    if instances:
        check_valid_depth(depth_m)


def lift_instances(depth_m: np.ndarray, camera: CameraModel, instances, gravity: GravityFrame,
                   params: LiftingParams | None = None, stamp: float = 0.0, rgb: np.ndarray | None = None
                   ) -> tuple[list[Observation], list[str]]:
    """Lift each instance to an ``Observation``; instances with too little valid depth are skipped.

    ``depth_m`` (H, W) float metres with NaN (or <= 0) invalid; ``instances``: ``perception.base.Instance``
    list with (H, W) bool masks, or crops of them (an instance with an ``origin`` = (row, col): its ``mask``
    is the tight bounding rectangle of the instance at that pixel, ``perception.external.CroppedInstance``);
    ``rgb`` optional (H, W, 3) uint8 for the color. Returns the observations (in instance order) and one
    warning string per skipped instance. Raises ``InputError`` for frame-level problems: depth not a float
    image, depth/camera, color or mask size mismatch, no valid depth at all.

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
    for item, sel in zip(items, _select_pixels(depth_m, items, p, camera.fx)):
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
    centers = gravity.to_camera((bmin + bmax) / 2.0)

    # 5. Observations: points (subsampled), color, 2D box.
    source, src_off = (all_g, off_a) if p.amodal_points else (pts, off)
    points = _subsampled_points(source, src_off, gravity if p.amodal_points else None, p.max_points)
    colors = _median_colors(rgb, pix, off) if rgb is not None else [(0, 0, 0)] * K
    for k, (index, s) in enumerate(picked):
        color = colors[k]
        name = color_name(color) if rgb is not None else ""
        x, y, w, h = s.bbox
        inst = s.inst
        yield index, Observation(label=inst.label, score=inst.score, center=centers[k].copy(),
                                 size=bmax[k] - bmin[k], box_min=bmin[k].copy(), box_max=bmax[k].copy(),
                                 points=points[k], n_pixels=int(n_pix[k]), instance_id=inst.instance_id,
                                 color_rgb=color, color_name=name, bbox_2d=(x, y, x + w - 1, y + h - 1),
                                 stamp=float(stamp))


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
    the color of <= 512 of its pixels, evenly spread (``colors.median_color``: an actual value per
    channel)."""
    n = np.diff(off)
    step = -(-n // 512)
    px = rgb.reshape(-1, 3).take(pix.take(_seg_strided(off, step)), axis=0)
    out = []
    for block in np.split(px, np.cumsum(-(-n // step))[:-1]):
        med = np.partition(block, block.shape[0] // 2, axis=0)[block.shape[0] // 2]
        out.append((int(med[0]), int(med[1]), int(med[2])))
    return out
