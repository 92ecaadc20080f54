"""Instances from an external segmenter: an instance-id image plus ids, labels and scores
(the ``spatial_vlm_interfaces/InstanceSegmentation`` message, or a simulator's mask)."""
from __future__ import annotations

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.perception.base import Instance


def instances_from_mask(mask_ids: np.ndarray, ids, labels, scores=None,
                        shape: tuple[int, int] | None = None) -> list[Instance]:
    """Split a (H, W) integer id image (0 = no object) into one ``Instance`` per listed id.

    ``scores`` may be None or empty (1.0 each). ``shape`` = (H, W) the image must have (the depth image's).
    Ids absent from the image are skipped. Raises ``InputError`` on a size mismatch, ids/labels/scores of
    different lengths, a non-integer image, id 0 or repeated ids.
    """
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
    instances = []
    for i, label, score in zip(ids, labels, scores):
        mask = m == i
        if mask.any():
            instances.append(Instance(mask, label, score, i))
    return instances
