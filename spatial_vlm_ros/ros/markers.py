"""RViz markers for the scene memory: one box and one text label per object, in the camera optical frame.

Boxes are axis-aligned in the gravity frame (z up), so each CUBE marker is placed at the object center
(camera frame) with the orientation of the gravity axes in camera coordinates (``R.T`` for
``p_g = R @ p_c``) and scale = (width, depth, height). Labels float 5 cm above the box top.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from scipy.spatial.transform import Rotation
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.observation import TrackedObject

BOX_ALPHA = 0.5
LABEL_HEIGHT_M = 0.04
LABEL_GAP_M = 0.05


def _color(obj: TrackedObject, alpha: float) -> ColorRGBA:
    rgb = np.asarray(obj.color_rgb, dtype=np.float64) / 255.0
    if not rgb.any():
        rgb = np.array([0.2, 0.8, 0.2])
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))


def scene_markers(objects, gravity: GravityFrame, header, lifetime_s: float = 0.0) -> MarkerArray:
    """MarkerArray: DELETEALL, then per object a CUBE (ns ``boxes``) and a TEXT_VIEW_FACING (ns ``labels``).

    ``header``: std_msgs/Header naming the camera optical frame the centers are expressed in.
    """
    out = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.header = header
    out.markers.append(clear)
    qx, qy, qz, qw = Rotation.from_matrix(np.asarray(gravity.rotation).T).as_quat()
    up_c = gravity.up
    lifetime = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1.0) * 1e9))
    for i, obj in enumerate(objects):
        center = np.asarray(obj.center, dtype=np.float64)
        size = np.maximum(np.asarray(obj.size, dtype=np.float64), 1e-3)

        box = Marker(ns="boxes", id=i, type=Marker.CUBE, action=Marker.ADD, lifetime=lifetime)
        box.header = header
        box.pose.position.x, box.pose.position.y, box.pose.position.z = (float(v) for v in center)
        box.pose.orientation.x, box.pose.orientation.y = float(qx), float(qy)
        box.pose.orientation.z, box.pose.orientation.w = float(qz), float(qw)
        box.scale.x, box.scale.y, box.scale.z = (float(v) for v in size)
        box.color = _color(obj, BOX_ALPHA)
        out.markers.append(box)

        text = Marker(ns="labels", id=i, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, lifetime=lifetime)
        text.header = header
        top = center + up_c * (0.5 * size[2] + LABEL_GAP_M)
        text.pose.position.x, text.pose.position.y, text.pose.position.z = (float(v) for v in top)
        text.pose.orientation.w = 1.0
        text.scale.z = LABEL_HEIGHT_M
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        text.text = obj.id
        out.markers.append(text)
    return out
