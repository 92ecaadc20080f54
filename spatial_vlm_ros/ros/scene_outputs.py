"""Optional scene outputs for other ROS packages, each where its message package is installed:

- ``vision_msgs/Detection3DArray`` on ``~/detections_3d`` (``outputs.detections_3d``): one ``Detection3D`` per
  object, its id, label and score as the first hypothesis, its gravity-aligned box as ``bbox`` (center pose
  and size), the hypothesis pose = the box center pose (vision_msgs 4, Humble and later);
- ``moveit_msgs/CollisionObject`` on ``~/collision_objects`` (``outputs.collision_objects``): one BOX
  primitive per object (``operation`` ADD, which replaces an object of that id), and REMOVE for every id
  published before that is gone. Remap the topic to ``/collision_object`` for MoveIt's planning scene monitor.

The builders take the objects as ``ObjectBox``es (plain data) and the message classes as arguments
(``VisionClasses`` / ``MoveItClasses``), so they are tested with stand-in classes where the packages are not
installed; every class is called with keyword fields only. Frames: the boxes' (the header's) frame, metres.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from geometry_msgs.msg import Point, Pose, PoseWithCovariance, Quaternion, Vector3

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.transforms import OrientedBox

try:  # real ROS installs (apt ros-$DISTRO-vision-msgs); not available as a PyPI wheel
    import vision_msgs.msg as _vision_msgs
except ImportError:
    _vision_msgs = None
try:  # real ROS installs (apt ros-$DISTRO-moveit-msgs); shape_msgs comes with it
    import moveit_msgs.msg as _moveit_msgs
    import shape_msgs.msg as _shape_msgs
except ImportError:
    _moveit_msgs = _shape_msgs = None

COLLISION_ADD = 0                  # moveit_msgs/CollisionObject.ADD
COLLISION_REMOVE = 1               # moveit_msgs/CollisionObject.REMOVE
SOLID_BOX = 1                      # shape_msgs/SolidPrimitive.BOX; dimensions [x, y, z], metres


@dataclass(frozen=True)
class ObjectBox:
    """One scene object for the builders: stable id, label, score in [0, 1] and its box."""

    id: str
    label: str
    score: float
    box: OrientedBox


@dataclass(frozen=True)
class VisionClasses:
    """The message classes ``detections_3d_msg`` builds with (vision_msgs and geometry_msgs)."""

    Detection3DArray: Any
    Detection3D: Any
    ObjectHypothesisWithPose: Any
    ObjectHypothesis: Any
    BoundingBox3D: Any
    Pose: Any = Pose
    PoseWithCovariance: Any = PoseWithCovariance
    Point: Any = Point
    Quaternion: Any = Quaternion
    Vector3: Any = Vector3


@dataclass(frozen=True)
class MoveItClasses:
    """The message classes ``collision_object_msgs`` builds with (moveit_msgs, shape_msgs, geometry_msgs)."""

    CollisionObject: Any
    SolidPrimitive: Any
    Pose: Any = Pose
    Point: Any = Point
    Quaternion: Any = Quaternion


def vision_classes() -> VisionClasses | None:
    """The installed vision_msgs classes, or None where vision_msgs is not installed."""
    if _vision_msgs is None:
        return None
    m = _vision_msgs
    return VisionClasses(m.Detection3DArray, m.Detection3D, m.ObjectHypothesisWithPose, m.ObjectHypothesis,
                         m.BoundingBox3D)


def moveit_classes() -> MoveItClasses | None:
    """The installed moveit_msgs classes, or None where moveit_msgs is not installed."""
    if _moveit_msgs is None or _shape_msgs is None:
        return None
    return MoveItClasses(_moveit_msgs.CollisionObject, _shape_msgs.SolidPrimitive)


def _pose(box: OrientedBox, classes) -> Any:
    x, y, z = (float(v) for v in box.center)
    qx, qy, qz, qw = (float(v) for v in box.orientation_xyzw)
    return classes.Pose(position=classes.Point(x=x, y=y, z=z),
                        orientation=classes.Quaternion(x=qx, y=qy, z=qz, w=qw))


def detections_3d_msg(objects: list[ObjectBox], header, classes: VisionClasses) -> Any:
    """``Detection3DArray`` of ``objects`` (their boxes in ``header``'s frame); each detection has ``header``,
    ``id`` = the object id, one hypothesis (``class_id`` = label, ``score``, pose = the box pose) and
    ``bbox`` (center pose, size = width, depth, height along the box axes)."""
    c = classes
    detections = []
    for obj in objects:
        sx, sy, sz = (float(v) for v in obj.box.size)
        hypothesis = c.ObjectHypothesisWithPose(
            hypothesis=c.ObjectHypothesis(class_id=str(obj.label), score=float(obj.score)),
            pose=c.PoseWithCovariance(pose=_pose(obj.box, c)))
        detections.append(c.Detection3D(header=header, results=[hypothesis], id=str(obj.id),
                                        bbox=c.BoundingBox3D(center=_pose(obj.box, c),
                                                             size=c.Vector3(x=sx, y=sy, z=sz))))
    return c.Detection3DArray(header=header, detections=detections)


def collision_object_msgs(objects: list[ObjectBox], header, classes: MoveItClasses,
                          previous_ids=()) -> list[Any]:
    """``CollisionObject`` messages: ADD (one BOX primitive at the box pose; the object pose is the identity)
    for each of ``objects``, then REMOVE for each id of ``previous_ids`` no longer among them. All stamped
    with ``header`` (its frame must be one MoveIt's TF knows)."""
    c = classes
    identity = c.Pose(position=c.Point(x=0.0, y=0.0, z=0.0), orientation=c.Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))
    out = [c.CollisionObject(header=header, id=str(obj.id), pose=identity, operation=COLLISION_ADD,
                             primitives=[c.SolidPrimitive(type=SOLID_BOX,
                                                          dimensions=[float(v) for v in obj.box.size])],
                             primitive_poses=[_pose(obj.box, c)])
           for obj in objects]
    current = {str(obj.id) for obj in objects}
    out += [c.CollisionObject(header=header, id=str(i), operation=COLLISION_REMOVE)
            for i in previous_ids if str(i) not in current]
    return out


def check_outputs(detections_3d: bool, collision_objects: bool) -> None:
    """Raise ``InputError`` naming the package to install when an enabled output's messages are missing."""
    if detections_3d and vision_classes() is None:
        raise InputError("outputs.detections_3d is true but vision_msgs is not installed here (install "
                         "ros-$ROS_DISTRO-vision-msgs), or set outputs.detections_3d: false")
    if collision_objects and moveit_classes() is None:
        raise InputError("outputs.collision_objects is true but moveit_msgs is not installed here (install "
                         "ros-$ROS_DISTRO-moveit-msgs), or set outputs.collision_objects: false")


class OptionalOutputs:
    """The enabled optional publishers on ``node`` (topics: ``"detections_3d"`` and ``"collision_objects"``,
    fully resolved). Raises ``InputError`` when an enabled output's package is not installed."""

    def __init__(self, node, topics: dict, qos, detections_3d: bool = False, collision_objects: bool = False):
        check_outputs(detections_3d, collision_objects)
        self.node = node
        self._vision = vision_classes() if detections_3d else None
        self._moveit = moveit_classes() if collision_objects else None
        self._published_ids: set[str] = set()
        self._detections_pub = self._collision_pub = None
        if self._vision is not None:
            self._detections_pub = node.create_publisher(self._vision.Detection3DArray, topics["detections_3d"], qos)
        if self._moveit is not None:
            self._collision_pub = node.create_publisher(self._moveit.CollisionObject, topics["collision_objects"],
                                                        qos)

    def publish(self, objects: list[ObjectBox], header) -> None:
        """Publish ``objects`` (boxes in ``header``'s frame) on every enabled output."""
        if self._detections_pub is not None and self._vision is not None:
            self._detections_pub.publish(detections_3d_msg(objects, header, self._vision))
        if self._collision_pub is not None and self._moveit is not None:
            for msg in collision_object_msgs(objects, header, self._moveit, sorted(self._published_ids)):
                self._collision_pub.publish(msg)
            self._published_ids = {str(obj.id) for obj in objects}

    def close(self) -> None:
        for pub in (self._detections_pub, self._collision_pub):
            if pub is not None:
                self.node.destroy_publisher(pub)
        self._detections_pub = self._collision_pub = None
