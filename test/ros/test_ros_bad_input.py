"""Integration: every kind of bad input gets a clear diagnostics message, the node keeps answering and the
scene memory is unchanged. Malformed service requests are covered in test_ros_node.py."""
import array
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from ros_harness import NodeHarness, default_scene, frame_messages, memory_rows, stamp_clock

from spatial_vlm_interfaces.srv import GetRelation
from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.ros import conversions as conv

SCENE = default_scene()
SMALL = default_scene(160, 120)
OVERRIDES = {"memory.timeout_s": 600.0, "diagnostics_period_s": 0.1, "stale_after_s": 0.4}
_next_stamp = stamp_clock(100.0)


@pytest.fixture(scope="module")
def harness():
    if not rclpy.ok():
        rclpy.init()
    with NodeHarness(OVERRIDES, namespace="bad") as h:
        for _ in range(2):
            assert h.publish_and_wait(frame_messages(SCENE, _next_stamp()))
        yield h


def _relabel(img, encoding):
    img.encoding = encoding
    return img


def _zero_k(m):
    m.camera_info.k = [0.0] * 9


def _nan_k(m):
    m.camera_info.k[0] = float("nan")


def _depth_size(m):
    m.depth = conv.array_to_image(encode_depth_mm(SMALL.depth), "16UC1", m.depth.header.stamp)


def _info_size(m):
    info = conv.camera_info_from_model(SMALL.camera, m.camera_info.header.stamp)
    m.camera_info = info


def _zero_depth(m):
    m.depth = conv.array_to_image(np.zeros(SCENE.depth.shape, np.uint16), "16UC1", m.depth.header.stamp)


def _nan_depth(m):
    m.depth = conv.array_to_image(np.full(SCENE.depth.shape, np.nan, np.float32), "32FC1", m.depth.header.stamp)


def _depth_mono8(m):
    m.depth = conv.array_to_image(np.full(SCENE.depth.shape, 9, np.uint8), "mono8", m.depth.header.stamp)


def _truncated(m):
    m.color.data = array.array("B", bytes(m.color.data)[: len(m.color.data) // 2])


def _empty_masks(m):
    m.instances.mask = conv.array_to_image(np.zeros(SCENE.mask.shape, np.uint8), "mono8")


def _mask_size(m):
    m.instances.mask = conv.array_to_image(SMALL.mask.astype(np.uint8), "mono8")


def _mask_float(m):
    m.instances.mask = conv.array_to_image(SCENE.mask.astype(np.float32), "32FC1")


def _labels_short(m):
    m.instances.labels = list(m.instances.labels)[:2]


CASES = [
    ("color encoding", lambda m: _relabel(m.color, "yuv422"), "color image: unsupported encoding 'yuv422'"),
    ("color as depth encoding", lambda m: _relabel(m.color, "16UC1"), "color image: unsupported encoding"),
    ("depth encoding", _depth_mono8, "depth image: unsupported encoding 'mono8'"),
    ("truncated data", _truncated, "color image: data holds"),
    ("color/depth size", _depth_size,
     "depth image: expected 320x240 (camera_info; depth must be aligned to the color image), got 160x120"),
    ("camera_info size", _info_size, "color image: expected 160x120 (camera_info), got 320x240"),
    ("zero intrinsics", _zero_k, "focal lengths fx=0, fy=0 must be positive"),
    ("NaN intrinsics", _nan_k, "K contains NaN"),
    ("all-zero depth", _zero_depth, "depth image has no valid pixels"),
    ("all-NaN depth", _nan_depth, "depth image has no valid pixels"),
    ("empty masks", _empty_masks, "all 3 instance masks are empty"),
    ("mask size", _mask_size, "instance mask: expected 320x240 (camera_info), got 160x120"),
    ("mask encoding", _mask_float, "instance mask: unsupported encoding '32FC1'"),
    ("labels/ids", _labels_short, "3 ids, 2 labels and 3 scores"),
]


@pytest.mark.parametrize("name,corrupt,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_frame_is_rejected_with_a_clear_error_and_memory_is_unchanged(harness, name, corrupt, needle):
    before = memory_rows(harness)
    msgs = frame_messages(SCENE, _next_stamp())
    corrupt(msgs)
    assert harness.publish_and_wait(msgs, outcome="rejected"), f"{name}: frame was not rejected"
    status = harness.diagnostic_matching(needle, level=DiagnosticStatus.ERROR)
    assert status is not None, f"{name}: no ERROR diagnostics containing {needle!r}"
    assert status.message.startswith("last frame rejected:")
    assert memory_rows(harness) == before
    res = harness.call(GetRelation, "get_relation", subject="box", relation="left_of", reference="mug")
    assert res.success and res.holds


def test_stamps_far_apart_are_never_matched_and_reported(harness):
    before = memory_rows(harness)
    processed, failed = harness.node.stats.frames_processed, harness.node.stats.frames_failed
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:                        # depth always 0.55 s late
        msgs = frame_messages(SCENE, _next_stamp())
        msgs.depth.header.stamp = conv.seconds_to_stamp(conv.stamp_to_seconds(msgs.depth.header.stamp) + 0.55)
        harness.publish(msgs)
        time.sleep(0.1)
    status = harness.diagnostic_matching("stamps too far apart to be matched", timeout=2.0)
    assert status is not None and "span 0.550 s > slop 0.020 s" in " ".join(kv.value for kv in status.values)
    assert (harness.node.stats.frames_processed, harness.node.stats.frames_failed) == (processed, failed)
    assert memory_rows(harness) == before
    harness.restart_inputs()           # leave no half-matched depth messages for the next test


def test_missing_camera_info_is_reported(harness):
    before = memory_rows(harness)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        harness.publish(frame_messages(SCENE, _next_stamp()), slots=("color", "depth", "instances"))
        time.sleep(0.1)
    status = harness.diagnostic_matching("no messages on /camera/color/camera_info", timeout=2.0)
    assert status is not None and status.level >= DiagnosticStatus.WARN
    assert memory_rows(harness) == before


def test_partially_empty_masks_warn_and_keep_the_other_objects(harness):
    harness.restart_inputs()
    before = {row[0]: row for row in memory_rows(harness)}
    msgs = frame_messages(SCENE, _next_stamp())
    mask = SCENE.mask.copy()
    mask[mask == 2] = 0                                            # the mug (id 2) vanishes from the mask
    msgs.instances.mask = conv.array_to_image(mask.astype(np.uint8), "mono8")
    assert harness.publish_and_wait(msgs)
    status = harness.diagnostic_matching("instance 'mug' (id 2): empty mask, skipped", level=DiagnosticStatus.WARN)
    assert status is not None
    after = {row[0]: row for row in memory_rows(harness)}
    assert set(after) == set(before)
    assert after["mug_1"] == before["mug_1"]                       # not seen: unchanged
    assert after["box_1"][2] == before["box_1"][2] + 1             # seen once more
    # a good frame afterwards clears the error state
    assert harness.publish_and_wait(frame_messages(SCENE, _next_stamp()))
    assert harness.diagnostic_matching("objects", level=DiagnosticStatus.OK) is not None
