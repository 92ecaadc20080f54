"""TF for the perception node, where tf2 is installed (``tf2_ros`` is imported guarded: the PyPI-wheel setup
has none, a ROS install has it):

- ``target_frame`` (e.g. ``base_link``; "" = the camera optical frame): the camera -> target transform is
  looked up at each frame's header stamp; ``~/objects`` report box centers and orientations in the target
  frame. A frame whose transform cannot be found (within ``tf.timeout_s``) is rejected with tf2's reason.
- ``gravity.mode: tf``: up = +z of ``target_frame`` (REP 103: z up), from the same lookup (``TfGravity``
  stands in for the pipeline's gravity estimator; the support height is then unknown).
- ``tf.broadcast_gravity``: the gravity frame ``<camera frame>_gravity`` (same origin as the camera optical
  frame, z up; rotation only) is sent with every ``~/objects``: with ``tf2_ros.TransformBroadcaster``, else
  as ``tf2_msgs/TFMessage`` on ``/tf`` where tf2_msgs is importable, else not at all (said in diagnostics).

Without tf2_ros, a non-empty ``target_frame`` or ``gravity.mode: tf`` is a configure error naming the fix.
The transform maths is ``core.transforms`` (ROS-free, tested without tf2).
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import TransformStamped

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.transforms import RigidTransform, gravity_transform, up_in_child

try:  # real ROS installs (apt ros-$DISTRO-tf2-ros); not available as a PyPI wheel
    import tf2_ros
except ImportError:
    tf2_ros = None
try:
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None

GRAVITY_TF_MODE = "tf"
NO_BROADCAST = "not broadcast: neither tf2_ros nor tf2_msgs is installed here"


def check_tf_settings(target_frame: str, gravity_mode: str, tf2_installed: bool | None = None) -> None:
    """Raise ``InputError`` for TF settings that cannot work: ``gravity.mode: tf`` without a ``target_frame``,
    or either one where tf2_ros is not installed (``tf2_installed``: default, whether it imports here)."""
    installed = tf2_ros is not None if tf2_installed is None else tf2_installed
    if gravity_mode == GRAVITY_TF_MODE and not target_frame:
        raise InputError("gravity.mode 'tf' takes up from target_frame's +z: set target_frame (a z-up frame, "
                         "e.g. base_link)")
    if target_frame and not installed:
        what = "gravity.mode 'tf'" if gravity_mode == GRAVITY_TF_MODE else f"target_frame '{target_frame}'"
        raise InputError(f"{what} needs tf2_ros, which is not installed here (install ros-$ROS_DISTRO-tf2-ros, "
                         "or run in a ROS install that has it); or set target_frame: '' to answer in the camera "
                         "optical frame")


def transform_from_msg(msg) -> RigidTransform:
    """``geometry_msgs/TransformStamped`` (duck-typed) -> ``RigidTransform`` (frame <- child)."""
    t, q = msg.transform.translation, msg.transform.rotation
    return RigidTransform(np.array((q.x, q.y, q.z, q.w), dtype=np.float64),
                          np.array((t.x, t.y, t.z), dtype=np.float64), str(msg.header.frame_id),
                          str(msg.child_frame_id))


def transform_to_msg(transform: RigidTransform, stamp=None) -> TransformStamped:
    """``RigidTransform`` -> ``geometry_msgs/TransformStamped`` (``stamp``: ``builtin_interfaces/Time``)."""
    msg = TransformStamped()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id, msg.child_frame_id = transform.frame_id, transform.child_frame_id
    t, q = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = (float(v) for v in transform.translation)
    q.x, q.y, q.z, q.w = (float(v) for v in transform.rotation_xyzw)
    return msg


class TfGravity:
    """Stands in for ``GravityEstimator`` as ``FramePipeline.gravity`` with ``gravity.mode: tf``: up = +z of
    ``frame``, from the transform camera -> ``frame`` given with ``set_transform`` before each frame."""

    def __init__(self, frame: str):
        self.frame = frame
        self._next: RigidTransform | None = None
        self._current: GravityFrame | None = None
        self.status = "no estimate yet"

    def set_transform(self, transform: RigidTransform | None) -> None:
        self._next = transform

    @property
    def current(self) -> GravityFrame | None:
        return self._current

    @property
    def fallback(self) -> GravityFrame:
        return self._current or GravityFrame.camera_default()

    def update(self, depth_m=None, camera=None, exclude_mask=None) -> GravityFrame:
        if self._next is None:
            raise InputError(f"gravity.mode 'tf': no transform to '{self.frame}' for this frame")
        self._current = GravityFrame.from_up(up_in_child(self._next), None, source="tf",
                                             up_from=f"TF (+z of '{self.frame}')", assumed=False)
        self.status = f"up from TF (+z of '{self.frame}')"
        return self._current

    def checkpoint(self) -> dict:
        return {"_current": self._current, "status": self.status}

    def rollback(self, state: dict) -> None:
        self._current, self.status = state["_current"], state["status"]

    def reset(self) -> None:
        self._current = None
        self.status = "no estimate yet"


class FrameTf:
    """The TF side of one ``FrameProcessor`` on ``node``: the lookup of the camera -> ``target_frame``
    transform per frame, ``TfGravity`` for ``gravity.mode: tf`` (installed on ``pipeline``), the gravity
    frame broadcast. Raises ``InputError`` (``check_tf_settings``) for settings that cannot work here."""

    def __init__(self, node, pipeline, target_frame: str = "", gravity_mode: str = "", timeout_s: float = 0.05,
                 broadcast_gravity: bool = True):
        check_tf_settings(target_frame, gravity_mode)
        self.node, self.target_frame, self.timeout_s = node, target_frame, float(timeout_s)
        self.to_target: RigidTransform | None = None     # camera -> target at the last processed frame
        self._buffer = self._listener = None
        if target_frame and tf2_ros is not None:
            self._buffer = tf2_ros.Buffer(node=node)
            self._listener = tf2_ros.TransformListener(self._buffer, node, spin_thread=False)
        self.gravity: TfGravity | None = None
        if gravity_mode == GRAVITY_TF_MODE:
            self.gravity = pipeline.gravity = TfGravity(target_frame)
        self._broadcaster = self._tf_pub = None
        self.broadcast_note = "off (tf.broadcast_gravity)"
        if broadcast_gravity:
            self._start_broadcast()

    def _start_broadcast(self) -> None:
        if tf2_ros is not None:
            self._broadcaster = tf2_ros.TransformBroadcaster(self.node)
            self.broadcast_note = "tf2_ros TransformBroadcaster"
        elif TFMessage is not None:
            from rclpy.qos import QoSProfile
            self._tf_pub = self.node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))
            self.broadcast_note = "tf2_msgs/TFMessage on /tf"
        else:
            self.broadcast_note = NO_BROADCAST

    def before_frame(self, header) -> RigidTransform | None:
        """The camera -> target transform at ``header``'s stamp (``header``: the color image's), or None
        without a ``target_frame``; handed to ``TfGravity``. Raises ``InputError`` with tf2's reason."""
        if not self.target_frame or self._buffer is None:
            return None
        if not header.frame_id:
            raise InputError(f"target_frame '{self.target_frame}': the color image's header has no frame_id to "
                             "look the transform up from")
        from rclpy.duration import Duration
        from rclpy.time import Time
        try:
            msg = self._buffer.lookup_transform(self.target_frame, header.frame_id, Time.from_msg(header.stamp),
                                                timeout=Duration(seconds=self.timeout_s))
        except tf2_ros.TransformException as err:
            raise InputError(f"no transform from '{header.frame_id}' to target_frame '{self.target_frame}' at the "
                             f"frame's stamp: {err}") from None
        transform = transform_from_msg(msg)
        if self.gravity is not None:
            self.gravity.set_transform(transform)
        return transform

    def commit(self, transform: RigidTransform | None) -> None:
        """The transform of the frame the memory accepted: the one its objects' centers are reported with."""
        self.to_target = transform

    def output_frame(self, camera_frame: str) -> tuple[str, RigidTransform | None]:
        """(frame_id of ``~/objects``, camera -> that frame or None for the camera frame itself)."""
        if self.target_frame and self.to_target is not None:
            return self.target_frame, self.to_target
        return camera_frame, None

    def broadcast(self, gravity: GravityFrame, camera_frame: str, stamp) -> None:
        """Send camera optical <- ``<camera_frame>_gravity`` stamped ``stamp`` (nothing without a camera frame)."""
        if not camera_frame or (self._broadcaster is None and self._tf_pub is None):
            return
        msg = transform_to_msg(gravity_transform(gravity, camera_frame), stamp)
        if self._broadcaster is not None:
            self._broadcaster.sendTransform(msg)
        elif self._tf_pub is not None and TFMessage is not None:
            self._tf_pub.publish(TFMessage(transforms=[msg]))

    def status_values(self) -> dict:
        """Diagnostics key/values."""
        return {"target_frame": self.target_frame or "(camera optical frame)",
                "gravity_frame_broadcast": self.broadcast_note}

    def close(self) -> None:
        if self._tf_pub is not None:
            self.node.destroy_publisher(self._tf_pub)
            self._tf_pub = None
        listener, self._listener = self._listener, None
        if listener is not None and hasattr(listener, "unregister"):
            listener.unregister()
