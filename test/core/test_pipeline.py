"""The ROS-free per-frame pipeline on analytic scenes: decode -> gravity -> detect -> lift -> memory."""
import numpy as np
import pytest

from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Frame, Segmentation
from spatial_vlm_ros.core.gravity import GravityParams
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig
from spatial_vlm_ros.sim import analytic

OBJECTS = [
    analytic.BoxObject("box", (-0.22, 0.0), (0.10, 0.10, 0.16), color=(210, 35, 35)),
    analytic.CylinderObject("mug", (0.18, 0.06), 0.04, 0.10, color=(40, 70, 210)),
    analytic.BoxObject("book", (0.0, 0.20), (0.20, 0.14, 0.05), color=(35, 160, 50)),
]
SCENE = analytic.render(OBJECTS, camera=analytic.default_camera(320, 240))


def _frame(scene=SCENE, stamp=1.0, depth=None, encoding="16UC1", mask=None, ids=None, labels=None, camera=None):
    return Frame(rgb=scene.rgb, depth=encode_depth_mm(scene.depth) if depth is None else depth,
                 depth_encoding=encoding, camera=camera or scene.camera, stamp=stamp,
                 segmentation=Segmentation(scene.mask if mask is None else mask, scene.ids if ids is None else ids,
                                           scene.labels if labels is None else labels, [1.0] * len(scene.ids)))


def _check_against_truth(objects, label_of=lambda o: o.label, tol=0.01):
    assert len(objects) == 3
    for obj in objects:
        truth = next(t for t in SCENE.objects if t.label == label_of(obj))
        assert np.linalg.norm(obj.center - truth.center_c) < tol, obj.id
        assert np.allclose(obj.size, truth.size, atol=tol), obj.id


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_external_masks_are_lifted_into_memory(encoding):
    pipeline = FramePipeline(PipelineConfig())
    depth = encode_depth_mm(SCENE.depth) if encoding == "16UC1" else np.nan_to_num(SCENE.depth).astype(np.float32)
    for k in range(2):
        result = pipeline.process(_frame(stamp=1.0 + k, depth=depth, encoding=encoding))
    assert result.warnings == []
    assert result.gravity.source == "plane"
    assert np.degrees(np.arccos(np.clip(result.gravity.up @ SCENE.gravity.up, -1, 1))) < 1.0
    steps = {"decode", "gravity", "detect", "lift", "memory", "total"}
    assert set(result.timings_ms) == set(result.cpu_ms) == steps
    assert all(v >= 0.0 for v in result.cpu_ms.values())
    assert sorted(o.id for o in result.objects) == ["book_1", "box_1", "mug_1"]
    assert all(o.observations == 2 for o in result.objects)
    _check_against_truth(result.objects)


def test_tabletop_detector_names_objects_by_color():
    pipeline = FramePipeline(PipelineConfig(detector="tabletop"))
    frame = _frame()
    frame.segmentation = None
    result = pipeline.process(frame)
    colors = {"red object": "box", "blue object": "mug", "green object": "book"}
    assert sorted(o.label for o in result.objects) == sorted(colors)
    _check_against_truth(result.objects, label_of=lambda o: colors[o.label])


def test_static_gravity_mode_uses_the_configured_pose():
    level = (-0.5, 0.5, -0.5, 0.5)
    pipeline = FramePipeline(PipelineConfig(gravity=GravityParams(mode="static", static_orientation=level)))
    result = pipeline.process(_frame())
    assert result.gravity.source == "static"
    np.testing.assert_allclose(result.gravity.up, [0.0, -1.0, 0.0], atol=1e-12)


