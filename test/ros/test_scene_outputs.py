"""vision_msgs Detection3DArray and moveit_msgs CollisionObject builders (ros.scene_outputs), checked field by
field with stand-in message classes (``types.SimpleNamespace``) where the packages are not installed, the
geometry_msgs parts with the real classes; and the configure check when an enabled output is missing."""
from types import SimpleNamespace

import numpy as np
import pytest
from geometry_msgs.msg import Pose
from std_msgs.msg import Header

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.transforms import OrientedBox
from spatial_vlm_ros.ros import scene_outputs as so

NS = SimpleNamespace
VISION_FAKES = so.VisionClasses(NS, NS, NS, NS, NS)                 # geometry_msgs: the real classes
MOVEIT_FAKES = so.MoveItClasses(NS, NS)
Q = np.array([0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)])                 # 90 deg about z
OBJECTS = [so.ObjectBox("mug_1", "mug", 0.9, OrientedBox([1.0, 0.2, 0.75], Q, [0.08, 0.09, 0.1], "base_link")),
           so.ObjectBox("box_1", "box", 0.6, OrientedBox([1.2, -0.3, 0.8], [0, 0, 0, 1.0], [0.2, 0.1, 0.3]))]
HEADER = Header(frame_id="base_link")


def _pose_tuple(pose: Pose):
    p, o = pose.position, pose.orientation
    return (p.x, p.y, p.z), (o.x, o.y, o.z, o.w)


def test_detection_3d_array_fields():
    msg = so.detections_3d_msg(OBJECTS, HEADER, VISION_FAKES)
    assert msg.header is HEADER and len(msg.detections) == 2
    for det, obj in zip(msg.detections, OBJECTS):
        assert det.header is HEADER and det.id == obj.id
        (result,) = det.results
        assert (result.hypothesis.class_id, result.hypothesis.score) == (obj.label, pytest.approx(obj.score))
        assert isinstance(det.bbox.center, Pose)
        center, orientation = _pose_tuple(det.bbox.center)
        np.testing.assert_allclose(center, obj.box.center)
        np.testing.assert_allclose(orientation, obj.box.orientation_xyzw)
        np.testing.assert_allclose((det.bbox.size.x, det.bbox.size.y, det.bbox.size.z), obj.box.size)
        assert _pose_tuple(result.pose.pose) == _pose_tuple(det.bbox.center)
    assert so.detections_3d_msg([], HEADER, VISION_FAKES).detections == []


def test_collision_objects_add_boxes_and_remove_vanished_ids():
    msgs = so.collision_object_msgs(OBJECTS[:1], HEADER, MOVEIT_FAKES, previous_ids=["box_1", "mug_1"])
    add, remove = msgs
    assert (add.id, add.operation, add.header) == ("mug_1", so.COLLISION_ADD, HEADER)
    assert _pose_tuple(add.pose) == ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    (primitive,) = add.primitives
    assert primitive.type == so.SOLID_BOX
    np.testing.assert_allclose(primitive.dimensions, OBJECTS[0].box.size)
    (pose,) = add.primitive_poses
    center, orientation = _pose_tuple(pose)
    np.testing.assert_allclose(center, OBJECTS[0].box.center)
    np.testing.assert_allclose(orientation, Q)
    assert (remove.id, remove.operation, remove.header) == ("box_1", so.COLLISION_REMOVE, HEADER)
    assert so.collision_object_msgs([], HEADER, MOVEIT_FAKES) == []


def test_the_message_constants_match_the_definitions_where_installed():
    moveit = so.moveit_classes()
    if moveit is None:
        pytest.skip("moveit_msgs is not installed here")
    assert (moveit.CollisionObject.ADD, moveit.CollisionObject.REMOVE) == (so.COLLISION_ADD, so.COLLISION_REMOVE)
    assert moveit.SolidPrimitive.BOX == so.SOLID_BOX
    so.collision_object_msgs(OBJECTS, HEADER, moveit, previous_ids=["gone_1"])    # real classes take the fields


def test_real_vision_classes_take_the_fields_where_installed():
    vision = so.vision_classes()
    if vision is None:
        pytest.skip("vision_msgs is not installed here")
    msg = so.detections_3d_msg(OBJECTS, HEADER, vision)
    assert msg.detections[0].results[0].hypothesis.class_id == "mug"


def test_enabled_outputs_need_their_packages():
    so.check_outputs(False, False)
    if so.vision_classes() is None:
        with pytest.raises(InputError, match="vision_msgs is not installed"):
            so.check_outputs(True, False)
    if so.moveit_classes() is None:
        with pytest.raises(InputError, match="moveit_msgs is not installed"):
            so.check_outputs(False, True)
