"""Lifting on analytic scenes with known answers: visible-surface boxes, centres with and without the amodal
correction, outlier rejection, distortion, skip warnings and frame-level errors.

Poses (camera relative to the table centre): HIGH = 0.6 m up, 35 deg down, 0.9 m back (a typical tabletop
view; tops seen from above); STEEP = 0.9 m up, 50 deg down; LEVEL = 0.12 m up, level, yawed 20 deg (only the
fronts of most objects are seen); LOW = 0.2 m up, 8 deg down (tops seen at a grazing angle).
"""
from functools import lru_cache

import numpy as np
import pytest

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.colors import color_name
from spatial_vlm_ros.core.depth import decode_depth, encode_depth_mm
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.lifting import LiftingParams, lift_instances
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.perception.base import Instance
from spatial_vlm_ros.perception.external import instances_from_mask
from spatial_vlm_ros.sim.analytic import BoxObject, CameraPose, CylinderObject, random_tabletop, render, top_of

POSES = {
    "HIGH": CameraPose(),
    "STEEP": CameraPose(height=0.9, pitch_deg=50, distance=0.7),
    "LEVEL": CameraPose(height=0.12, pitch_deg=0, distance=1.0, yaw_deg=20),
    "LOW": CameraPose(height=0.2, pitch_deg=8, distance=1.0),
}
SEEDS = tuple(range(10))


@lru_cache(maxsize=None)
def scene(pose: str, seed: int, noisy: bool = False):
    noise = dict(noise=DepthNoiseModel(), edge_holes=0.3, mask_dilate_px=2, seed=seed) if noisy else {}
    return render(random_tabletop(8, seed=seed), POSES[pose], **noise)


def lifted(frame, params=None, gravity=None):
    obs, warnings = lift_instances(frame.depth, frame.camera, frame.instances(), gravity or frame.gravity,
                                   params or LiftingParams(), rgb=frame.rgb)
    return [(o, frame.truth(o.instance_id)) for o in obs], warnings


def visible_box_error(obs, truth) -> float:
    """Largest corner-coordinate difference (metres) between the lifted box and the visible-surface box."""
    return float(max(np.abs(obs.box_min - truth.visible_min_g).max(),
                     np.abs(obs.box_max - truth.visible_max_g).max()))


def centre_errors_mm(pose: str, amodal: str) -> np.ndarray:
    """Centre errors of fully visible objects within 1.5 m, noise-free, over the test seeds."""
    errors = []
    for seed in SEEDS:
        for o, t in lifted(scene(pose, seed), LiftingParams(amodal=amodal))[0]:
            if not (t.occluded or t.truncated) and t.distance <= 1.5:
                errors.append(np.linalg.norm(o.center - t.center_c) * 1000.0)
    return np.asarray(errors)


@pytest.mark.parametrize("pose", ["HIGH", "STEEP"])
def test_visible_surface_box_within_5mm_noise_free(pose):
    """Default parameters (no amodal correction), 10 seeds x 8 objects, objects within 1.5 m. Measured worst
    case of objects that are not occluded: HIGH 4.0 mm (56 objects), STEEP 3.0 mm (70). Occluded objects whose
    visible bottom is a sliver a few mm above the table can lose it to the support-plane rejection: 2 of 33
    occluded ones exceed 5 mm (5.0 and 16.5 mm); they are left out here."""
    errors = []
    for seed in SEEDS:
        pairs, warnings = lifted(scene(pose, seed), LiftingParams(amodal="none"))
        assert warnings == []
        errors += [visible_box_error(o, t) for o, t in pairs if t.distance <= 1.5 and not t.occluded]
    print(f"{pose}: visible-box error max {max(errors) * 1000:.1f} mm over {len(errors)} objects")
    assert len(errors) >= 40 and max(errors) < 0.005


def test_centre_error_seen_from_above_needs_no_amodal_correction():
    """Tops seen from above show each object's full depth. Centre error (mm) of fully visible objects within
    1.5 m, 10 seeds, noise-free, measured: HIGH mean 1.0, max 2.0; STEEP mean 0.7, max 1.9, with "none" and
    "auto" alike; "symmetric" wrongly deepens boxes that are wider than deep (max 24.0 / 23.9).
    With D435-like noise, holes and 2 px mask bleeding (not asserted here): mean 4.2, max 6.0 / 5.9."""
    for pose in ("HIGH", "STEEP"):
        none, auto, sym = (centre_errors_mm(pose, a) for a in ("none", "auto", "symmetric"))
        assert none.size >= 40
        np.testing.assert_allclose(auto, none)              # auto does not correct what it can see
        assert none.max() < 4.0 and none.mean() < 2.0
        assert sym.max() > 15.0                             # the blind correction would hurt here


