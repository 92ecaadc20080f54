"""ROS message <-> numpy / core types, for the node's two ends.

- ``sensor_msgs/Image`` <-> numpy for rgb8, bgr8, mono8, mono16, 16UC1 and 32FC1, honouring ``step`` (row
  padding) and ``is_bigendian``. Pixel values are returned unchanged (depth units are decoded by
  ``core.depth.decode_depth`` from the encoding: 16UC1/mono16 millimetres, 32FC1 metres).
- ``sensor_msgs/CameraInfo`` -> ``core.camera.CameraModel``.
- ``spatial_vlm_interfaces/InstanceSegmentation`` -> ``spatial_vlm_ros.pipeline.Segmentation`` (ids mask + labels).
- ``spatial_vlm_interfaces/Detections2D`` and ``vision_msgs/Detection2DArray`` -> ``core.frame.Detection2D``
  boxes (pixels: center and full size). The vision_msgs conversion is duck-typed (attribute access only), so
  it needs no vision_msgs installation; ``VisionDetection2DArray`` is its message class, or None where
  vision_msgs is not installed.
- ``core.observation.TrackedObject`` -> ``core.transforms.OrientedBox`` (``object_box``) and
  ``spatial_vlm_interfaces/SpatialObject``: center and box orientation in the camera optical frame, or in a
  target frame given the camera -> target transform; metres.
- stamps: ``builtin_interfaces/Time`` <-> float seconds.

Every malformed message raises ``core.errors.InputError`` with a message naming the problem.
"""
from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image

from spatial_vlm_interfaces.msg import Detection2D as Detection2DMsg
from spatial_vlm_interfaces.msg import Detections2D, InstanceSegmentation, SpatialObject
from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D, Segmentation
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.observation import TrackedObject
from spatial_vlm_ros.core.transforms import OrientedBox, RigidTransform, box_in_camera

try:  # real ROS installs (apt ros-$DISTRO-vision-msgs); not available as a PyPI wheel
    from vision_msgs.msg import Detection2DArray as VisionDetection2DArray
except ImportError:
    VisionDetection2DArray = None

# encoding -> (numpy dtype of one channel, channels)
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),          # ZED cameras publish color as bgra8
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")
MASK_ENCODINGS = ("mono8", "16UC1", "mono16")


# ----------------------------------------------------------------------------------------------- stamps
def stamp_to_seconds(stamp: Time) -> float:
    """``builtin_interfaces/Time`` -> seconds (float)."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def seconds_to_stamp(seconds: float) -> Time:
    """Seconds (float, >= 0) -> ``builtin_interfaces/Time``."""
    ns = int(round(max(float(seconds), 0.0) * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


# ----------------------------------------------------------------------------------------------- images
def image_to_array(msg: Image, name: str = "image") -> np.ndarray:
    """Pixels of a ``sensor_msgs/Image`` as a native-endian array, (H, W) or (H, W, C), unchanged values.

    Zero-copy where the data is already native-endian and unpadded. Raises ``InputError`` for an unsupported
    encoding, an empty size, a step shorter than a row, or data that is not exactly ``step * height`` bytes
    (a longer buffer means the header does not describe the data, e.g. a wrong height: never guessed).
    """
    encoding = msg.encoding
    if encoding not in IMAGE_ENCODINGS:
        raise InputError(f"{name}: unsupported encoding '{encoding}' "
                         f"(supported: {', '.join(IMAGE_ENCODINGS)})")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise InputError(f"{name}: empty image ({width}x{height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise InputError(f"{name}: step {step} is smaller than width*bytes_per_pixel = {row_bytes}")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:        # shorter: truncated; longer: width/height/step do not describe it
        raise InputError(f"{name}: data holds {data.size} bytes, expected step*height = {step * height} "
                         f"({width}x{height}, step {step})")
    rows = data.reshape(height, step)[:, :row_bytes]
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    pixels = np.ascontiguousarray(rows).view(wire)
    if not wire.isnative:
        pixels = pixels.astype(dtype)                 # swap to native byte order
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def array_to_image(pixels: np.ndarray, encoding: str, stamp: Time | None = None, frame_id: str = "") -> Image:
    """numpy array -> ``sensor_msgs/Image`` (little-endian, unpadded). Used by tests, benchmarks, the sim."""
    if encoding not in IMAGE_ENCODINGS:
        raise InputError(f"unsupported encoding '{encoding}'")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    pixels = np.ascontiguousarray(pixels, dtype=dtype.newbyteorder("<"))
    expected_ndim = 2 if channels == 1 else 3
    if pixels.ndim != expected_ndim or (channels > 1 and pixels.shape[2] != channels):
        raise InputError(f"array of shape {pixels.shape} does not fit encoding '{encoding}'")
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.shape[1] * channels * dtype.itemsize)
    msg.data = array.array("B", pixels.tobytes())
    return msg


def color_to_rgb(msg: Image) -> np.ndarray:
    """Color image (rgb8, bgr8, rgba8 or bgra8; alpha dropped) -> (H, W, 3) uint8 RGB."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise InputError(f"color image: unsupported encoding '{msg.encoding}' "
                         f"(supported: {', '.join(COLOR_ENCODINGS)})")
    pixels = image_to_array(msg, "color image")[:, :, :3]
    return pixels[:, :, ::-1] if msg.encoding.startswith("bgr") else pixels


