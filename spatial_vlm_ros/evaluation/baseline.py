"""The naive baseline every report shows beside the package: median point per mask, camera up.

For each ground-truth object, the valid depth pixels of its instance mask are back-projected with the
intrinsics (camera optical frame: x right, y down, z forward, metres). Its center is the per-axis median of
those points; "up" is the camera's -y axis (no gravity estimate, no support plane); its box spans the 2nd to
98th percentile of the points along the axes of that camera-level frame (``GravityFrame.camera_default``), so
the box is of the visible surface only (no amodal completion, no filtering, no temporal fusion). Relations
and quantities are then decided by the core's own definitions (``core.relations.evaluate``,
``core.quantities.measure``) on those objects. The baseline gives no uncertainty: its records carry no
confidence or sigma. Each frame is answered alone (no memory across the frames of a scene).

Inputs are ``DepthFrame``s: a frame's ground truth (docs/ground_truth_format.md; objects are tied to the mask
by ``instance_id``), depth in metres, the instance mask and the camera model. ``DepthFrame.from_dataset``
builds one from a ``sim.dataset.Frame``, ``frames_from_bag`` from a bag's frames.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatial_vlm_ros.core import quantities as Q
from spatial_vlm_ros.core import relations as R
from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.depth import decode_depth
from spatial_vlm_ros.core.errors import InputError, QueryError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.observation import TrackedObject
from spatial_vlm_ros.core.scene import Scene

from .records import RELATION, FrameStats, QueryRecord
from .truth_queries import askable_objects, frame_queries, label_names

NAME = "naive baseline"
#: percentiles of the points along each camera-level axis that bound an object's box
BOX_PERCENTILES = (2.0, 98.0)
#: points kept per object for the closest-surface gap (``gap``, ``next_to``), evenly strided
MAX_POINTS = 4000
NO_DEPTH = "baseline: no valid depth pixel in the object's mask"
NO_MASK = "baseline: the ground truth gives no instance_id for the object"


def camera_from_info(info: dict) -> CameraModel:
    """``CameraModel`` from CameraInfo fields (``width``, ``height``, ``k``, ``d``, ``distortion_model``)."""
    try:
        return CameraModel.from_camera_info_fields(int(info["width"]), int(info["height"]), info["k"],
                                                   info.get("d", []), info.get("distortion_model", "plumb_bob"),
                                                   info.get("frame_id", ""))
    except KeyError as err:
        raise InputError(f"baseline: camera_info lacks {err}") from None


@dataclass
class DepthFrame:
    """One frame the baseline answers: ground truth, depth (H, W metres, NaN or <= 0 invalid), instance
    mask (H, W ids, 0 = none) and camera model."""

    ground_truth: dict
    depth_m: np.ndarray
    mask: np.ndarray
    camera: CameraModel

    def __post_init__(self):
        if self.depth_m.shape != self.mask.shape:
            raise InputError(f"baseline: depth is {self.depth_m.shape} but the mask is {self.mask.shape}")

    @classmethod
    def from_dataset(cls, f) -> DepthFrame:
        """From a ``sim.dataset.Frame`` (16UC1 depth in millimetres)."""
        return cls(f.ground_truth, decode_depth(f.depth_mm, "16UC1"), f.mask, camera_from_info(f.camera_info))


def frames_from_bag(bag_path, ground_truth: dict[int, dict], stamps_ns: Iterable[int]) -> list[DepthFrame]:
    """``DepthFrame``s of ``bag_path`` at ``stamps_ns`` (color header stamps with ground truth); frames
    without depth or instance masks in the bag are left out."""
    from spatial_vlm_ros.bag.reader import read_frames
    wanted = set(int(s) for s in stamps_ns)
    out = []
    for bf in read_frames(Path(bag_path)):
        if bf.stamp_ns not in wanted or bf.stamp_ns not in ground_truth:
            continue
        if bf.depth is None or bf.mask is None:
            continue
        info = bf.camera_info or ground_truth[bf.stamp_ns].get("camera_info")
        if info is None:
            continue
        out.append(DepthFrame(ground_truth[bf.stamp_ns], bf.depth_m, bf.mask, camera_from_info(info)))
    return out


def baseline_object(object_id: str, label: str, points_c: np.ndarray,
                    gravity: GravityFrame | None = None) -> TrackedObject | None:
    """The baseline's object from its (N, 3) camera-frame points: median center, percentile box in the
    camera-level frame; None without points."""
    pts = np.asarray(points_c, dtype=np.float64).reshape(-1, 3)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) == 0:
        return None
    gravity = gravity or GravityFrame.camera_default()
    center = np.median(pts, axis=0)
    lo, hi = np.percentile(gravity.to_gravity(pts), BOX_PERCENTILES, axis=0)
    kept = pts[:: max(1, int(np.ceil(len(pts) / MAX_POINTS)))]
    return TrackedObject(object_id, label, 1.0, center, hi - lo, lo, hi, kept, n_pixels=len(pts))


def frame_objects(frame: DepthFrame) -> tuple[Scene, dict[str, str]]:
    """The baseline's scene of one frame (objects named by ground-truth id) and, per visible object it could
    not build, the reason."""
    gravity = GravityFrame.camera_default()
    objects, missing = [], {}
    for oid, e in askable_objects(frame.ground_truth).items():
        if e.get("instance_id") is None:
            missing[oid] = NO_MASK
            continue
        pts = frame.camera.backproject_mask(frame.depth_m, frame.mask == int(e["instance_id"]))
        obj = baseline_object(oid, e.get("label", oid), pts, gravity)
        if obj is None:
            missing[oid] = NO_DEPTH
        else:
            objects.append(obj)
    stamp = int(frame.ground_truth.get("stamp_ns", 0)) * 1e-9
    return Scene(tuple(objects), gravity, stamp), missing


def _answer(r: QueryRecord, scene: Scene, missing: dict[str, str], noise: DepthNoiseModel) -> None:
    gone = [oid for oid in (r.subject_id, r.reference_id) if oid and oid in missing]
    if gone:
        r.success, r.predicted, r.message = False, None, missing[gone[0]] + f": {gone[0]}"
        return
    a = scene.by_id(r.subject_id)
    b = scene.by_id(r.reference_id) if r.reference_id else None
    try:
        if r.kind == RELATION:
            result = R.evaluate(r.relation_or_quantity, a, b, scene, noise)
            r.predicted, r.message = bool(result.holds), result.explanation
        else:
            result = Q.measure(r.relation_or_quantity, a, b, scene, noise)
            r.predicted, r.message = float(result.value_m), result.explanation
        r.success = True
    except QueryError as err:
        r.success, r.predicted, r.message = False, None, f"baseline: {err}"


def evaluate_baseline(frames: Iterable[DepthFrame], unique_labels: bool = False,
                      relations: set[str] | None = None, quantities: set[str] | None = None) -> list[QueryRecord]:
    """Records of every ground-truth relation and quantity of ``frames`` about visible objects, answered by
    the baseline (objects it could not build count as failed). ``unique_labels``: ask only about objects
    whose label is unique in the frame, as ``benchmarks/accuracy_offline.py`` does."""
    noise = DepthNoiseModel()           # enters only the definitions' tolerances (on_top_of's contact slack)
    records: list[QueryRecord] = []
    for frame in frames:
        visible = askable_objects(frame.ground_truth)
        names = label_names(visible) if unique_labels else {oid: oid for oid in visible}
        recs, _ = frame_queries(frame.ground_truth, names, NAME, relations, quantities)
        scene, missing = frame_objects(frame)
        for r in recs:
            _answer(r, scene, missing, noise)
        records += recs
    return records


def baseline_for_run(bag_path, records: list[QueryRecord], ground_truth: dict[int, dict]):
    """The baseline's ``report.RunResult`` on the frames a run scored (the stamps of ``records``), read from
    ``bag_path``; None when the bag has no instance masks or depth at those frames."""
    from .report import RunResult
    from .scoring import summarize
    keys = np.array(sorted(ground_truth), dtype=np.int64)
    if keys.size == 0:
        return None
    stamps = set()
    for s in {r.frame_stamp for r in records}:
        i = int(np.argmin(np.abs(keys - int(round(s * 1e9)))))
        if abs(int(keys[i]) - s * 1e9) < 1e4:
            stamps.add(int(keys[i]))
    frames = frames_from_bag(bag_path, ground_truth, stamps)
    if not frames:
        return None
    recs = evaluate_baseline(frames)
    summary = summarize(recs, FrameStats())
    failed = Counter(r.message.rsplit(":", 1)[0] for r in recs if not r.success)
    notes = [f"{NAME}: per object the median of its mask's back-projected depth pixels, up = camera -y, box "
             f"from the {BOX_PERCENTILES[0]:g}-{BOX_PERCENTILES[1]:g}th percentiles; the core's definitions; "
             f"no uncertainty; frames: {len(frames)} (those the package was scored on)"]
    notes += [f"baseline failures: {n} ({why})" for why, n in failed.most_common()]
    return RunResult(NAME, summary, recs, notes)