def test_centre_error_level_view_amodal_correction():
    """Seen from the side only the front is visible, so the centre is pulled towards the camera.
    Measured centre error (mm), fully visible objects within 1.5 m, 10 seeds, noise-free:
    LEVEL: none mean 15.8, max 32.2 -> auto mean 3.5, max 13.6;
    LOW (tops at a grazing angle): none mean 7.8, max 30.8 -> auto mean 5.3, max 24.0.
    With noise, holes and mask bleeding (not asserted), mean/max: LEVEL 17.5/34.1 -> 6.3/11.4,
    LOW 11.4/34.2 -> 6.2/16.0."""
    for pose, auto_mean, auto_max in (("LEVEL", 5.0, 17.0), ("LOW", 7.0, 28.0)):
        none, auto = centre_errors_mm(pose, "none"), centre_errors_mm(pose, "auto")
        assert none.size >= 40
        assert none.mean() > auto.mean() + 2.0              # the uncorrected bias is real and reduced
        assert auto.mean() < auto_mean and auto.max() < auto_max


def test_noisy_depth_and_bleeding_masks_are_rejected():
    """D435-like noise, holes at depth edges and masks spilling 2 px over the object edges.
    Measured visible-box errors (8 objects within 1.5 m, HIGH, seed 0): 4.6-8.1 mm with the outlier rejection;
    without it (no erosion, MAD band, depth clusters, support rejection or percentiles) the table and floor
    seen through the spilled masks stretch the boxes by 85 mm to 2.6 m."""
    frame = scene("HIGH", 0, noisy=True)
    robust = [visible_box_error(o, t) for o, t in lifted(frame)[0] if t.distance <= 1.5]
    assert len(robust) >= 6 and max(robust) < 0.010
    naive = LiftingParams(erosion_px=0, mad_k=1e6, min_depth_band_m=1e6, cluster_gap_m=1e6,
                          box_percentiles=(0.0, 100.0))
    no_support = GravityFrame(frame.gravity.rotation, None, "static")
    raw = [visible_box_error(o, t) for o, t in lifted(frame, naive, no_support)[0] if t.distance <= 1.5]
    assert max(raw) > 0.05


def test_stacked_objects_keep_their_own_extent():
    base = BoxObject("base", (0.0, 0.0), (0.16, 0.16, 0.08), color=(40, 160, 50))
    top = CylinderObject("top", (0.0, 0.0), 0.04, 0.12, base_z=top_of(base), color=(210, 35, 35))
    frame = render([base, top], POSES["HIGH"])
    (ob, tb), (ot, tt) = lifted(frame)[0]
    assert abs(ob.box_max[2] - tb.box_max_g[2]) < 0.005 and abs(ob.box_min[2] - tb.box_min_g[2]) < 0.005
    assert abs(ot.box_min[2] - tt.box_min_g[2]) < 0.005     # not snapped down to the table
    assert abs(ot.size[2] - 0.12) < 0.005
    assert ot.color_name == "red" and ob.color_name == "green"


def test_observation_fields():
    frame = scene("HIGH", 1)
    params = LiftingParams(max_points=500)
    obs, _ = lift_instances(frame.depth, frame.camera, frame.instances(), frame.gravity, params, stamp=12.5,
                            rgb=frame.rgb)
    assert len(obs) == len(frame.objects)
    for o in obs:
        t = frame.truth(o.instance_id)
        assert o.label == t.label and o.score == 1.0 and o.stamp == 12.5
        if color_name(t.color) not in ("white", "gray", "black"):     # shading greys out the achromatic ones
            assert o.color_name == color_name(t.color), (t.label, o.color_rgb)
        v, u = np.nonzero(frame.mask == o.instance_id)
        assert o.bbox_2d == (u.min(), v.min(), u.max(), v.max())
        assert 0 < o.points.shape[0] <= 500 and o.points.shape[1] == 3
        assert o.n_pixels > 0.8 * t.n_pixels
        np.testing.assert_allclose(o.size, o.box_max - o.box_min)
        # The points are camera-frame surface points inside the box.
        pg = frame.gravity.to_gravity(o.points)
        assert np.mean(np.all((pg >= o.box_min - 0.003) & (pg <= o.box_max + 0.003), axis=1)) > 0.97


def test_distortion_is_honoured():
    """A strongly distorted lens (the renderer casts the lens's own rays): lifting with the right D stays within
    5 mm (measured max 1.7 mm); dropping D misplaces boxes near the image edges (measured up to 35 mm)."""
    D = [-0.35, 0.12, 0.0, 0.0, -0.02]
    camera = CameraModel.from_intrinsics(615.0, 615.0, 320.0, 240.0, 640, 480, D=D, frame_id="camera")
    frame = render(random_tabletop(6, seed=4, area=(1.0, 0.6)), POSES["HIGH"], camera=camera)
    pinhole = CameraModel.from_intrinsics(615.0, 615.0, 320.0, 240.0, 640, 480)
    instances = frame.instances()
    errors = {}
    for name, cam in (("distorted", camera), ("pinhole", pinhole)):
        obs, _ = lift_instances(frame.depth, cam, instances, frame.gravity, LiftingParams(amodal="none"))
        truths = [frame.truth(o.instance_id) for o in obs]
        errors[name] = [visible_box_error(o, t) for o, t in zip(obs, truths) if not t.occluded]
    assert len(errors["distorted"]) >= 4
    assert max(errors["distorted"]) < 0.005
    assert max(errors["pinhole"]) > 0.02