def _bad_frames():
    small = analytic.render(OBJECTS, camera=analytic.default_camera(160, 120))
    empty = np.zeros_like(SCENE.mask)
    return [
        ("depth size", _frame(depth=encode_depth_mm(small.depth)),
         r"depth image: expected 320x240 \(camera_info; depth must be aligned to the color image\), got 160x120"),
        ("camera size", _frame(camera=small.camera), r"color image: expected 160x120 \(camera_info\), got 320x240"),
        ("zero depth", _frame(depth=np.zeros((240, 320), np.uint16)), "no valid pixels"),
        ("nan depth", _frame(depth=np.full((240, 320), np.nan, np.float32), encoding="32FC1"), "no valid pixels"),
        ("depth encoding", _frame(encoding="8UC1"), "unsupported encoding '8UC1'"),
        ("mask size", _frame(mask=small.mask), r"instance mask: expected 320x240 \(camera_info\), got 160x120"),
        ("empty masks", _frame(mask=empty), "all 3 instance masks are empty"),
        ("labels", _frame(labels=["box"]), "3 ids, 1 labels"),
        ("no segmentation", Frame(SCENE.rgb, encode_depth_mm(SCENE.depth), "16UC1", SCENE.camera, 9.0),
         "needs an instance segmentation"),
        ("old stamp", _frame(stamp=0.5), "older than the memory's last update"),
    ]


@pytest.mark.parametrize("name,frame,needle", _bad_frames(), ids=[b[0] for b in _bad_frames()])
def test_bad_frames_raise_input_error_and_leave_memory_unchanged(name, frame, needle):
    pipeline = FramePipeline(PipelineConfig())
    pipeline.process(_frame(stamp=1.0))
    before = pipeline.memory.snapshot()
    with pytest.raises(InputError, match=needle):
        pipeline.process(frame)
    assert pipeline.memory.snapshot() is before


def test_partly_empty_masks_and_unliftable_instances():
    pipeline = FramePipeline(PipelineConfig())
    mask = SCENE.mask.copy()
    mask[mask == 2] = 0
    result = pipeline.process(_frame(mask=mask))
    assert [w for w in result.warnings if "'mug' (id 2): empty mask" in w]
    assert sorted(o.label for o in result.objects) == ["book", "box"]
    depth = encode_depth_mm(SCENE.depth)
    depth[SCENE.mask > 0] = 0                      # no depth inside any mask: nothing can be lifted
    before = pipeline.memory.snapshot()
    with pytest.raises(InputError, match="none of the 3 instances could be lifted"):
        pipeline.process(_frame(stamp=2.0, depth=depth))
    assert pipeline.memory.snapshot() is before


def test_reset_clears_memory():
    pipeline = FramePipeline(PipelineConfig())
    pipeline.process(_frame())
    pipeline.reset()
    assert pipeline.memory.snapshot().objects == ()


def _angle_deg(a, b):
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


def test_a_new_view_is_lifted_with_its_own_gravity():
    """After ~/reset (a new scene) and after a camera re-placed without one, the first frame of the new view is
    lifted with its own up vector. The old pipeline kept the previous view's estimate for two frames (18 deg
    off here) and put boxes lifted with it into memory."""
    other = analytic.render(OBJECTS, analytic.CameraPose(height=0.9, pitch_deg=53.0, distance=0.7),
                            camera=analytic.default_camera(320, 240))
    for reset in (True, False):
        pipeline = FramePipeline(PipelineConfig())
        pipeline.process(_frame())
        if reset:
            pipeline.reset()
            assert pipeline.gravity.current is None
        result = pipeline.process(_frame(scene=other, stamp=2.0))
        assert _angle_deg(result.gravity.up, other.gravity.up) < 0.5
        for obs in result.observations:
            truth = next(t for t in other.objects if t.label == obs.label)
            assert np.linalg.norm(obs.center - truth.center_c) < 0.01, obs.label


def test_a_replay_restart_resets_the_memory_and_says_so_in_the_warnings():
    """A backwards clock jump (looped bag) is an explicit, reported reset, never a silent renumbering."""
    pipeline = FramePipeline(PipelineConfig())
    for stamp in (100.0, 100.1):
        result = pipeline.process(_frame(stamp=stamp))
    assert result.warnings == []
    for stamp in (10.0, 10.1):                 # not yet confirmed (memory.restart_confirm_frames: 3)
        with pytest.raises(InputError, match="replay restart is assumed after 3 such frames"):
            pipeline.process(_frame(stamp=stamp))
    result = pipeline.process(_frame(stamp=10.2))
    assert any(w.startswith("scene memory reset: clock jumped back") for w in result.warnings), result.warnings
    assert sorted(o.id for o in result.objects) == ["book_1", "box_1", "mug_1"]
    assert all(o.observations == 1 for o in result.objects)
