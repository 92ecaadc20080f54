"""A frame the pipeline rejects changes nothing: not the memory, and not the gravity estimate."""
import numpy as np
import pytest

from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Frame, Segmentation
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig
from spatial_vlm_ros.sim import analytic

OBJECTS = [analytic.BoxObject("box", (-0.15, 0.05), (0.12, 0.12, 0.20)),
           analytic.CylinderObject("mug", (0.15, 0.05), 0.04, 0.10)]
CAMERA = analytic.default_camera(320, 240)
LEVELISH = analytic.render(OBJECTS, analytic.CameraPose(pitch_deg=30.0), camera=CAMERA)
STEEP = analytic.render(OBJECTS, analytic.CameraPose(pitch_deg=50.0), camera=CAMERA)   # another up: 20 deg


def _frame(scene, stamp: float, mask=None) -> Frame:
    mask = scene.mask if mask is None else mask
    return Frame(rgb=scene.rgb, depth=encode_depth_mm(scene.depth), depth_encoding="16UC1", camera=scene.camera,
                 stamp=stamp, segmentation=Segmentation(mask, scene.ids, scene.labels, [1.0] * len(scene.ids)))


def _state(pipeline):
    est = pipeline.gravity
    return {"current": est.current, "status": est.status, "tracked": est.tracked, "last_plane": est.last_plane,
            "up": est._up, "height": est._height, "track_plane": est._track_plane, "jumps": est._jumps}


def _unlifable_mask(scene):
    """The instances' masks moved onto pixels without depth (beyond the table and floor: none here), so no
    instance can be lifted: rejected after the gravity update."""
    mask = np.zeros_like(scene.mask)
    mask[:4, :4] = scene.ids[0]
    mask[:4, -4:] = scene.ids[1]
    return mask


@pytest.mark.parametrize("bad", ["older stamp", "unliftable"])
def test_a_rejected_frame_leaves_the_gravity_estimate_alone(bad):
    pipeline = FramePipeline(PipelineConfig())
    for k in range(3):
        pipeline.process(_frame(LEVELISH, 2.0 + 0.1 * k))
    before, scene_before = _state(pipeline), pipeline.memory.snapshot()
    if bad == "older stamp":
        frame = _frame(STEEP, 1.0)
    else:
        frame = _frame(STEEP, 3.0, _unlifable_mask(STEEP))
        frame.depth = frame.depth.copy()
        frame.depth[:4, :4] = frame.depth[:4, -4:] = 0
    with pytest.raises(InputError, match="older than" if bad == "older stamp" else "could be lifted"):
        pipeline.process(frame)
    after = _state(pipeline)
    changed = [name for name in before if after[name] is not before[name]]   # the very same objects
    assert not changed, f"{changed}; status now: {pipeline.gravity.status}"
    assert pipeline.memory.snapshot() is scene_before
    result = pipeline.process(_frame(LEVELISH, 2.3))   # and the next good frame goes on from there
    assert np.degrees(np.arccos(np.clip(result.gravity.up @ LEVELISH.gravity.up, -1, 1))) < 1.0
    assert pipeline.gravity.tracked


def test_a_rejected_frame_would_have_moved_the_estimate():
    """The control: the same steep frame, accepted, turns up by ~20 degrees."""
    pipeline = FramePipeline(PipelineConfig())
    for k in range(3):
        pipeline.process(_frame(LEVELISH, 2.0 + 0.1 * k))
    for k in range(3):                               # a jump is confirmed over jump_confirm_frames frames
        result = pipeline.process(_frame(STEEP, 3.0 + 0.1 * k))
    assert np.degrees(np.arccos(np.clip(result.gravity.up @ STEEP.gravity.up, -1, 1))) < 1.0