# ----------------------------------------------------------------------------------------------- camera
def camera_model_from_info(msg: CameraInfo) -> CameraModel:
    """``sensor_msgs/CameraInfo`` -> validated ``CameraModel`` (raises ``InputError`` on zero/NaN intrinsics)."""
    camera = CameraModel.from_camera_info_fields(
        int(msg.width), int(msg.height), [float(v) for v in msg.k], [float(v) for v in msg.d],
        msg.distortion_model, msg.header.frame_id)
    camera.validate()
    return camera


def camera_info_from_model(camera: CameraModel, stamp: Time | None = None) -> CameraInfo:
    """``CameraModel`` -> ``sensor_msgs/CameraInfo`` (P = [K | 0], R = identity)."""
    msg = CameraInfo()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = camera.frame_id
    msg.width, msg.height = int(camera.width), int(camera.height)
    msg.distortion_model = camera.distortion_model
    msg.d = [float(v) for v in np.asarray(camera.D, dtype=np.float64).ravel()]
    K = np.asarray(camera.K, dtype=np.float64)
    msg.k = [float(v) for v in K.ravel()]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(v) for v in np.hstack([K, np.zeros((3, 1))]).ravel()]
    return msg


# ----------------------------------------------------------------------------------------- segmentation
def segmentation_from_msg(msg: InstanceSegmentation) -> Segmentation:
    """``InstanceSegmentation`` -> ``Segmentation`` (id mask (H, W) + ids, labels, scores).

    Checks the mask encoding and that ids/labels/scores have equal lengths (an empty ``scores`` means 1.0
    for every id). Mask size against the color image is checked by the pipeline.
    """
    if msg.mask.encoding not in MASK_ENCODINGS:
        raise InputError(f"instance mask: unsupported encoding '{msg.mask.encoding}' "
                         f"(supported: {', '.join(MASK_ENCODINGS)})")
    mask = image_to_array(msg.mask, "instance mask")
    ids = [int(i) for i in msg.ids]
    labels = [str(label) for label in msg.labels]
    scores = [float(s) for s in msg.scores] if len(msg.scores) else [1.0] * len(ids)
    if not (len(ids) == len(labels) == len(scores)):
        raise InputError(f"instance segmentation: {len(ids)} ids, {len(labels)} labels and {len(scores)} "
                         "scores; they must have the same length")
    return Segmentation(mask_ids=mask, ids=ids, labels=labels, scores=scores)


def segmentation_to_msg(mask_ids: np.ndarray, ids, labels, scores=None, stamp: Time | None = None,
                        frame_id: str = "") -> InstanceSegmentation:
    """Id mask + ids/labels/scores -> ``InstanceSegmentation`` (mono8 if ids < 256, else 16UC1)."""
    ids = [int(i) for i in ids]
    encoding = "mono8" if (not ids or max(ids) < 256) and int(np.max(mask_ids, initial=0)) < 256 else "16UC1"
    msg = InstanceSegmentation()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.mask = array_to_image(mask_ids, encoding, stamp, frame_id)
    msg.ids = ids
    msg.labels = [str(label) for label in labels]
    msg.scores = [float(s) for s in (scores if scores is not None else [1.0] * len(ids))]
    return msg


