"""Match the node's objects to ground-truth objects by 3D center proximity (Hungarian assignment).

Used where the node's labels cannot name ground-truth objects (the ``tabletop`` detector labels clusters by
color, e.g. ``red object``): a matched pair lets the evaluation ask about the node's id and score the answer
against the ground-truth object. Centers are in the camera optical frame, metres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class Match:
    gt_id: str
    node_id: str
    distance_m: float


def match_gate(gt_size, min_gate_m: float = 0.05, size_fraction: float = 0.5) -> float:
    """Largest center distance (metres) accepted for a ground-truth object of box ``size`` (w, d, h)."""
    return max(min_gate_m, size_fraction * float(np.max(np.asarray(gt_size, dtype=np.float64))))


def match_objects(gt_objects: dict[str, dict], node_objects: dict[str, np.ndarray],
                  min_gate_m: float = 0.05, size_fraction: float = 0.5) -> list[Match]:
    """One-to-one matches minimising the total center distance, each within its object's gate.

    ``gt_objects``: GT id -> entry with ``center`` (3,) and ``size`` (3,); ``node_objects``: node id -> center.
    """
    gt_ids, node_ids = list(gt_objects), list(node_objects)
    if not gt_ids or not node_ids:
        return []
    g = np.array([gt_objects[i]["center"] for i in gt_ids], dtype=np.float64)
    n = np.array([node_objects[i] for i in node_ids], dtype=np.float64).reshape(-1, 3)
    cost = np.linalg.norm(g[:, None, :] - n[None, :, :], axis=2)
    gates = np.array([match_gate(gt_objects[i].get("size", (0, 0, 0)), min_gate_m, size_fraction)
                      for i in gt_ids])
    big = 1e6
    rows, cols = linear_sum_assignment(np.where(cost <= gates[:, None], cost, big))
    return [Match(gt_ids[r], node_ids[c], float(cost[r, c])) for r, c in zip(rows, cols)
            if cost[r, c] <= gates[r]]


def node_centers(update) -> dict[str, np.ndarray]:
    """Node id -> center (3,) of each object of one ``~/objects`` update (``node_client.ObjectsUpdate``)."""
    return {o.id: np.array([o.center.x, o.center.y, o.center.z]) for o in update.objects}
