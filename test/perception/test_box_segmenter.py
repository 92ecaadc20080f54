"""The depth box segmenter on analytic scenes with known masks: box-derived masks against the true ones
(IoU), an object in front of a bigger one, one standing on another, boxes at and beyond the image border."""
import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.perception.box_segmenter import DepthBoxParams, DepthBoxSegmenter, box_pixels
from spatial_vlm_ros.sim import analytic
from spatial_vlm_ros.sim.detections import DetectionJitter, detections_from_mask

CAMERA = analytic.default_camera(320, 240)


def _iou(a, b):
    return np.count_nonzero(a & b) / max(np.count_nonzero(a | b), 1)


def _segment(frame, boxes=None, params=None):
    seg = DepthBoxSegmenter(params or DepthBoxParams())
    boxes = detections_from_mask(frame.mask, frame.ids, frame.labels) if boxes is None else boxes
    return seg, boxes, seg.segment(frame.rgb, frame.depth, frame.camera, frame.gravity, boxes)


def _by_label(instances):
    return {inst.label: inst for inst in instances}


def test_masks_from_boxes_match_the_true_masks_on_a_noisy_scene():
    frame = analytic.render(analytic.random_tabletop(8, seed=3), camera=CAMERA, noise=DepthNoiseModel(),
                            edge_holes=0.3, seed=3)
    seg, boxes, found = _segment(frame)
    assert len(found) == len(boxes) == 8 and not seg.warnings
    ious = [_iou(inst.mask, frame.mask == int(boxes[inst.instance_id - 1].id)) for inst in found]
    assert min(ious) > 0.75 and np.median(ious) > 0.85, ious
    owned = np.sum([inst.mask for inst in found], axis=0)
    assert owned.max() <= 1                                   # a pixel belongs to at most one box


def test_an_object_in_front_of_a_bigger_one_gets_its_own_mask():
    big = analytic.BoxObject("box", (0.0, 0.10), (0.30, 0.12, 0.25), color=(200, 170, 120))
    mug = analytic.CylinderObject("mug", (0.02, -0.04), 0.04, 0.10, color=(240, 240, 240))
    frame = analytic.render([big, mug], camera=CAMERA, noise=DepthNoiseModel(), seed=1)
    boxes = detections_from_mask(frame.mask, frame.ids, frame.labels)
    u0, v0, u1, v1 = boxes[1].corners()
    U0, V0, U1, V1 = boxes[0].corners()
    assert u0 > U0 and u1 < U1 and v0 > V0                      # the mug's box lies inside the big box's
    _, _, found = _segment(frame, boxes)
    got = _by_label(found)
    assert set(got) == {"box", "mug"}
    assert _iou(got["mug"].mask, frame.mask == 2) > 0.85
    assert _iou(got["box"].mask, frame.mask == 1) > 0.85
    assert not np.any(got["mug"].mask & got["box"].mask)


def test_an_object_standing_on_another_is_separated():
    base = analytic.BoxObject("box", (0.0, 0.05), (0.16, 0.16, 0.10), color=(200, 150, 90))
    mug = analytic.CylinderObject("mug", (0.0, 0.05), 0.035, 0.09, base_z=analytic.top_of(base),
                                  color=(230, 230, 235))
    frame = analytic.render([base, mug], camera=CAMERA, noise=DepthNoiseModel(), seed=2)
    _, _, found = _segment(frame)
    got = _by_label(found)
    assert _iou(got["mug"].mask, frame.mask == 2) > 0.85
    assert _iou(got["box"].mask, frame.mask == 1) > 0.85


def test_jittered_boxes_still_find_every_object():
    frame = analytic.render(analytic.random_tabletop(6, seed=5), camera=CAMERA, noise=DepthNoiseModel(), seed=5)
    boxes = detections_from_mask(frame.mask, frame.ids, frame.labels, jitter=DetectionJitter(2.0), seed=1)
    _, _, found = _segment(frame, boxes)
    assert len(found) == 6
    ious = [_iou(inst.mask, frame.mask == int(boxes[inst.instance_id - 1].id)) for inst in found]
    assert np.median(ious) > 0.8, ious


def test_boxes_partly_or_wholly_outside_the_image():
    mug = analytic.CylinderObject("mug", (-0.05, -0.1), 0.04, 0.10)
    frame = analytic.render([mug], camera=CAMERA, seed=7)
    b = detections_from_mask(frame.mask, frame.ids, frame.labels)[0]
    u0, v0, u1, v1 = b.corners()
    partly = Detection2D.from_corners(b.label, 1.0, u0 - 400.0, v0, u1, v1 + 300.0)   # past two edges, on table
    outside = Detection2D.from_corners("ghost", 1.0, 400.0, 10.0, 450.0, 50.0)        # right of a 320 px image
    seg, _, found = _segment(frame, [partly, outside])
    assert [inst.label for inst in found] == [b.label]
    assert _iou(found[0].mask, frame.mask == int(b.id)) > 0.8
    assert any("ghost" in w and "outside" in w for w in seg.warnings)
    assert box_pixels(outside, 320, 240) is None
    assert box_pixels(partly, 320, 240)[0] == 0


