"""Write simulated scenes as a rosbag2 bag (MCAP by default, or sqlite3) with a ground-truth sidecar.

Per frame, all stamped with the frame's header stamp (also used as the bag's receive time):
``/camera/color/image_raw`` (rgb8), ``/camera/aligned_depth_to_color/image_raw`` (16UC1, mm),
``/camera/color/camera_info``, ``/camera/instances`` (``spatial_vlm_interfaces/InstanceSegmentation``) and
``/camera/detections`` (``spatial_vlm_interfaces/Detections2D``: the tight box of each object's visible
pixels, from the ground-truth masks by ``sim.detections.detections_from_mask``, score 1.0, id = instance id;
optionally jittered like an imperfect detector), so a bag drives ``detector: external`` and ``boxes``.
Message definitions travel in the bag (MCAP schemas), so Foxglove opens it; ``ros2 bag info`` reads the
metadata (rosbag2 metadata version 8: Jazzy and later; on Humble run ``ros2 bag reindex`` first).

The ground truth goes to ``<bag>/ground_truth.json`` (docs/ground_truth_format.md), keyed by frame stamp.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer

from spatial_vlm_ros.bag.messages import (
    CAMERA_INFO,
    DETECTIONS,
    IMAGE,
    INSTANCES,
    CameraTopics,
    camera_info_msg,
    detections_msg,
    image_msg,
    instances_msg,
)
from spatial_vlm_ros.bag.typestore import typestore
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.sim.ground_truth_file import save_ground_truth

GROUND_TRUTH_FILE = "ground_truth.json"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def ground_truth_path(bag_path: str | Path) -> Path:
    """Where the sidecar of ``bag_path`` lives (inside the bag folder)."""
    return Path(bag_path) / GROUND_TRUTH_FILE


def write_bag(scenes: Iterable, bag_path: str | Path, storage: str = "mcap", topics: CameraTopics | None = None,
              ground_truth: bool = True, overwrite: bool = False, version: int = 8,
              progress: bool = False, total: int | None = None, detections: bool = True,
              detection_jitter=None) -> Path:
    """Write ``scenes`` (``sim.dataset.SceneRecord``s, in stamp order) to the bag folder ``bag_path``.

    ``detections``: also write the 2D-box topic; ``detection_jitter`` (``sim.detections.DetectionJitter``):
    perturb those boxes and scores, seeded by the frame's index in the bag (reproducible).

    Returns the bag path. Raises InputError for an unknown storage, an existing bag (unless ``overwrite``) or
    frames out of stamp order.
    """
    if storage not in STORAGES:
        raise InputError(f"unknown storage '{storage}' (choose {' or '.join(STORAGES)})")
    topics = topics or CameraTopics()
    path = _fresh_bag_folder(Path(bag_path), overwrite)
    store = typestore()
    frames_gt: list[dict] = []
    last = -1
    with Writer(path, version=version, storage_plugin=STORAGES[storage]) as writer:
        conns = _add_connections(writer, topics, store, detections)
        index = 0
        for record in _with_progress(scenes, progress, total):
            for f in record.frames:
                if f.stamp_ns <= last:
                    raise InputError(f"frame stamps must increase: {f.stamp_ns} after {last}")
                last = f.stamp_ns
                for key, msgtype, msg in _frame_messages(f, index, detections, detection_jitter):
                    writer.write(conns[key], f.stamp_ns, store.serialize_cdr(msg, msgtype))
                index += 1
                if f.ground_truth:
                    frames_gt.append(f.ground_truth)
    if ground_truth and frames_gt:
        save_ground_truth(ground_truth_path(path), frames_gt)
    return path


def _fresh_bag_folder(path: Path, overwrite: bool) -> Path:
    """``path``, removed first when it exists and ``overwrite`` (else InputError), with its parent created."""
    if path.exists():
        if not overwrite:
            raise InputError(f"{path} exists; choose another path or pass overwrite=True")
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _with_progress(scenes: Iterable, progress: bool, total: int | None) -> Iterable:
    if not progress:
        return scenes
    from tqdm import tqdm
    return tqdm(scenes, desc="writing bag", unit="scene",
                total=total if total is not None else (len(scenes) if hasattr(scenes, "__len__") else None))


def _add_connections(writer: Writer, topics: CameraTopics, store, detections: bool) -> dict:
    """Slot -> the bag connection of its topic."""
    conns = {
        "color": writer.add_connection(topics.color, IMAGE, typestore=store),
        "depth": writer.add_connection(topics.depth, IMAGE, typestore=store),
        "info": writer.add_connection(topics.camera_info, CAMERA_INFO, typestore=store),
        "instances": writer.add_connection(topics.instances, INSTANCES, typestore=store),
    }
    if detections:
        conns["detections"] = writer.add_connection(topics.detections, DETECTIONS, typestore=store)
    return conns


def _frame_messages(f, index: int, detections: bool, detection_jitter) -> tuple:
    """(slot, message type, message) of one ``sim.dataset.Frame``, all stamped with its stamp; ``index``:
    the frame's index in the bag (seeds the detection jitter)."""
    fid = f.frame_id
    msgs: tuple = (
        ("color", IMAGE, image_msg(f.rgb, "rgb8", f.stamp_ns, fid)),
        ("depth", IMAGE, image_msg(f.depth_mm, "16UC1", f.stamp_ns, fid)),
        ("info", CAMERA_INFO, camera_info_msg(f.camera_info, f.stamp_ns)),
        ("instances", INSTANCES, instances_msg(f.mask, f.ids, f.labels, [1.0] * len(f.ids), f.stamp_ns, fid)),
    )
    if detections:
        from spatial_vlm_ros.sim.detections import detections_from_mask
        boxes = detections_from_mask(f.mask, f.ids, f.labels, jitter=detection_jitter, seed=index)
        msgs += (("detections", DETECTIONS, detections_msg(boxes, f.stamp_ns, fid)),)
    return msgs


def write_dataset_bag(dataset_dir: str | Path, bag_path: str | Path, storage: str = "mcap",
                      overwrite: bool = False, progress: bool = True) -> Path:
    """Convert a dataset folder written by ``sim.dataset.generate_scenes`` into a bag + sidecar."""
    import json

    from spatial_vlm_ros.sim.dataset import iter_dataset
    meta = Path(dataset_dir) / "dataset.json"
    total = len(json.loads(meta.read_text()).get("scenes", [])) if meta.is_file() else None
    return write_bag(iter_dataset(dataset_dir), bag_path, storage=storage, overwrite=overwrite, progress=progress,
                     total=total)
