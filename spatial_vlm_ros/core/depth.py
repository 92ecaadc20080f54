"""Depth images to metres. The unit comes from the ROS image encoding, never from a guess.

- ``16UC1`` and ``mono16``: unsigned 16-bit millimetres (RealSense, Azure Kinect, OpenNI drivers);
- ``32FC1``: 32-bit float metres (Gazebo, ZED, most simulators).
Invalid readings (0, NaN, +-inf, negative) become NaN in the float32 metre image.
"""
from __future__ import annotations

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import check_frame_arrays

#: Depth encodings accepted, with the metres per stored unit and the numpy dtype kind they must carry.
_ENCODINGS = {"16UC1": (0.001, "u2"), "mono16": (0.001, "u2"), "32FC1": (1.0, "f")}
SUPPORTED_DEPTH_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)


def depth_scale(encoding: str) -> float:
    """Metres per stored unit for ``encoding`` (0.001 for millimetre encodings, 1.0 for 32FC1)."""
    if encoding not in _ENCODINGS:
        raise InputError(f"depth image: unsupported encoding '{encoding}' "
                         f"(supported: {', '.join(SUPPORTED_DEPTH_ENCODINGS)})")
    return _ENCODINGS[encoding][0]


def decode_depth(array: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W) raw depth in ``encoding`` -> (H, W) float32 metres, NaN where invalid.

    Accepts an (H, W, 1) array too. Raises ``InputError`` for an unsupported encoding, a dtype that does not
    match the encoding (e.g. float data labelled 16UC1), or an array that is not a non-empty image.
    """
    scale = depth_scale(encoding)
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2 or a.size == 0:
        raise InputError(f"depth image: expected a non-empty (H, W) array, got shape {a.shape}")
    kind = _ENCODINGS[encoding][1]
    if kind == "u2" and not (a.dtype.kind == "u" and a.dtype.itemsize == 2):
        raise InputError(f"depth image: encoding '{encoding}' holds uint16 millimetres, got dtype {a.dtype}")
    if kind == "f" and a.dtype.kind != "f":
        raise InputError(f"depth image: encoding '{encoding}' holds float metres, got dtype {a.dtype}")
    if kind == "u2":
        metres = a.astype(np.float32) * np.float32(scale)
        metres[a == 0] = np.nan
        return metres
    metres = a.astype(np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        metres[~(np.isfinite(metres) & (metres > 0.0))] = np.nan
    return metres


def check_depth_image(depth_m, shape: tuple[int, int] | None = None) -> None:
    """Raise ``InputError`` unless ``depth_m`` is a (H, W) float array of metres (as ``decode_depth`` returns)
    of the given ``(height, width)`` (``core.frame.check_frame_arrays``'s wording)."""
    check_frame_arrays(shape, depth=depth_m)


def encode_depth_mm(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) metres (NaN invalid) -> uint16 millimetres with 0 for invalid or out of range (> 65.535 m)."""
    d = np.asarray(depth_m, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(d) & (d > 0.0) & (d * 1000.0 < 65535.5)
    out = np.zeros(d.shape, dtype=np.uint16)
    out[ok] = np.rint(d[ok] * 1000.0).astype(np.uint16)
    return out
