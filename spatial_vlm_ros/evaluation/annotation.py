"""Annotated frames for the report: a frame's color image from the bag with the ground-truth boxes projected
into it, the node's object centers and one question with the node's answer and the truth.

Boxes are in the ground truth's gravity frame (metres); ``rotation`` maps camera to gravity (p_g = R p_c).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spatial_vlm_ros.bag.messages import CameraTopics
from spatial_vlm_ros.bag.reader import BagReader
from spatial_vlm_ros.core.relations import RELATIONS

from .matching import node_centers
from .records import QueryRecord
from .report import FrameAnnotation
from .stepped_player import header_stamp_ns
from .truth_queries import askable_objects


def _project(K: np.ndarray, points_c: np.ndarray) -> np.ndarray:
    """Pixel (u, v) of camera-frame points (N, 3) through intrinsics ``K``; NaN for points not in front."""
    p = np.asarray(points_c, dtype=np.float64).reshape(-1, 3)
    z = np.where(p[:, 2] > 1e-6, p[:, 2], np.nan)
    return np.stack([K[0, 0] * p[:, 0] / z + K[0, 2], K[1, 1] * p[:, 1] / z + K[1, 2]], axis=1)


def _gt_box_2d(obj: dict, rotation: np.ndarray, K: np.ndarray, w: int, h: int):
    """Pixel box (u0, v0, u1, v1) around a ground-truth box's projected corners, clipped to the w x h image;
    None when a corner is behind the camera or the clipped box is empty."""
    lo, hi = np.asarray(obj["box_min"], float), np.asarray(obj["box_max"], float)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    uv = _project(K, corners @ rotation)          # gravity -> camera: p_c = R^T p_g
    if not np.isfinite(uv).all():
        return None
    u0, v0 = np.clip(uv.min(axis=0), 0, [w - 1, h - 1])
    u1, v1 = np.clip(uv.max(axis=0), 0, [w - 1, h - 1])
    return (int(u0), int(v0), int(u1), int(v1)) if u1 > u0 and v1 > v0 else None


def _question_lines(records: list[QueryRecord]) -> list[str]:
    """One relation (preferably a true one of the common predicates) and one distance: question, the node's
    answer, the truth."""
    lines = []
    rel = next((r for r in records if r.kind == "relation" and not r.ambiguous and r.relation_or_quantity
                in ("left_of", "right_of", "behind", "in_front_of", "on_top_of", "taller_than") and r.truth), None)
    rel = rel or next((r for r in records if r.kind == "relation" and not r.ambiguous), None)
    def truth_names(r: QueryRecord) -> str:
        if r.subject_id.startswith(r.subject.replace(" ", "_")):
            return ""
        return f" ({r.subject} = {r.subject_id}, {r.reference} = {r.reference_id})"
    if rel is not None:
        phrase = RELATIONS[rel.name].phrase if rel.name in RELATIONS else rel.name
        lines += [f"Q: Is the {rel.subject} {phrase} the {rel.reference}?",
                  f"A: {rel.answer or rel.message}", f"truth: {'yes' if rel.truth else 'no'}{truth_names(rel)}"]
    qty = next((r for r in records if r.kind == "quantity" and r.name == "distance"), None)
    if qty is not None:
        lines += [f"Q: How far apart are the {qty.subject} and the {qty.reference}?",
                  f"A: {qty.answer or qty.message}", f"truth: {truth_length(float(qty.truth))}{truth_names(qty)}"]
    return lines


def truth_length(metres: float) -> str:
    """A true length in the units the answers use (cm below 1 m), one decimal finer than they round."""
    return f"{100 * metres:.1f} cm" if abs(metres) < 1.0 else f"{metres:.2f} m"


def annotate_frame(bag_path: Path, topics: CameraTopics, gt_frame: dict, update, records: list[QueryRecord],
                   title: str) -> FrameAnnotation | None:
    """The frame's color image with ground-truth boxes, the node's centers and one question + answer."""
    rgb, info = _bag_frame(bag_path, topics, int(gt_frame["stamp_ns"]))
    if rgb is None:
        return None
    info = info or gt_frame.get("camera_info")
    if info is None:
        return None
    K = np.asarray(info["k"], dtype=np.float64).reshape(3, 3)
    rotation = np.asarray(gt_frame["gravity"]["rotation"], dtype=np.float64)
    h, w = rgb.shape[:2]
    boxes = []
    for obj in askable_objects(gt_frame).values():
        box = _gt_box_2d(obj, rotation, K, w, h)
        if box is not None:
            boxes.append((obj["label"], box))
    points = []
    if update is not None:
        for oid, c in node_centers(update).items():
            u, v = _project(K, c)[0]
            points.append((oid, (float(u), float(v))))
    return FrameAnnotation(rgb, boxes, points, _question_lines(records), title)


def _bag_frame(bag_path: Path, topics: CameraTopics, stamp: int) -> tuple[np.ndarray | None, dict | None]:
    """The color image (RGB, uint8) and camera info (``camera_info_dict``) stamped ``stamp`` (ns) in the bag;
    None for either that the bag does not have."""
    from spatial_vlm_ros.bag.messages import camera_info_dict, image_array
    from spatial_vlm_ros.bag.typestore import typestore
    store = typestore()
    rgb, info = None, None
    with BagReader(bag_path, topics) as reader:
        wanted = [t for t in (topics.color, topics.camera_info) if t in reader.topics]
        for m in reader.raw_messages(wanted, start_ns=stamp - 50_000_000, stop_ns=stamp + 50_000_000):
            if header_stamp_ns(m.data) != stamp:
                continue
            msg = store.deserialize_cdr(m.data, m.msgtype)
            if m.topic == topics.color:
                img = image_array(msg)
                rgb = img[..., ::-1].copy() if msg.encoding.startswith("bgr") else img[..., :3].copy()
            else:
                info = camera_info_dict(msg)
    return rgb, info
