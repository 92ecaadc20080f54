"""Ground-truth 2D detections from a simulator's instance-id image: what a good box detector would report.

Each listed instance gives the tight axis-aligned box of its visible pixels, as ``core.frame.Detection2D``
(pixels, u right, v down; a pixel's center is at its integer coordinates, so a box covering columns
``c0..c1`` spans ``c0 - 0.5 .. c1 + 0.5``). An optional seeded jitter models an imperfect detector: each
box edge moves by Gaussian noise of ``edge_sigma_px`` pixels and the score by ``score_sigma``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D


@dataclass(frozen=True)
class DetectionJitter:
    """Noise of a simulated imperfect detector: box edges (pixels, per edge, Gaussian) and score."""

    edge_sigma_px: float = 2.0       # one-sigma shift of each box edge, pixels
    score_sigma: float = 0.05        # one-sigma noise on the score (clipped to [0, 1])
    base_score: float = 0.9          # score before noise


def detections_from_mask(mask_ids: np.ndarray, ids, labels, jitter: DetectionJitter | None = None,
                         seed: int | None = 0, min_pixels: int = 1) -> list[Detection2D]:
    """One ``Detection2D`` per listed id with at least ``min_pixels`` visible pixels in ``mask_ids`` (H, W)
    integer ids (0 = none), in the order given. Without ``jitter`` the boxes are tight and the score is 1.0;
    with it, edges and scores are perturbed by a generator seeded with ``seed`` (boxes stay at least one
    pixel wide and inside the image). ``Detection2D.id`` is the instance id as a string. Raises
    ``InputError`` when ids and labels differ in length or the image is not a 2D integer image."""
    m = np.asarray(mask_ids)
    if m.ndim != 2 or m.dtype.kind not in "ui":
        raise InputError(f"instance mask: expected a (H, W) integer id image, got {m.dtype} {m.shape}")
    ids = [int(i) for i in ids]
    labels = [str(label) for label in labels]
    if len(ids) != len(labels):
        raise InputError(f"{len(ids)} ids but {len(labels)} labels")
    h, w = m.shape
    rng = np.random.default_rng(seed) if jitter is not None else None
    # bounding rectangles of every id in one pass: per-id min/max of rows and columns
    flat = m.ravel()
    nz = np.flatnonzero(flat)
    vals = flat[nz].astype(np.int64)
    rows, cols = np.divmod(nz, w)
    top = max(ids + [0]) + 1
    valid = vals < top
    vals, rows, cols = vals[valid], rows[valid], cols[valid]
    count = np.bincount(vals, minlength=top)
    big = np.iinfo(np.int64).max
    r0 = np.full(top, big)
    r1 = np.full(top, -1)
    c0 = np.full(top, big)
    c1 = np.full(top, -1)
    np.minimum.at(r0, vals, rows)
    np.maximum.at(r1, vals, rows)
    np.minimum.at(c0, vals, cols)
    np.maximum.at(c1, vals, cols)
    out = []
    for i, label in zip(ids, labels):
        if i <= 0 or count[i] < max(1, min_pixels):
            continue
        u0, v0, u1, v1 = c0[i] - 0.5, r0[i] - 0.5, c1[i] + 0.5, r1[i] + 0.5
        score = 1.0
        if jitter is not None and rng is not None:
            du0, dv0, du1, dv1 = rng.normal(0.0, jitter.edge_sigma_px, 4)
            u0, u1 = np.clip(u0 + du0, -0.5, w - 0.5), np.clip(u1 + du1, -0.5, w - 0.5)
            v0, v1 = np.clip(v0 + dv0, -0.5, h - 0.5), np.clip(v1 + dv1, -0.5, h - 0.5)
            if u1 - u0 < 1.0:
                u0, u1 = 0.5 * (u0 + u1) - 0.5, 0.5 * (u0 + u1) + 0.5
            if v1 - v0 < 1.0:
                v0, v1 = 0.5 * (v0 + v1) - 0.5, 0.5 * (v0 + v1) + 0.5
            score = float(np.clip(jitter.base_score + rng.normal(0.0, jitter.score_sigma), 0.0, 1.0))
        out.append(Detection2D.from_corners(label, score, float(u0), float(v0), float(u1), float(v1), str(i)))
    return out
