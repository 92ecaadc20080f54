"""Rigid transforms, oriented boxes and the gravity frame's quaternion (core.transforms), without ROS."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.transforms import (
    OrientedBox,
    RigidTransform,
    box_in_camera,
    gravity_quaternion,
    gravity_transform,
    matrix_to_quaternion,
    multiply_quaternions,
    normalize_quaternion,
    quaternion_to_matrix,
    up_in_child,
)

RNG = np.random.default_rng(3)
LEVEL_CAMERA_XYZW = (-0.5, 0.5, -0.5, 0.5)      # optical frame of a level camera looking along world +x


def _random_transform(frame_id="", child=""):
    return RigidTransform(Rotation.random(random_state=RNG.integers(1 << 30)).as_quat(), RNG.normal(size=3),
                          frame_id, child)


def test_quaternion_matrix_round_trip_and_sign():
    for _ in range(20):
        q = normalize_quaternion(RNG.normal(size=4))
        assert q[3] >= 0.0 and np.isclose(np.linalg.norm(q), 1.0)
        np.testing.assert_allclose(matrix_to_quaternion(quaternion_to_matrix(q)), q, atol=1e-12)
    np.testing.assert_allclose(normalize_quaternion([0, 0, 0, -2.0]), [0, 0, 0, 1.0])
    # 90 deg about z: x -> y
    m = quaternion_to_matrix([0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)])
    np.testing.assert_allclose(m @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)


def test_multiply_is_matrix_product():
    a, b = Rotation.random(2, random_state=5).as_quat()
    np.testing.assert_allclose(quaternion_to_matrix(multiply_quaternions(a, b)),
                               quaternion_to_matrix(a) @ quaternion_to_matrix(b), atol=1e-12)


def test_apply_compose_inverse_agree_with_matrices():
    a, b = _random_transform("world", "base"), _random_transform("base", "camera")
    pts = RNG.normal(size=(7, 3))
    homo = np.hstack([pts, np.ones((7, 1))])
    np.testing.assert_allclose(a.apply(pts), (homo @ a.matrix.T)[:, :3], atol=1e-12)
    ab = a.compose(b)
    assert (ab.frame_id, ab.child_frame_id) == ("world", "camera")
    np.testing.assert_allclose(ab.apply(pts), a.apply(b.apply(pts)), atol=1e-12)
    np.testing.assert_allclose(ab.matrix, a.matrix @ b.matrix, atol=1e-12)
    inv = ab.inverse()
    assert (inv.frame_id, inv.child_frame_id) == ("camera", "world")
    np.testing.assert_allclose(inv.apply(ab.apply(pts)), pts, atol=1e-12)
    np.testing.assert_allclose(ab.rotate(pts[0]), ab.apply(pts[0]) - ab.apply(np.zeros(3)), atol=1e-12)
    back = RigidTransform.from_matrix(ab.matrix, "world", "camera")
    np.testing.assert_allclose(back.apply(pts), ab.apply(pts), atol=1e-12)


def test_compose_refuses_mismatched_frames_and_bad_input():
    with pytest.raises(InputError, match="frames between differ"):
        _random_transform("world", "base").compose(_random_transform("odom", "camera"))
    with pytest.raises(InputError, match="zero"):
        RigidTransform([0.0, 0.0, 0.0, 0.0])
    with pytest.raises(InputError, match="NaN"):
        RigidTransform(translation=[0.0, np.nan, 0.0])
    with pytest.raises(InputError, match="proper rotation"):
        matrix_to_quaternion(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(InputError, match="bottom row"):
        RigidTransform.from_matrix(np.ones((4, 4)))
    with pytest.raises(InputError, match="shape"):
        RigidTransform().apply(np.zeros((2, 4)))


def test_oriented_box_transforms_like_its_corners():
    box = OrientedBox([0.1, 0.2, 1.0], Rotation.random(random_state=9).as_quat(), [0.3, 0.2, 0.1], "camera")
    t = _random_transform("base", "camera")
    moved = box.transformed(t)
    assert moved.frame_id == "base"
    np.testing.assert_allclose(moved.size, box.size)
    np.testing.assert_allclose(moved.corners(), t.apply(box.corners()), atol=1e-12)
    with pytest.raises(InputError, match="box is in"):
        box.transformed(_random_transform("base", "other"))


def test_gravity_quaternion_maps_gravity_axes_into_the_camera_frame():
    up_c = np.array([0.1, -0.9, -0.3])
    gravity = GravityFrame.from_up(up_c)
    q = gravity_quaternion(gravity)
    # the gravity frame's z axis is up, expressed in camera coordinates
    np.testing.assert_allclose(quaternion_to_matrix(q) @ [0, 0, 1.0], up_c / np.linalg.norm(up_c), atol=1e-12)
    # computed once per frame object and shared read-only; what callers get is their own copy
    assert gravity.orientation_xyzw is gravity.orientation_xyzw and not gravity.orientation_xyzw.flags.writeable
    q[:] = 0.0
    np.testing.assert_array_equal(gravity_quaternion(gravity), gravity.orientation_xyzw)
    assert np.linalg.norm(gravity.orientation_xyzw) == pytest.approx(1.0)
    t = gravity_transform(gravity, "cam_optical")
    assert (t.frame_id, t.child_frame_id) == ("cam_optical", "cam_optical_gravity")
    pts_g = RNG.normal(size=(5, 3))
    np.testing.assert_allclose(t.apply(pts_g), gravity.to_camera(pts_g), atol=1e-12)
    # a box axis-aligned in the gravity frame: its corners in the camera frame
    center_c, size = np.array([0.0, 0.1, 1.2]), np.array([0.2, 0.1, 0.3])
    lo, hi = gravity.to_gravity(center_c) - size / 2, gravity.to_gravity(center_c) + size / 2
    corners_g = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    box = box_in_camera(center_c, size, gravity, "cam_optical")
    np.testing.assert_allclose(np.sort(box.corners(), axis=0), np.sort(gravity.to_camera(corners_g), axis=0),
                               atol=1e-12)


def test_up_from_a_z_up_frame():
    level = RigidTransform(LEVEL_CAMERA_XYZW, [0.0, 0.0, 1.0], "base_link", "camera_optical")
    np.testing.assert_allclose(up_in_child(level), [0.0, -1.0, 0.0], atol=1e-12)   # level camera: up = -y
    pitched = Rotation.from_euler("y", 30, degrees=True) * Rotation.from_quat(LEVEL_CAMERA_XYZW)
    up = up_in_child(RigidTransform(pitched.as_quat()))
    assert np.isclose(np.linalg.norm(up), 1.0)
    # pitched 30 deg down about the world y axis: up tilts towards the camera's -z (away from the view)
    np.testing.assert_allclose(up, [0.0, -np.cos(np.radians(30)), -np.sin(np.radians(30))], atol=1e-12)
