"""Lifting all instances of a frame in one pass: each instance's result must not depend on the others it is
lifted with, and mask crops (``perception.external.CroppedInstance``) must lift exactly like full masks."""
from dataclasses import fields, replace

import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.lifting import LiftingParams, lift_instances
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.observation import Observation
from spatial_vlm_ros.perception.base import Instance
from spatial_vlm_ros.perception.external import CroppedInstance, cropped_instances_from_mask, instances_from_mask
from spatial_vlm_ros.sim.analytic import CameraPose, random_tabletop, render

# noisy depth with edge holes and spilling masks: the outlier, cluster, fill and completion steps all act
SCENES = [render(random_tabletop(9, seed=seed, area=(0.8, 0.55), gap_m=0.02), CameraPose(),
                 noise=DepthNoiseModel(), edge_holes=0.3, mask_dilate_px=2, seed=seed) for seed in (3, 4)]


def lift(frame, instances, params=None):
    return lift_instances(frame.depth, frame.camera, instances, frame.gravity, params or LiftingParams(),
                          stamp=1.0, rgb=frame.rgb)


def assert_same(a: Observation, b: Observation):
    for f in fields(Observation):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.shape == y.shape and np.allclose(x, y, rtol=0.0, atol=1e-9), f.name
        else:
            assert x == y, f.name


@pytest.mark.parametrize("frame", SCENES)
def test_crops_lift_exactly_like_full_masks(frame):
    full = instances_from_mask(frame.mask, frame.ids, frame.labels)
    crops = cropped_instances_from_mask(frame.mask, frame.ids, frame.labels)
    assert [c.instance_id for c in crops] == [i.instance_id for i in full]
    for c, i in zip(crops, full):
        assert c.mask.shape != i.mask.shape and np.array_equal(c.full_mask(), i.mask)
    (obs_full, warn_full), (obs_crop, warn_crop) = lift(frame, full), lift(frame, crops)
    assert warn_full == warn_crop and len(obs_full) == len(obs_crop) == len(full)
    for a, b in zip(obs_full, obs_crop):
        assert_same(a, b)


@pytest.mark.parametrize("frame", SCENES)
def test_each_instance_lifts_as_if_it_were_alone(frame):
    """Only the rest-on-supports step (an object may rest on another) and the occlusion bands (pixels next to
    a nearer instance) couple instances: without them, every observation of a joint lift equals the one the
    instance gets alone. A hopeless instance in the middle (3 pixels) is skipped with its warning and changes
    nothing for the others."""
    params = LiftingParams(rest_snap_m=0.0, occluded_band_px=0)
    instances = cropped_instances_from_mask(frame.mask, frame.ids, frame.labels)
    tiny = np.zeros(frame.depth.shape, bool)
    tiny[5, 5:8] = True
    instances.insert(3, Instance(tiny, "speck", 1.0, 99))
    together, warnings = lift(frame, instances, params)
    assert len(warnings) == 1 and "'speck'" in warnings[0] and "skipped" in warnings[0]
    assert [o.instance_id for o in together] == [i.instance_id for i in instances if i.label != "speck"]
    for obs, inst in zip(together, [i for i in instances if i.label != "speck"]):
        alone, _ = lift(frame, [inst], params)
        assert len(alone) == 1
        assert_same(obs, alone[0])


def test_a_crop_that_is_not_tight_is_tightened():
    frame = SCENES[0]
    inst = cropped_instances_from_mask(frame.mask, frame.ids, frame.labels)[0]
    (r, c), (h, w) = inst.origin, inst.mask.shape
    padded = np.zeros((h + 4, w + 3), bool)
    padded[2:2 + h, 1:1 + w] = inst.mask
    loose = CroppedInstance(padded, inst.label, inst.score, inst.instance_id, origin=(r - 2, c - 1),
                            image_shape=inst.image_shape)
    (a,), _ = lift(frame, [inst])
    (b,), _ = lift(frame, [loose])
    assert_same(a, b)


def test_crops_outside_the_image_and_empty_crops():
    frame = SCENES[0]
    H, W = frame.depth.shape
    bad = CroppedInstance(np.ones((10, 10), bool), "box", 1.0, 1, origin=(H - 5, 0), image_shape=(H, W))
    needle = r"mask crop of instance 1 'box': expected a crop inside the 640x480 image \(camera_info\), got 10x10 at"
    with pytest.raises(InputError, match=needle):
        lift(frame, [bad])
    empty = CroppedInstance(np.zeros((4, 4), bool), "box", 1.0, 1, origin=(0, 0), image_shape=(H, W))
    obs, warnings = lift(frame, [empty])
    assert obs == [] and warnings == ["instance 1 'box': empty mask; skipped"]


