"""Detector ``boxes``: checks of the incoming 2D detections, the simulator's ground-truth boxes, and the
whole pipeline with boxes only (no masks) on an analytic scene."""
import math

import numpy as np
import pytest

from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D, Frame
from spatial_vlm_ros.core.spatial_queries import SpatialQueries
from spatial_vlm_ros.perception.boxes import BoxesDetector, BoxesParams, check_detections
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig
from spatial_vlm_ros.sim import analytic
from spatial_vlm_ros.sim.detections import DetectionJitter, detections_from_mask

OBJECTS = [
    analytic.BoxObject("box", (-0.22, 0.0), (0.10, 0.10, 0.16), color=(210, 35, 35)),
    analytic.CylinderObject("mug", (0.18, 0.06), 0.04, 0.10, color=(40, 70, 210)),
    analytic.BoxObject("book", (0.0, 0.20), (0.20, 0.14, 0.05), color=(35, 160, 50)),
]
SCENE = analytic.render(OBJECTS, camera=analytic.default_camera(320, 240))
BOXES = detections_from_mask(SCENE.mask, SCENE.ids, SCENE.labels)


def _frame(detections, stamp=1.0):
    return Frame(SCENE.rgb, encode_depth_mm(SCENE.depth), "16UC1", SCENE.camera, stamp, detections=detections)


def test_ground_truth_boxes_are_tight_and_jitter_is_seeded():
    for b in BOXES:
        rows, cols = np.nonzero(SCENE.mask == int(b.id))
        assert b.corners() == (cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5, rows.max() + 0.5)
        assert b.score == 1.0
    j1 = detections_from_mask(SCENE.mask, SCENE.ids, SCENE.labels, jitter=DetectionJitter(3.0), seed=4)
    j2 = detections_from_mask(SCENE.mask, SCENE.ids, SCENE.labels, jitter=DetectionJitter(3.0), seed=4)
    assert j1 == j2 and j1 != BOXES
    assert all(0.0 <= b.score <= 1.0 and b.size_x >= 1.0 for b in j1)
    with pytest.raises(InputError):
        detections_from_mask(SCENE.mask, [1, 2], ["a"])


def test_bad_detections_are_skipped_or_clipped_with_warnings():
    good = BOXES[0]
    bad = [Detection2D("nan score", math.nan, 50, 50, 10, 10),
           Detection2D("negative score", -0.1, 50, 50, 10, 10),
           Detection2D("inf score", math.inf, 50, 50, 10, 10),
           Detection2D("zero size", 0.9, 50, 50, 0, 10),
           Detection2D("negative size", 0.9, 50, 50, 10, -3),
           Detection2D("nan size", 0.9, 50, 50, math.nan, 10),
           Detection2D("outside", 0.9, -100, 50, 20, 20),
           Detection2D("border", 0.9, 315, 235, 20, 20)]
    kept, warnings = check_detections(bad + [good], 320, 240)
    assert [b.label for _, b in kept] == ["border", good.label]
    assert [i for i, _ in kept] == [7, 8]
    assert kept[0][1].corners() == (305.0, 225.0, 319.5, 239.5)            # clipped to the image
    assert len(warnings) == 8 and "clipped" in warnings[-1]
    for label, needle in (("nan score", "score"), ("zero size", "not positive"), ("nan size", "non-finite"),
                          ("outside", "outside")):
        assert any(label in w and needle in w for w in warnings), label


def test_detector_keeps_labels_drops_low_scores_and_accepts_no_detections():
    det = BoxesDetector(BoxesParams(min_score=0.5))
    depth = SCENE.depth
    assert det.detect(SCENE.rgb, depth, SCENE.camera, SCENE.gravity, []) == []
    assert det.detect(SCENE.rgb, depth, SCENE.camera, SCENE.gravity, None) == []
    boxes = [Detection2D("flux capacitor", 0.9, *_geom(BOXES[0])), Detection2D("weak", 0.2, *_geom(BOXES[1])),
             Detection2D("nan", math.nan, *_geom(BOXES[2]))]
    found = det.detect(SCENE.rgb, depth, SCENE.camera, SCENE.gravity, boxes)
    assert [(i.label, i.instance_id) for i in found] == [("flux capacitor", 1)]
    assert np.count_nonzero(found[0].mask & (SCENE.mask == int(BOXES[0].id))) > 0.8 * found[0].mask.sum()
    assert any("nan" in w for w in det.warnings)


def _geom(b):
    return b.center_x, b.center_y, b.size_x, b.size_y


def test_pipeline_with_boxes_only_finds_the_objects_and_answers():
    pipe = FramePipeline(PipelineConfig(detector="boxes"))
    result = pipe.process(_frame(BOXES))
    assert sorted(o.label for o in result.objects) == ["book", "box", "mug"]
    for obj in result.objects:
        truth = next(t for t in SCENE.objects if t.label == obj.label)
        assert np.linalg.norm(obj.center - truth.center_c) < 0.015, obj.label
        assert np.allclose(obj.size, truth.size, atol=0.015), obj.label
    queries = SpatialQueries(pipe.memory, pipe.config.noise)
    assert queries.get_relation("box", "left_of", "mug").holds
    assert not queries.get_relation("mug", "left_of", "box").holds
    assert queries.get_relation("book", "behind", "mug").holds


def test_pipeline_without_detections_is_an_input_error_and_keeps_the_memory():
    pipe = FramePipeline(PipelineConfig(detector="boxes"))
    pipe.process(_frame(BOXES))
    before = pipe.memory.snapshot()
    with pytest.raises(InputError, match="needs 2D detections with every frame"):
        pipe.process(_frame(None, stamp=2.0))
    assert pipe.memory.snapshot() is before
    result = pipe.process(_frame([], stamp=3.0))                            # zero detections: fine
    assert result.observations == []
