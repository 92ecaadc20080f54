"""Markers and diagnostics messages built from core objects (messages only, no DDS)."""
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.observation import TrackedObject
from spatial_vlm_ros.ros.diagnostics import ProcessingStats, diagnostic_array, status_level
from spatial_vlm_ros.ros.markers import scene_markers


def _obj(oid, center, size, rgb=(200, 0, 0)):
    return TrackedObject(id=oid, label=oid.split("_")[0], score=1.0, center=np.array(center, float),
                         size=np.array(size, float), box_min=np.zeros(3), box_max=np.zeros(3),
                         points=np.zeros((0, 3)), color_rgb=rgb)


def test_markers_box_orientation_maps_gravity_axes_to_camera():
    gravity = GravityFrame.from_up(np.array([0.0, -np.cos(0.6), np.sin(0.6)]))   # camera pitched down
    objs = [_obj("mug_1", [0.1, 0.05, 1.0], [0.08, 0.09, 0.12]), _obj("box_1", [-0.2, 0.0, 1.2], [0.1, 0.1, 0.2])]
    out = scene_markers(objs, gravity, Header(frame_id="cam"))
    assert [m.action for m in out.markers][0] == Marker.DELETEALL
    boxes = [m for m in out.markers if m.ns == "boxes"]
    texts = [m for m in out.markers if m.ns == "labels"]
    assert [t.text for t in texts] == ["mug_1", "box_1"]
    q = boxes[0].pose.orientation
    R_marker = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    # the marker's local z (box height) is gravity up, expressed in the camera frame
    np.testing.assert_allclose(R_marker[:, 2], gravity.up, atol=1e-9)
    np.testing.assert_allclose(R_marker, gravity.rotation.T, atol=1e-9)
    assert (boxes[0].scale.x, boxes[0].scale.y, boxes[0].scale.z) == pytest.approx((0.08, 0.09, 0.12))
    assert boxes[0].color.r == pytest.approx(200 / 255) and boxes[0].color.a == pytest.approx(0.5)
    label_pos = np.array([texts[0].pose.position.x, texts[0].pose.position.y, texts[0].pose.position.z])
    height_above_center = (label_pos - objs[0].center) @ gravity.up
    assert height_above_center == pytest.approx(0.06 + 0.05)
    assert all(m.header.frame_id == "cam" for m in out.markers)


def test_stats_rate_percentiles_and_levels():
    stats = ProcessingStats()
    for k in range(11):
        stats.record_frame(0.010 + 0.001 * k, n_objects=3, now=100.0 + 0.1 * k)
    snap = stats.snapshot(now=101.0)
    assert snap.frame_rate_hz == pytest.approx(10.0)
    assert snap.latency_p50_ms == pytest.approx(15.0)
    assert snap.latency_p95_ms == pytest.approx(19.5)
    assert status_level(snap, 1.0, 5.0) == (DiagnosticStatus.OK, "10.0 Hz, 3 objects")
    assert status_level(stats.snapshot(now=110.0), 1.0, 5.0)[0] == DiagnosticStatus.WARN   # stale
    stats.record_warning("stamps far apart", now=101.0)
    assert status_level(stats.snapshot(now=101.5), 1.0, 5.0) == (DiagnosticStatus.WARN, "stamps far apart")
    assert status_level(stats.snapshot(now=103.0), 1.0, 5.0)[0] == DiagnosticStatus.OK      # warning aged out
    stats.record_error("depth image has no valid pixels", now=103.0)
    level, message = status_level(stats.snapshot(now=103.1), 1.0, 5.0)
    assert level == DiagnosticStatus.ERROR and message == "last frame rejected: depth image has no valid pixels"
    stats.record_frame(0.01, 3, now=103.2)
    assert status_level(stats.snapshot(now=103.3), 1.0, 5.0)[0] == DiagnosticStatus.OK       # recovered
    assert ProcessingStats().snapshot().last_frame_age_s is None


def test_diagnostic_array_carries_values():
    stats = ProcessingStats()
    stats.record_frame(0.02, 2)
    msg = diagnostic_array(stats.snapshot(), Header().stamp, "/n: perception", "/n", 1.0, 5.0,
                           {"dropped_stale_frames": 4})
    (status,) = msg.status
    values = {kv.key: kv.value for kv in status.values}
    assert status.name == "/n: perception" and status.hardware_id == "/n"
    assert values["dropped_stale_frames"] == "4" and values["frames_processed"] == "1"
    assert float(values["latency_p50_ms"]) == pytest.approx(20.0)
