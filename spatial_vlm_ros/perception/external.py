"""Instances from an external segmenter: an instance-id image plus ids, labels and scores
(the ``spatial_vlm_interfaces/InstanceSegmentation`` message, or a simulator's mask)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.perception.base import Instance


@dataclass
class CroppedInstance(Instance):
    """An ``Instance`` whose ``mask`` is the tight bounding rectangle of its pixels, a (h, w) bool crop at
    ``origin`` = (row, col) of an image of ``image_shape`` = (H, W): ``core.lifting`` works on it as it is,
    without a full-size mask per instance; ``full_mask()`` builds the (H, W) mask."""

    origin: tuple[int, int] = (0, 0)
    image_shape: tuple[int, int] = (0, 0)

    def full_mask(self) -> np.ndarray:
        out = np.zeros(self.image_shape, bool)
        r, c = self.origin
        out[r:r + self.mask.shape[0], c:c + self.mask.shape[1]] = self.mask
        return out


def _checked(mask_ids: np.ndarray, ids, labels, scores, shape):
    """The (H, W) integer id image and the ids, labels and scores as lists; ``InputError`` when unusable."""
    m = np.asarray(mask_ids)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.ndim != 2:
        raise InputError(f"instance mask: expected a (H, W) id image, got shape {m.shape}")
    if m.dtype.kind not in "ui":
        raise InputError(f"instance mask: ids must be integers, got dtype {m.dtype}")
    if shape is not None and tuple(m.shape) != tuple(shape[:2]):
        raise InputError(f"instance mask is {m.shape[1]}x{m.shape[0]} but the depth image is "
                         f"{shape[1]}x{shape[0]}")
    ids = [int(i) for i in ids]
    labels = [str(label) for label in labels]
    scores = [1.0] * len(ids) if scores is None or len(scores) == 0 else [float(s) for s in scores]
    if not (len(ids) == len(labels) == len(scores)):
        raise InputError(f"instance segmentation: {len(ids)} ids, {len(labels)} labels and {len(scores)} "
                         "scores; they must have the same length")
    if any(i <= 0 for i in ids):
        raise InputError("instance segmentation: id 0 means 'no object' and ids must be positive")
    if len(set(ids)) != len(ids):
        repeated = sorted(i for i in set(ids) if ids.count(i) > 1)
        raise InputError(f"instance segmentation: repeated ids {repeated}")
    return m, ids, labels, scores


def instances_from_mask(mask_ids: np.ndarray, ids, labels, scores=None,
                        shape: tuple[int, int] | None = None) -> list[Instance]:
    """Split a (H, W) integer id image (0 = no object) into one ``Instance`` per listed id.

    ``scores`` may be None or empty (1.0 each). ``shape`` = (H, W) the image must have (the depth image's).
    Ids absent from the image are skipped. Raises ``InputError`` on a size mismatch, ids/labels/scores of
    different lengths, a non-integer image, id 0 or repeated ids.
    """
    m, ids, labels, scores = _checked(mask_ids, ids, labels, scores, shape)
    instances = []
    for i, label, score in zip(ids, labels, scores):
        mask = m == i
        if mask.any():
            instances.append(Instance(mask, label, score, i))
    return instances


def cropped_instances_from_mask(mask_ids: np.ndarray, ids, labels, scores=None,
                                shape: tuple[int, int] | None = None) -> list[CroppedInstance]:
    """As ``instances_from_mask`` (same checks and errors), but each instance is a ``CroppedInstance``: the
    id compared only inside the bounding rectangle of all labelled pixels, the mask cut to its own."""
    m, ids, labels, scores = _checked(mask_ids, ids, labels, scores, shape)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return []
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    band = m[r0:r1]
    cols = np.flatnonzero(band.any(axis=0))
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    region = band[:, c0:c1]
    instances = []
    for i, label, score in zip(ids, labels, scores):
        hit = region == i
        any_row = hit.any(axis=1)
        rr = np.flatnonzero(any_row)
        if rr.size == 0:
            continue
        sub = hit[rr[0]:rr[-1] + 1]
        cc = np.flatnonzero(sub.any(axis=0))
        crop = np.ascontiguousarray(sub[:, cc[0]:cc[-1] + 1])
        instances.append(CroppedInstance(crop, label, score, i, origin=(r0 + int(rr[0]), c0 + int(cc[0])),
                                         image_shape=tuple(m.shape)))
    return instances
