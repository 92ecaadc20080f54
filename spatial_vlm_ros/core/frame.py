"""One synchronised RGB-D (or RGB-only) frame as numpy arrays: the pipeline's input, built by the ROS layer
or a bag reader; and the one check of a frame's array shapes against its ``camera_info``
(``check_frame_arrays``), used by the pipeline, the lifting and the gravity estimate.

Depth stays raw (its unit follows ``depth_encoding``: 16UC1/mono16 millimetres, 32FC1 metres); the camera
optical frame is x right, y down, z forward. Pixel coordinates: u right, v down, origin at the
top-left pixel's center as in ``CameraModel``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spatial_vlm_ros.core.errors import InputError

if TYPE_CHECKING:                     # camera.py imports this module's checks
    from spatial_vlm_ros.core.camera import CameraModel


@dataclass
class Segmentation:
    """Instance masks from an external detector: an id per pixel (0 = none) and one label/score per id."""

    mask_ids: np.ndarray                 # (H, W) unsigned ints, same size as the color image
    ids: list[int]
    labels: list[str]
    scores: list[float]


@dataclass(frozen=True)
class Detection2D:
    """One 2D detection from any detector (the ``spatial_vlm_interfaces/Detection2D`` message, a
    ``vision_msgs/Detection2D``, or a built-in detector): label, score, tracker id ("" if none) and an
    axis-aligned pixel box given as center and full size (as vision_msgs' BoundingBox2D), pixels."""

    label: str
    score: float
    center_x: float
    center_y: float
    size_x: float
    size_y: float
    id: str = ""

    def corners(self) -> tuple[float, float, float, float]:
        """``(u_min, v_min, u_max, v_max)`` in pixels (continuous, not clipped to the image)."""
        hx, hy = 0.5 * self.size_x, 0.5 * self.size_y
        return self.center_x - hx, self.center_y - hy, self.center_x + hx, self.center_y + hy

    @classmethod
    def from_corners(cls, label: str, score: float, u_min: float, v_min: float, u_max: float, v_max: float,
                     id: str = "") -> Detection2D:
        """Build from pixel corners ``(u_min, v_min, u_max, v_max)``."""
        return cls(label, float(score), 0.5 * (u_min + u_max), 0.5 * (v_min + v_max),
                   float(u_max - u_min), float(v_max - v_min), id)


@dataclass
class Frame:
    """One synchronised RGB-D frame. ``depth`` is raw: its unit comes from ``depth_encoding``."""

    rgb: np.ndarray                      # (H, W, 3) uint8, RGB order
    depth: np.ndarray | None             # (H, W) raw depth (16UC1/mono16 millimetres, 32FC1 metres);
                                         # None for an RGB-only camera (``depth_source: model``)
    depth_encoding: str
    camera: CameraModel
    stamp: float = 0.0                   # seconds
    segmentation: Segmentation | None = None
    detections: list[Detection2D] | None = None   # 2D boxes from an external detector (``detector: boxes``)


def _size(shape: tuple[int, ...]) -> str:
    """``"WxH"`` of an image shape ``(H, W)``."""
    return f"{shape[1]}x{shape[0]}"


def check_image_size(name: str, shape: tuple[int, ...], expected: tuple[int, int], reference: str = "camera_info"
                     ) -> None:
    """Raise ``InputError`` "<name>: expected <W>x<H> (<reference>), got <w>x<h>" unless ``shape`` is the
    ``expected`` ``(height, width)`` in pixels (an array of another rank: "got shape (...)")."""
    shape, expected = tuple(int(n) for n in shape), (int(expected[0]), int(expected[1]))
    if shape != expected:
        got = _size(shape) if len(shape) == 2 else f"shape {shape}"
        raise InputError(f"{name}: expected {_size(expected)} ({reference}), got {got}")


def check_crop_fits(name: str, origin: tuple[int, int], shape: tuple[int, ...], image: tuple[int, int]) -> None:
    """Raise ``InputError`` unless a crop of ``shape`` ``(h, w)`` whose first pixel is image pixel ``origin``
    ``(row, column)`` lies inside an image of ``(height, width)`` ``image`` (pixels)."""
    (r, c), (h, w), (H, W) = origin, shape[:2], image
    if not (r >= 0 and c >= 0 and r + h <= H and c + w <= W):
        raise InputError(f"{name}: expected a crop inside the {W}x{H} image (camera_info), got {w}x{h} at row "
                         f"{r}, column {c}")


def check_valid_depth(depth_m: np.ndarray) -> None:
    """Raise ``InputError`` unless some pixel of the (H, W) metre image ``depth_m`` holds depth (> 0)."""
    with np.errstate(invalid="ignore"):
        if not np.any(depth_m > 0.0):
            raise InputError("depth image has no valid pixels (every reading zero, negative, NaN or infinite)")


def check_frame_arrays(camera: CameraModel | tuple[int, int] | None, rgb: np.ndarray | None = None,
                       depth: np.ndarray | None = None, mask: np.ndarray | None = None, *,
                       raw_depth: bool = False, mask_name: str = "mask") -> None:
    """Raise ``InputError`` unless the given arrays of one frame fit the camera's image size.

    ``camera``: its ``CameraModel`` (the size from camera_info) or ``(height, width)`` in pixels; None checks
    the arrays' layout only. ``rgb``: (H, W, 3) color; ``depth``: (H, W) float metres as
    ``core.depth.decode_depth`` returns them, or with ``raw_depth`` any (H, W) array of raw depth (a ROS
    image's data, unit from its encoding); ``mask``: an (H, W) mask named ``mask_name`` in the message.
    Checked in that order; every message says what was expected and what came:
    "<array>: expected <W>x<H> (camera_info), got <w>x<h>".
    """
    hw = None if camera is None else (camera if isinstance(camera, tuple) else camera.shape)
    if rgb is not None:
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(f"color image: expected an (H, W, 3) array, got {_shape_text(rgb)}")
        if hw is not None:
            check_image_size("color image", rgb.shape[:2], hw)
    if depth is not None:
        if not isinstance(depth, np.ndarray) or depth.ndim != 2:
            raise InputError(f"depth image: expected an (H, W) array{'' if raw_depth else ' of metres'}, got "
                             f"{_shape_text(depth)}")
        if not raw_depth and depth.dtype.kind != "f":
            raise InputError(f"depth image: expected float metres (decode it with core.depth.decode_depth), "
                             f"got {depth.dtype}")
        if hw is not None:
            check_image_size("depth image", depth.shape, hw, "camera_info" if rgb is None else
                             "camera_info; depth must be aligned to the color image")
    if mask is not None and hw is not None:
        check_image_size(mask_name, np.shape(mask), hw)


def _shape_text(array) -> str:
    """``"shape (...)"`` of an array, or the type name of something that is not one."""
    shape = getattr(array, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else type(array).__name__