def test_millimetre_depth_path():
    frame = scene("HIGH", 2)
    depth = decode_depth(encode_depth_mm(frame.depth), "16UC1")
    obs, _ = lift_instances(depth, frame.camera, frame.instances(), frame.gravity, LiftingParams(amodal="none"))
    errors = [visible_box_error(o, frame.truth(o.instance_id)) for o in obs
              if frame.truth(o.instance_id).distance <= 1.5]
    assert max(errors) < 0.006                              # 1 mm quantisation on top of the 5 mm budget


def test_small_or_empty_instances_are_skipped_with_a_warning():
    frame = scene("HIGH", 0)
    tiny = np.zeros(frame.depth.shape, dtype=bool)
    tiny[240:243, 320:323] = True
    blind = np.zeros(frame.depth.shape, dtype=bool)
    blind[:5, :40] = True                                   # sky above the horizon: no depth
    depth = frame.depth.copy()
    depth[:5, :40] = np.nan
    instances = frame.instances()[:2] + [Instance(tiny, "crumb", 0.5, 41), Instance(blind, "ghost", 0.5, 42),
                                         Instance(np.zeros_like(tiny), "nothing", 0.5, 43)]
    obs, warnings = lift_instances(depth, frame.camera, instances, frame.gravity)
    assert [o.instance_id for o in obs] == [1, 2]
    assert len(warnings) == 3
    assert "41 'crumb'" in warnings[0] and "only 9 valid depth pixels" in warnings[0]
    assert "42 'ghost'" in warnings[1] and "only 0" in warnings[1]
    assert "empty mask" in warnings[2]


def test_frame_level_errors():
    frame = scene("HIGH", 0)
    inst = frame.instances()
    cam, grav = frame.camera, frame.gravity
    with pytest.raises(InputError, match="mask of instance 1 .* is 320x240"):
        lift_instances(frame.depth, cam, [Instance(inst[0].mask[::2, ::2], inst[0].label, 1.0, 1)], grav)
    with pytest.raises(InputError, match="no valid pixels"):
        lift_instances(np.full_like(frame.depth, np.nan), cam, inst, grav)
    with pytest.raises(InputError, match="no valid pixels"):
        lift_instances(np.zeros_like(frame.depth), cam, inst, grav)
    with pytest.raises(InputError, match="camera_info says 640x480"):
        lift_instances(frame.depth[:, :320], cam, inst, grav)
    with pytest.raises(InputError, match="decode_depth"):
        lift_instances(encode_depth_mm(frame.depth), cam, inst, grav)
    with pytest.raises(InputError, match="colour image is 320x480"):
        lift_instances(frame.depth, cam, inst, grav, rgb=frame.rgb[:, :320])
    with pytest.raises(InputError, match="amodal"):
        LiftingParams(amodal="guess")
    with pytest.raises(InputError, match="percentiles"):
        LiftingParams(box_percentiles=(50.0, 10.0))
    assert lift_instances(frame.depth, cam, [], grav) == ([], [])


def test_instances_from_mask():
    ids = np.zeros((4, 5), dtype=np.uint16)
    ids[0, :2] = 3
    ids[2:, 3:] = 7
    inst = instances_from_mask(ids, [3, 7, 9], ["mug", "bowl", "absent"], [0.9, 0.8, 0.7], shape=(4, 5))
    assert [(i.instance_id, i.label, i.score, int(i.mask.sum())) for i in inst] == [(3, "mug", 0.9, 2),
                                                                                   (7, "bowl", 0.8, 4)]
    assert [i.score for i in instances_from_mask(ids, [3], ["mug"], [])] == [1.0]
    with pytest.raises(InputError, match="5x4 but the depth image is 6x4"):
        instances_from_mask(ids, [3], ["mug"], None, shape=(4, 6))
    with pytest.raises(InputError, match="same length"):
        instances_from_mask(ids, [3, 7], ["mug"], None)
    with pytest.raises(InputError, match="id 0"):
        instances_from_mask(ids, [0], ["floor"], None)
    with pytest.raises(InputError, match="repeated"):
        instances_from_mask(ids, [3, 3], ["mug", "cup"], None)
    with pytest.raises(InputError, match="integers"):
        instances_from_mask(ids.astype(np.float32), [3], ["mug"], None)