# ----------------------------------------------------------------------------------------- 2D detections
def detections_from_msg(msg: Detections2D) -> list[Detection2D]:
    """``spatial_vlm_interfaces/Detections2D`` -> ``Detection2D`` boxes (pixels), in message order.

    Values are passed on unchanged (NaN/negative scores and boxes outside the image are the detector's to
    skip and report), so an empty message is no objects, not an error."""
    return [Detection2D(label=str(d.label), score=float(d.score), center_x=float(d.center_x),
                        center_y=float(d.center_y), size_x=float(d.size_x), size_y=float(d.size_y),
                        id=str(d.id))
            for d in msg.detections]


def detections_to_msg(detections, stamp: Time | None = None, frame_id: str = "") -> Detections2D:
    """``Detection2D`` boxes -> ``spatial_vlm_interfaces/Detections2D`` (tests, the sim, bag replay)."""
    msg = Detections2D()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.detections = [Detection2DMsg(label=str(d.label), score=float(d.score), id=str(d.id),
                                     center_x=float(d.center_x), center_y=float(d.center_y),
                                     size_x=float(d.size_x), size_y=float(d.size_y))
                      for d in detections]
    return msg


def detections_from_vision_msgs(msg) -> list[Detection2D]:
    """``vision_msgs/Detection2DArray`` -> ``Detection2D`` boxes (pixels), duck-typed.

    Label and score from the first hypothesis, ``results[0].hypothesis.class_id`` / ``.score`` (vision_msgs
    4, Humble and later; the older ``results[0].id`` / ``.score`` is accepted too); box center from
    ``bbox.center.position.x/.y`` (Humble and later) or ``bbox.center.x/.y`` (older ``Pose2D``), full size from
    ``bbox.size_x/.size_y``; tracker id from ``id`` ("" if absent). A detection without results gets the
    label ``object`` and score 1.0 (a class-agnostic detector). Raises ``InputError`` for a detection whose
    box fields are missing."""
    out = []
    for i, det in enumerate(msg.detections):
        try:
            center = det.bbox.center
            position = getattr(center, "position", center)
            cx, cy = float(position.x), float(position.y)
            sx, sy = float(det.bbox.size_x), float(det.bbox.size_y)
        except (AttributeError, TypeError, ValueError) as err:
            raise InputError(f"vision_msgs detection {i}: unreadable bounding box ({err})") from None
        label, score = "object", 1.0
        results = list(getattr(det, "results", []) or [])
        if results:
            first = results[0]
            hypothesis = getattr(first, "hypothesis", first)
            label = str(getattr(hypothesis, "class_id", getattr(hypothesis, "id", "")))
            score = float(getattr(hypothesis, "score", float("nan")))
        out.append(Detection2D(label=label, score=score, center_x=cx, center_y=cy, size_x=sx, size_y=sy,
                               id=str(getattr(det, "id", "") or "")))
    return out


# ---------------------------------------------------------------------------------------------- objects
def object_box(obj: TrackedObject, gravity: GravityFrame, to_frame: RigidTransform | None = None) -> OrientedBox:
    """The object's gravity-aligned box as an ``OrientedBox``: in the camera optical frame (``gravity``: the
    frame of the scene the object belongs to), or with ``to_frame`` (camera optical -> target) in the target
    frame."""
    box = box_in_camera(obj.center, obj.size, gravity)
    return box if to_frame is None else box.transformed(to_frame)


def spatial_object_msg(obj: TrackedObject, gravity: GravityFrame, to_frame: RigidTransform | None = None
                       ) -> SpatialObject:
    """``TrackedObject`` -> ``SpatialObject``: box center and orientation in the camera optical frame, or with
    ``to_frame`` (camera optical -> target) in the target frame; size (w, d, h) along the box axes, metres."""
    box = object_box(obj, gravity, to_frame)
    msg = SpatialObject()
    msg.id = obj.id
    msg.label = obj.label
    msg.score = float(obj.score)
    msg.center.x, msg.center.y, msg.center.z = (float(v) for v in box.center)
    msg.size.x, msg.size.y, msg.size.z = (float(v) for v in obj.size)
    o = msg.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in box.orientation_xyzw)
    msg.observations = int(max(obj.observations, 0))
    msg.last_seen = seconds_to_stamp(obj.last_seen)
    return msg