def test_no_boxes_and_bad_sizes():
    frame = analytic.render(analytic.random_tabletop(2, seed=1), camera=CAMERA, seed=1)
    seg = DepthBoxSegmenter()
    assert seg.segment(frame.rgb, frame.depth, CAMERA, frame.gravity, []) == []
    with pytest.raises(InputError, match="depth image"):
        seg.segment(frame.rgb, frame.depth[:100], CAMERA, frame.gravity, [])
    with pytest.raises(InputError, match="containment"):
        DepthBoxParams(containment=0.0)


def test_box_over_empty_table_is_skipped_with_a_reason():
    frame = analytic.render(analytic.random_tabletop(1, seed=2), camera=CAMERA, seed=2)
    table = np.argwhere(frame.table_mask & (frame.mask == 0))
    v, u = table[len(table) // 2]
    empty = Detection2D("nothing", 0.9, float(u), float(v), 6.0, 6.0)
    seg, _, found = _segment(frame, [empty])
    assert found == [] and "no object found" in seg.warnings[0]


def test_without_a_support_plane_the_segmenter_fits_one():
    """When gravity is only assumed from a level camera (no plane found upstream) but the camera looks down
    35 deg, the segmenter fits the table itself and still finds every object."""
    from spatial_vlm_ros.core.gravity_frame import GravityFrame
    frame = analytic.render(analytic.random_tabletop(5, seed=4), camera=CAMERA, noise=DepthNoiseModel(), seed=4)
    boxes = detections_from_mask(frame.mask, frame.ids, frame.labels)
    seg = DepthBoxSegmenter()
    found = seg.segment(frame.rgb, frame.depth, CAMERA, GravityFrame.camera_default(), boxes)
    assert len(found) == 5
    ious = sorted(_iou(inst.mask, frame.mask == int(boxes[inst.instance_id - 1].id)) for inst in found)
    assert ious[2] > 0.9, ious                              # the larger, unoccluded objects


def test_a_wide_stereo_shadow_inside_the_box_joins_the_object_behind_the_occluder():
    """A run without depth between a box's pixels and a nearer surface joins that box when it is short
    (max_run) or when the nearer surface lies inside the box (an object mostly hidden in the shadow)."""
    from spatial_vlm_ros.perception.box_segmenter import _shadow_owner
    zf = np.full((4, 70), np.nan, np.float32)
    zf[:, :5] = 1.0                                           # the object's visible sliver (box 0)
    zf[:, 45:] = 0.8                                          # a nearer occluder, 40 px to the right
    valid = np.isfinite(zf)
    owner = np.where(valid & (zf > 0.9), 0, -1).astype(np.int16)
    inside = _shadow_owner(zf, valid, owner, 25, 0.02, np.array([[0, 0, 47, 3]]), 2)
    assert (inside[:, 5:45] == 0).all() and (inside[:, 45:] == -1).all()
    assert (_shadow_owner(zf, valid, owner, 25, 0.02) == -1).all()          # 40 px > max_run, no boxes
    short_box = _shadow_owner(zf, valid, owner, 25, 0.02, np.array([[0, 0, 30, 3]]), 2)
    assert (short_box == -1).all()                            # the occluder lies beyond the box: not joined


def test_low_pixels_closed_off_by_the_object_and_occluders_join_it():
    """A plate's flat inside where an occluder hides one side of the rim: enclosed low pixels join the mask;
    table reaching the box border does not."""
    from spatial_vlm_ros.perception.box_segmenter import _enclosed_low, _spans
    own = np.zeros((30, 30), bool)
    own[:5, :20] = own[25:, :20] = own[:, :5] = True          # rim: top, bottom, left
    own[10, 19] = True                                        # one rim pixel on the right, row 10
    occluder = np.zeros_like(own)
    occluder[:, 20:] = True                                   # a nearer object covers the right side
    low = ~own & ~occluder
    rows, cols = _spans(own)
    got = _enclosed_low(rows, cols, low)
    assert got[5:25, 5:19].all() and not (got & (own | occluder)).any()
    assert (rows & cols & low).sum() < got.sum()              # more than the row-and-column rule alone
    open_low = ~own                                           # no occluder: the region reaches the border
    assert (_enclosed_low(rows, cols, open_low) == (rows & cols & open_low)).all()
