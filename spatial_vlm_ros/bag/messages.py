"""Camera messages as rosbags dataclasses <-> numpy, and the standard topic names.

Images: ``rgb8`` color, ``16UC1`` depth in millimetres (0 = no reading), instance masks ``mono8`` when every
id fits in 8 bits, else ``16UC1`` (0 = no object). Little-endian, rows unpadded (``step = width * bytes per
pixel``); decoding honours ``step`` and ``is_bigendian`` of messages recorded elsewhere. 2D boxes
(``spatial_vlm_interfaces/Detections2D``) <-> ``core.frame.Detection2D``, pixels (center and full size).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_vlm_ros.bag.typestore import typestore
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D


@dataclass(frozen=True)
class CameraTopics:
    """Topic names of one RGB-D camera (RealSense-style defaults)."""

    color: str = "/camera/color/image_raw"
    depth: str = "/camera/aligned_depth_to_color/image_raw"
    camera_info: str = "/camera/color/camera_info"
    instances: str = "/camera/instances"
    detections: str = "/camera/detections"

    def all(self) -> tuple[str, str, str, str, str]:
        return (self.color, self.depth, self.camera_info, self.instances, self.detections)


IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
INSTANCES = "spatial_vlm_interfaces/msg/InstanceSegmentation"
DETECTIONS = "spatial_vlm_interfaces/msg/Detections2D"

_ENCODINGS = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
              "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
              "32FC1": (np.float32, 1)}


def _types():
    return typestore().types


def header(stamp_ns: int, frame_id: str):
    t = _types()
    stamp = t["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 10**9), nanosec=int(stamp_ns % 10**9))
    return t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def stamp_ns_of(msg) -> int:
    """Header stamp of a message, nanoseconds."""
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


def image_msg(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    """``sensor_msgs/Image`` (rosbags dataclass) holding ``pixels`` unchanged."""
    if encoding not in _ENCODINGS:
        raise InputError(f"unsupported image encoding '{encoding}'")
    dtype, channels = _ENCODINGS[encoding]
    arr = np.ascontiguousarray(pixels, dtype=np.dtype(dtype).newbyteorder("<"))
    if arr.ndim != (2 if channels == 1 else 3) or (channels > 1 and arr.shape[2] != channels):
        raise InputError(f"{encoding} image needs shape (H, W{'' if channels == 1 else f', {channels}'}), "
                         f"got {arr.shape}")
    h, w = arr.shape[:2]
    return _types()[IMAGE](header=header(stamp_ns, frame_id), height=h, width=w, encoding=encoding,
                           is_bigendian=0, step=w * channels * arr.itemsize,
                           data=np.frombuffer(arr.tobytes(), dtype=np.uint8))


def image_array(msg) -> np.ndarray:
    """Pixels of a ``sensor_msgs/Image`` as a native-endian array (H, W) or (H, W, C), values unchanged."""
    if msg.encoding not in _ENCODINGS:
        raise InputError(f"unsupported image encoding '{msg.encoding}'")
    dtype, channels = _ENCODINGS[msg.encoding]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row = msg.width * channels * dt.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.step < row or data.size < msg.step * msg.height:
        raise InputError(f"image {msg.width}x{msg.height} {msg.encoding}: step {msg.step} / {data.size} bytes "
                         "do not fit")
    rows = data[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row]
    arr = np.ascontiguousarray(rows).view(dt).astype(np.dtype(dtype), copy=False)
    return arr.reshape(msg.height, msg.width, channels) if channels > 1 else arr.reshape(msg.height, msg.width)


def camera_info_msg(info: dict, stamp_ns: int):
    """``sensor_msgs/CameraInfo`` from its fields (``width``, ``height``, ``k``, ``d``, ``distortion_model``,
    optional ``r``, ``p``, ``frame_id``)."""
    t = _types()
    k = np.asarray(info["k"], dtype=np.float64).reshape(9)
    p = np.asarray(info.get("p", np.hstack([k.reshape(3, 3), np.zeros((3, 1))]).ravel()), dtype=np.float64)
    roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return t[CAMERA_INFO](header=header(stamp_ns, info.get("frame_id", "")), height=int(info["height"]),
                          width=int(info["width"]), distortion_model=info.get("distortion_model", "plumb_bob"),
                          d=np.asarray(info.get("d", []), dtype=np.float64), k=k,
                          r=np.asarray(info.get("r", np.eye(3).ravel()), dtype=np.float64).reshape(9),
                          p=p.reshape(12), binning_x=0, binning_y=0, roi=roi)


def camera_info_dict(msg) -> dict:
    return {"width": int(msg.width), "height": int(msg.height), "distortion_model": msg.distortion_model,
            "d": np.asarray(msg.d, dtype=float).tolist(), "k": np.asarray(msg.k, dtype=float).tolist(),
            "r": np.asarray(msg.r, dtype=float).tolist(), "p": np.asarray(msg.p, dtype=float).tolist(),
            "frame_id": msg.header.frame_id}


def instances_msg(mask: np.ndarray, ids, labels, scores, stamp_ns: int, frame_id: str):
    """``spatial_vlm_interfaces/InstanceSegmentation`` (mono8 mask when ids fit in 8 bits, else 16UC1)."""
    ids = [int(i) for i in ids]
    if len(ids) != len(labels) or len(ids) != len(scores):
        raise InputError(f"instances: {len(ids)} ids, {len(labels)} labels, {len(scores)} scores")
    wide = bool(ids) and max(ids) > 255 or int(np.max(mask, initial=0)) > 255
    image = image_msg(mask.astype(np.uint16 if wide else np.uint8), "16UC1" if wide else "mono8", stamp_ns,
                      frame_id)
    return _types()[INSTANCES](header=header(stamp_ns, frame_id), mask=image,
                               ids=np.asarray(ids, dtype=np.uint16), labels=[str(x) for x in labels],
                               scores=np.asarray(scores, dtype=np.float32))


def detections_msg(detections, stamp_ns: int, frame_id: str):
    """``spatial_vlm_interfaces/Detections2D`` (rosbags dataclass) from ``Detection2D`` boxes (pixels)."""
    t = _types()
    item = t["spatial_vlm_interfaces/msg/Detection2D"]
    return t[DETECTIONS](header=header(stamp_ns, frame_id), detections=[
        item(label=str(d.label), score=float(d.score), id=str(d.id), center_x=float(d.center_x),
             center_y=float(d.center_y), size_x=float(d.size_x), size_y=float(d.size_y)) for d in detections])


def detections_list(msg) -> list[Detection2D]:
    """Boxes of a ``spatial_vlm_interfaces/Detections2D`` (rosbags dataclass) as ``Detection2D``s."""
    return [Detection2D(label=str(d.label), score=float(d.score), center_x=float(d.center_x),
                        center_y=float(d.center_y), size_x=float(d.size_x), size_y=float(d.size_y), id=str(d.id))
            for d in msg.detections]
