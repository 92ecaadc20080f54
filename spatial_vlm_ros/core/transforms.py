"""Rigid transforms between named frames, ROS-free: rotation quaternion ``(x, y, z, w)`` + translation, metres.

A ``RigidTransform`` with ``frame_id`` A and ``child_frame_id`` B maps a point given in B to A:
``p_A = R @ p_B + t``, as a ``geometry_msgs/TransformStamped`` from ``tf2``'s ``lookup_transform(A, B, t)``
does. Its rotation's columns are B's axes in A coordinates, its translation B's origin in A.

``OrientedBox``: a box with its center and the orientation of its axes (width x, depth y, height z) in some
frame. The boxes of the scene memory are axis-aligned in the gravity frame (``core.gravity_frame``), so in the
camera optical frame their orientation is that of the gravity frame: ``gravity_quaternion``.

Quaternions are returned normalised with ``w >= 0``; rotations are computed with
``scipy.spatial.transform.Rotation``. Invalid input raises ``InputError``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from .errors import InputError
from .gravity_frame import GravityFrame

IDENTITY_XYZW = (0.0, 0.0, 0.0, 1.0)
GRAVITY_FRAME_SUFFIX = "_gravity"          # the gravity frame of camera frame F is named F + this suffix


def _vector(values, shape: tuple[int, ...], what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.shape != shape:
        raise InputError(f"{what}: expected shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{what}: contains NaN or infinite values")
    return a


def normalize_quaternion(q_xyzw) -> np.ndarray:
    """(4,) unit quaternion ``(x, y, z, w)`` with ``w >= 0`` (the same rotation). Raises ``InputError`` for a
    zero, non-finite or wrongly shaped one."""
    q = _vector(q_xyzw, (4,), "quaternion (x, y, z, w)")
    n = float(np.linalg.norm(q))
    if n < 1e-9:
        raise InputError("quaternion (x, y, z, w) is zero")
    q = q / n
    return -q if q[3] < 0.0 else q


def quaternion_to_matrix(q_xyzw) -> np.ndarray:
    """(3, 3) rotation matrix of the quaternion ``(x, y, z, w)`` (normalised first)."""
    return Rotation.from_quat(normalize_quaternion(q_xyzw)).as_matrix()


def matrix_to_quaternion(rotation) -> np.ndarray:
    """(4,) unit quaternion ``(x, y, z, w)``, ``w >= 0``, of a (3, 3) rotation matrix. Raises ``InputError``
    for a matrix that is not a rotation (not orthonormal within 1e-6, or a reflection)."""
    m = _vector(rotation, (3, 3), "rotation matrix")
    if not np.allclose(m @ m.T, np.eye(3), atol=1e-6) or np.linalg.det(m) < 0.0:
        raise InputError("rotation matrix is not a proper rotation (orthonormal, determinant +1)")
    return normalize_quaternion(Rotation.from_matrix(m).as_quat())


def multiply_quaternions(a_xyzw, b_xyzw) -> np.ndarray:
    """Quaternion of the rotation ``a`` after ``b`` (matrix ``R_a @ R_b``), ``(x, y, z, w)``, ``w >= 0``."""
    r = Rotation.from_quat(normalize_quaternion(a_xyzw)) * Rotation.from_quat(normalize_quaternion(b_xyzw))
    return normalize_quaternion(r.as_quat())


@dataclass(frozen=True)
class RigidTransform:
    """``p_frame = R @ p_child + t`` (metres); see the module docstring. Frame names may be empty (unnamed)."""

    rotation_xyzw: np.ndarray = field(default_factory=lambda: np.array(IDENTITY_XYZW))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    frame_id: str = ""                 # the frame points are mapped to (tf2's target frame)
    child_frame_id: str = ""           # the frame points are given in (tf2's source frame)

    def __post_init__(self):
        object.__setattr__(self, "rotation_xyzw", normalize_quaternion(self.rotation_xyzw))
        object.__setattr__(self, "translation", _vector(self.translation, (3,), "translation"))

    @classmethod
    def from_matrix(cls, matrix, frame_id: str = "", child_frame_id: str = "") -> RigidTransform:
        """From a (4, 4) homogeneous matrix (bottom row 0 0 0 1) or a (3, 3) rotation (no translation)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape == (3, 3):
            return cls(matrix_to_quaternion(m), np.zeros(3), frame_id, child_frame_id)
        m = _vector(m, (4, 4), "homogeneous transform")
        if not np.allclose(m[3], (0.0, 0.0, 0.0, 1.0)):
            raise InputError("homogeneous transform: the bottom row must be 0 0 0 1")
        return cls(matrix_to_quaternion(m[:3, :3]), m[:3, 3], frame_id, child_frame_id)

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) rotation matrix R (columns: the child frame's axes in ``frame_id`` coordinates)."""
        return quaternion_to_matrix(self.rotation_xyzw)

    @property
    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.rotation
        m[:3, 3] = self.translation
        return m

    def inverse(self) -> RigidTransform:
        """The transform child <- frame (names swapped)."""
        r_inv = self.rotation.T
        return RigidTransform(matrix_to_quaternion(r_inv), -r_inv @ self.translation, self.child_frame_id,
                              self.frame_id)

    def compose(self, other: RigidTransform) -> RigidTransform:
        """``self`` after ``other``: a point of ``other.child_frame_id`` to ``self.frame_id``. Raises
        ``InputError`` when both name the frame between them and the names differ."""
        if self.child_frame_id and other.frame_id and self.child_frame_id != other.frame_id:
            raise InputError(f"cannot compose {self.frame_id or '?'} <- {self.child_frame_id} with "
                             f"{other.frame_id} <- {other.child_frame_id or '?'}: the frames between differ")
        return RigidTransform(multiply_quaternions(self.rotation_xyzw, other.rotation_xyzw),
                              self.rotation @ other.translation + self.translation,
                              self.frame_id, other.child_frame_id)

    def apply(self, points) -> np.ndarray:
        """(N, 3) or (3,) points of the child frame -> ``frame_id`` (metres)."""
        p = np.asarray(points, dtype=np.float64)
        if p.shape[-1:] != (3,) or p.ndim > 2:
            raise InputError(f"points: expected shape (3,) or (N, 3), got {p.shape}")
        return p @ self.rotation.T + self.translation

    def rotate(self, vectors) -> np.ndarray:
        """(N, 3) or (3,) directions of the child frame -> ``frame_id`` (no translation)."""
        v = np.asarray(vectors, dtype=np.float64)
        if v.shape[-1:] != (3,) or v.ndim > 2:
            raise InputError(f"vectors: expected shape (3,) or (N, 3), got {v.shape}")
        return v @ self.rotation.T


@dataclass(frozen=True)
class OrientedBox:
    """A box: center (3,) metres and axis orientation ``(x, y, z, w)`` in ``frame_id``, full size (3,) along
    its own axes (width x, depth y, height z), metres."""

    center: np.ndarray
    orientation_xyzw: np.ndarray
    size: np.ndarray
    frame_id: str = ""

    def __post_init__(self):
        object.__setattr__(self, "center", _vector(self.center, (3,), "box center"))
        object.__setattr__(self, "orientation_xyzw", normalize_quaternion(self.orientation_xyzw))
        object.__setattr__(self, "size", _vector(self.size, (3,), "box size"))

    def transformed(self, transform: RigidTransform) -> OrientedBox:
        """The same box in ``transform.frame_id`` (``transform`` maps this box's frame there). Raises
        ``InputError`` when the transform's child frame is named and is not this box's frame."""
        if transform.child_frame_id and self.frame_id and transform.child_frame_id != self.frame_id:
            raise InputError(f"box is in '{self.frame_id}', the transform maps '{transform.child_frame_id}'")
        return OrientedBox(transform.apply(self.center),
                           multiply_quaternions(transform.rotation_xyzw, self.orientation_xyzw),
                           self.size, transform.frame_id or self.frame_id)

    def corners(self) -> np.ndarray:
        """(8, 3) corners in ``frame_id``, metres."""
        signs = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
        return (signs * self.size) @ quaternion_to_matrix(self.orientation_xyzw).T + self.center


# ------------------------------------------------------------------------------------ the gravity frame
def gravity_quaternion(gravity: GravityFrame) -> np.ndarray:
    """Orientation ``(x, y, z, w)`` of the gravity frame's axes in the camera optical frame: the rotation of
    the transform camera optical <- gravity (``R.T`` for ``p_g = R @ p_c``). Also the orientation of every
    scene-memory box in the camera optical frame."""
    return gravity.orientation_xyzw.copy()


def gravity_transform(gravity: GravityFrame, camera_frame: str) -> RigidTransform:
    """camera optical frame <- gravity frame (same origin): ``frame_id`` = ``camera_frame``, child
    ``camera_frame + "_gravity"``. What is broadcast on /tf for RViz and planners."""
    return RigidTransform(gravity_quaternion(gravity), np.zeros(3), camera_frame,
                          camera_frame + GRAVITY_FRAME_SUFFIX)


def box_in_camera(center_c, size, gravity: GravityFrame, camera_frame: str = "") -> OrientedBox:
    """A scene-memory box (center in the camera optical frame, size along the gravity axes) as an
    ``OrientedBox`` in the camera optical frame."""
    return OrientedBox(np.asarray(center_c, dtype=np.float64), gravity_quaternion(gravity),
                       np.asarray(size, dtype=np.float64), camera_frame)


def up_in_child(transform: RigidTransform) -> np.ndarray:
    """(3,) unit +z of ``transform.frame_id`` in child (e.g. camera optical) coordinates: the up direction
    of a z-up frame such as ``base_link`` or ``map`` (REP 103), for ``gravity.mode: tf``."""
    return transform.rotation.T @ np.array([0.0, 0.0, 1.0])