@pytest.mark.parametrize("args, needle", [
    ((np.zeros((4, 4), np.uint8), [1, 2], ["a"]), "same length"),
    ((np.zeros((4, 4), np.uint8), [0], ["a"]), "id 0"),
    ((np.zeros((4, 4), np.uint8), [2, 2], ["a", "b"]), "repeated ids"),
    ((np.zeros((4, 4), np.float32), [1], ["a"]), "integers"),
    ((np.zeros((4, 4, 2), np.uint8), [1], ["a"]), "id image"),
])
def test_cropped_instances_check_like_instances_from_mask(args, needle):
    for split in (instances_from_mask, cropped_instances_from_mask):
        with pytest.raises(InputError, match=needle):
            split(*args)
    with pytest.raises(InputError, match="depth image"):
        cropped_instances_from_mask(np.zeros((4, 4), np.uint8), [1], ["a"], shape=(5, 4))


def test_cropped_instances_skip_absent_ids_and_keep_the_listed_order():
    m = np.zeros((20, 30), np.uint16)
    m[2:5, 3:9] = 7
    m[10:18, 20:22] = 3
    m[0, 29] = 9                                     # an id nobody listed
    out = cropped_instances_from_mask(m, [3, 5, 7], ["b", "absent", "a"], [0.5, 0.6, 0.7])
    assert [(i.instance_id, i.label, i.score, i.origin, i.mask.shape) for i in out] == \
        [(3, "b", 0.5, (10, 20), (8, 2)), (7, "a", 0.7, (2, 3), (3, 6))]
    assert all(i.mask.all() for i in out)
    assert cropped_instances_from_mask(np.zeros((3, 3), np.uint8), [1], ["a"]) == []


VARIANTS = [LiftingParams(), LiftingParams(erosion_px=2, mask_spill_px=1, interior_stride=2),
            LiftingParams(erosion_px=0, fill_silhouette=False, amodal="symmetric", amodal_points=False),
            LiftingParams(edge_tolerance_m=0.0, interior_stride=1, amodal="none")]


@pytest.mark.parametrize("params", VARIANTS)
def test_next_to_the_image_border_as_in_the_middle(params):
    """An instance a pixel from the image border is worked on in its rectangle grown by the erosion (the
    image border is no mask edge there); one far from it on its crop alone. Both must give the same
    observation: the same scene cut so that the instance comes 1 px from the top-left corner, the principal
    point moved with the cut."""
    from spatial_vlm_ros.core.camera import CameraModel
    frame = SCENES[1]
    # (the interior grid starts at the corner of the rectangle grown by the erosion, which a border 1 px
    # away clips when erosion_px > 1: another grid, another decimation)
    stride = 1 if params.erosion_px > 1 else params.interior_stride
    params = replace(params, rest_snap_m=0.0, interior_stride=stride)
    crops = cropped_instances_from_mask(frame.mask, frame.ids, frame.labels)
    cam = frame.camera
    inst = max((i for i in crops if i.origin[0] <= cam.cy and i.origin[1] <= cam.cx),   # (the principal point
               key=lambda i: min(i.origin))                                              # must stay inside)
    (r, c) = inst.origin
    assert min(r, c) > 5                                        # far from the border in the whole image
    r0, c0 = r - 1, c - 1
    cut = CameraModel.from_intrinsics(cam.fx, cam.fy, cam.cx - c0, cam.cy - r0, cam.width - c0, cam.height - r0)
    moved = CroppedInstance(inst.mask, inst.label, inst.score, inst.instance_id, origin=(1, 1),
                            image_shape=(cam.height - r0, cam.width - c0))
    (a,), _ = lift_instances(frame.depth, cam, [inst], frame.gravity, params, rgb=frame.rgb)
    (b,), _ = lift_instances(np.ascontiguousarray(frame.depth[r0:, c0:]), cut, [moved], frame.gravity, params,
                             rgb=np.ascontiguousarray(frame.rgb[r0:, c0:]))
    assert a.n_pixels == b.n_pixels and a.color_rgb == b.color_rgb
    assert a.bbox_2d == (b.bbox_2d[0] + c0, b.bbox_2d[1] + r0, b.bbox_2d[2] + c0, b.bbox_2d[3] + r0)
    for name in ("center", "box_min", "box_max", "points"):
        assert np.allclose(getattr(a, name), getattr(b, name), rtol=0.0, atol=1e-6), name


@pytest.mark.parametrize("params", VARIANTS)
def test_variants_lift_alone_as_together(params):
    frame = SCENES[0]
    params = replace(params, rest_snap_m=0.0, occluded_band_px=0)
    instances = cropped_instances_from_mask(frame.mask, frame.ids, frame.labels)
    together, _ = lift(frame, instances, params)
    full, _ = lift(frame, instances_from_mask(frame.mask, frame.ids, frame.labels), params)
    assert len(together) == len(full) == len(instances)
    for obs, other, inst in zip(together, full, instances):
        assert_same(obs, other)
        (alone,), _ = lift(frame, [inst], params)
        assert_same(obs, alone)
