"""Lifting on analytic scenes with known answers: visible-surface boxes, centers with and without the amodal
correction, outlier rejection, distortion, skip warnings and frame-level errors.

Poses (camera relative to the table center): HIGH = 0.6 m up, 35 deg down, 0.9 m back (a typical tabletop
view; tops seen from above); STEEP = 0.9 m up, 50 deg down; LEVEL = 0.12 m up, level, yawed 20 deg (only the
fronts of most objects are seen); LOW = 0.2 m up, 8 deg down (tops seen at a grazing angle).
"""
from functools import cache

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


@cache
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


def center_errors_mm(pose: str, amodal: str) -> np.ndarray:
    """Center errors of fully visible objects within 1.5 m, noise-free, over the test seeds."""
    errors = []
    for seed in SEEDS:
        for o, t in lifted(scene(pose, seed), LiftingParams(amodal=amodal))[0]:
            if not (t.occluded or t.truncated) and t.distance <= 1.5:
                errors.append(np.linalg.norm(o.center - t.center_c) * 1000.0)
    return np.asarray(errors)


@pytest.mark.parametrize("pose", ["HIGH", "STEEP"])
def test_visible_surface_box_within_5mm_noise_free(pose):
    """Default parameters (no amodal correction), 10 seeds x 8 objects, objects within 1.5 m. Measured worst
    case of objects that are not occluded: HIGH 3.6 mm (56 objects), STEEP 2.4 mm (70); the box extends half a
    pixel beyond the outermost pixel centers, as the silhouette does. Noise-free depth measures no noise, so
    nothing is trimmed. Occluded objects whose visible bottom is a sliver a few mm above the table are left
    out here (their bottom goes onto the table, see ``test_a_hidden_bottom_rests_on_the_support``)."""
    errors = []
    for seed in SEEDS:
        pairs, warnings = lifted(scene(pose, seed), LiftingParams(amodal="none"))
        assert warnings == []
        errors += [visible_box_error(o, t) for o, t in pairs if t.distance <= 1.5 and not t.occluded]
    print(f"{pose}: visible-box error max {max(errors) * 1000:.1f} mm over {len(errors)} objects")
    assert len(errors) >= 40 and max(errors) < 0.005


def test_center_error_seen_from_above_amodal_completion_keeps_what_is_seen():
    """Tops seen from above show each object's full depth, so the completion by symmetry ("auto") must not
    make things worse. Center error (mm) of fully visible objects within 1.5 m, 10 seeds, noise-free,
    measured mean/max: HIGH none 0.9/2.0, auto 0.9/2.0; STEEP none 0.6/1.3, auto 0.7/1.3; "symmetric" wrongly
    deepens boxes that are wider than deep (4.4/24.3, 4.1/24.2). With D435-like noise, holes and 2 px mask
    bleeding (not asserted here): HIGH none 2.9/4.7, auto 3.0/14.2; STEEP none 3.1/12.0, auto 2.9/12.0."""
    for pose in ("HIGH", "STEEP"):
        none, auto, sym = (center_errors_mm(pose, a) for a in ("none", "auto", "symmetric"))
        assert none.size >= 40
        assert none.max() < 4.0 and none.mean() < 2.0
        assert auto.max() < 4.0 and auto.mean() < none.mean() + 0.3   # completion does not hurt what is seen
        assert sym.max() > 15.0                             # the blind correction would hurt here


def test_center_error_level_view_amodal_correction():
    """Seen from the side only the front is visible, so the center is pulled towards the camera.
    Measured center error (mm), fully visible objects within 1.5 m, 10 seeds, noise-free, mean/max:
    LEVEL: none 15.7/32.2 -> auto 3.5/14.4; LOW (tops at a grazing angle): none 7.4/29.6 -> auto 5.7/25.1.
    With noise, holes and mask bleeding (not asserted): LEVEL 16.7/32.6 -> 5.5/19.1, LOW 9.7/33.2 -> 7.9/27.1."""
    for pose, gain, auto_mean, auto_max in (("LEVEL", 10.0, 5.0, 17.0), ("LOW", 1.0, 7.0, 28.0)):
        none, auto = center_errors_mm(pose, "none"), center_errors_mm(pose, "auto")
        assert none.size >= 40
        assert none.mean() > auto.mean() + gain             # the uncorrected bias is real and reduced
        assert auto.mean() < auto_mean and auto.max() < auto_max


def test_noisy_depth_and_bleeding_masks_are_rejected():
    """D435-like noise, holes at depth edges and masks spilling 2 px over the object edges.
    Measured visible-box errors (8 objects within 1.5 m, HIGH, seed 0): 2.1-4.4 mm with the outlier rejection
    (over 10 seeds, not occluded: HIGH mean 4.0, max 8.2 mm; STEEP 5.7, 26.2, see
    ``test_strays_beyond_a_gap_are_ignored``); without it (no erosion, MAD band, depth clusters, support
    rejection or percentiles) the table and floor seen through the spilled masks stretch the boxes by 85 mm
    to 2.6 m."""
    frame = scene("HIGH", 0, noisy=True)
    robust = [visible_box_error(o, t) for o, t in lifted(frame, LiftingParams(amodal="none"))[0]
              if t.distance <= 1.5]
    assert len(robust) >= 6 and max(robust) < 0.010
    naive = LiftingParams(erosion_px=0, mad_k=1e6, min_depth_band_m=1e6, cluster_gap_m=1e6,
                          box_percentiles=(0.0, 100.0))
    no_support = GravityFrame(frame.gravity.rotation, None, "static")
    raw = [visible_box_error(o, t) for o, t in lifted(frame, naive, no_support)[0] if t.distance <= 1.5]
    assert max(raw) > 0.05


def test_strays_beyond_a_gap_are_ignored():
    """Masks spilling 2 px onto objects behind (STEEP view, tall objects in front of others) bring a few
    points of those objects that pass the depth tests. Cut off from the object by an empty stretch, they are
    ignored. Measured visible-box error, 10 seeds, objects not occluded, mean/max: 5.7/26.2 mm, without the
    gap test 6.4/52.9 mm."""
    def errors(**kw):
        out = []
        for seed in SEEDS:
            out += [visible_box_error(o, t) for o, t in
                    lifted(scene("STEEP", seed, noisy=True), LiftingParams(amodal="none", **kw))[0]
                    if t.distance <= 1.5 and not t.occluded]
        return np.asarray(out)
    robust, naive = errors(), errors(detached_fraction=0.0)
    assert robust.max() < 0.035 and naive.max() > 0.045


def test_silhouette_pixels_without_depth_still_count():
    """The right quarter of an object's mask has no depth (a stereo shadow next to a nearer object): the box
    still spans the mask, at the depth of the nearest pixels in the same rows. Measured width error against
    the visible box: +6.6 mm with the fill (the nearer depth of the front bulge), -16.7 mm without."""
    frame = scene("HIGH", 0)
    obs_t = [(o, t) for o, t in lifted(frame, LiftingParams(amodal="none"))[0] if not t.occluded]
    o, t = min(obs_t, key=lambda ot: ot[1].distance)
    mask = frame.mask == o.instance_id
    cols = np.flatnonzero(mask.any(axis=0))
    shadow = np.zeros_like(mask)
    shadow[:, cols[int(0.75 * cols.size):]] = True
    depth = np.where(mask & shadow, np.nan, frame.depth).astype(np.float32)
    inst = [i for i in frame.instances() if i.instance_id == o.instance_id]
    width = t.visible_max_g[0] - t.visible_min_g[0]
    for fill, low, high in ((True, -0.005, 0.010), (False, -1.0, -0.010)):
        (lifted_obs,), _ = lift_instances(depth, frame.camera, inst, frame.gravity,
                                          LiftingParams(amodal="none", fill_silhouette=fill))
        assert low < lifted_obs.size[0] - width < high, fill


def test_a_hidden_bottom_rests_on_the_support():
    """A can whose lower 5 cm are hidden behind a low wall in front: its box goes down to the table, the
    wall's own bottom is untouched. Without ``rest_snap_m`` the can floats 51 mm above the table."""
    objects = [BoxObject("wall", (0.0, -0.12), (0.3, 0.04, 0.12), color=(40, 160, 50)),
               CylinderObject("can", (0.0, 0.02), 0.04, 0.2, color=(210, 35, 35))]
    frame = render(objects, POSES["HIGH"])
    for rest, gap_low, gap_high in ((0.06, -0.003, 0.003), (0.0, 0.04, 0.06)):
        pairs = {t.label: (o, t) for o, t in lifted(frame, LiftingParams(rest_snap_m=rest))[0]}
        o, t = pairs["can"]
        assert t.occluded and gap_low < o.box_min[2] - t.box_min_g[2] < gap_high
        o, t = pairs["wall"]
        assert abs(o.box_min[2] - t.box_min_g[2]) < 0.003


def test_depth_noise_does_not_inflate_the_box():
    """A flat box (3 cm thick) and a cylinder at ~1 m with strong depth noise (sigma 7 mm at 1 m), 10 seeds.
    Each point is moved inwards by its own noise, more on flat tops where many points lie on the extreme.
    Measured mean errors (top, width), mm: book +1.7/+0.9, cylinder +1.0/+0.3; untrimmed +3.7/+3.4 and
    +2.7/+5.2."""
    objects = [BoxObject("book", (0.0, 0.0), (0.2, 0.14, 0.03), color=(40, 160, 50)),
               CylinderObject("can", (0.2, 0.05), 0.04, 0.08, color=(210, 35, 35))]

    def mean_errors(**kw):
        errs = []
        for seed in range(10):
            frame = render(objects, POSES["HIGH"], noise=DepthNoiseModel(sigma0=0.001, k=0.006), seed=seed)
            for o, t in lifted(frame, LiftingParams(amodal="none", **kw))[0]:
                errs.append([o.box_max[2] - t.box_max_g[2], o.size[0] - t.size[0]])
        return np.mean(errs, axis=0)
    trimmed, untrimmed = mean_errors(), mean_errors(noise_trim_sigmas=0.0)
    assert np.all(np.abs(trimmed) < 0.002)
    assert np.all(untrimmed > trimmed + 0.0015)


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
    with pytest.raises(InputError, match=r"mask of instance 1 '.*': expected 640x480 \(camera_info\), got 320x240"):
        lift_instances(frame.depth, cam, [Instance(inst[0].mask[::2, ::2], inst[0].label, 1.0, 1)], grav)
    with pytest.raises(InputError, match="no valid pixels"):
        lift_instances(np.full_like(frame.depth, np.nan), cam, inst, grav)
    with pytest.raises(InputError, match="no valid pixels"):
        lift_instances(np.zeros_like(frame.depth), cam, inst, grav)
    with pytest.raises(InputError, match=r"depth image: expected 640x480 \(camera_info\), got 320x480"):
        lift_instances(frame.depth[:, :320], cam, inst, grav)
    with pytest.raises(InputError, match="decode_depth"):
        lift_instances(encode_depth_mm(frame.depth), cam, inst, grav)
    with pytest.raises(InputError, match=r"color image: expected 640x480 \(camera_info\), got 320x480"):
        lift_instances(frame.depth, cam, inst, grav, rgb=frame.rgb[:, :320])
    with pytest.raises(InputError, match="amodal"):
        LiftingParams(amodal="guess")
    with pytest.raises(InputError, match="percentiles"):
        LiftingParams(box_percentiles=(50.0, 10.0))
    with pytest.raises(InputError, match="interior_stride"):
        LiftingParams(interior_stride=0)
    with pytest.raises(InputError, match="amodal_band"):
        LiftingParams(amodal_band=0.6)
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


@pytest.mark.parametrize("pose", ["HIGH", "STEEP", "LOW"])
@pytest.mark.parametrize("gap", [0.03, 0.06])
def test_a_seen_bottom_above_a_surface_is_not_put_down(pose, gap):
    """Objects held ``gap`` above the table, and a can held above a box: the table (the box top) is seen
    through the gap under their lower rims, so their bottoms stay where they are (within noise) and the can
    is not on top of the box. The resting box still stands on the table. Before bottoms were checked, every
    one of them was put down (``rest_snap_m`` = 6 cm). The table is large: seen from LOW, the rays through
    the gap above the box meet the table 1.3 m behind it (where they meet nothing within range, nothing
    tells the gap from a sensor dropout, and the bottom counts as hidden)."""
    from spatial_vlm_ros.core.memory import SceneMemory
    from spatial_vlm_ros.core.relations import evaluate

    base = BoxObject("base", (0.15, 0.05), (0.16, 0.16, 0.06), color=(40, 160, 50))
    objects = [BoxObject("box", (-0.2, 0.0), (0.1, 0.08, 0.1), base_z=gap),
               CylinderObject("cyl", (-0.02, -0.05), 0.04, 0.12, base_z=gap, color=(200, 200, 40)),
               base, CylinderObject("can", (0.15, 0.05), 0.035, 0.1, base_z=top_of(base) + gap)]
    for seed in range(2):
        frame = render(objects, POSES[pose], table_size=(3.0, 3.0), noise=DepthNoiseModel(), seed=seed)
        pairs, warnings = lifted(frame)
        assert not warnings and len(pairs) == 4
        for o, t in pairs:
            assert abs(o.box_min[2] - t.box_min_g[2]) < 0.006, (pose, gap, t.label, o.box_min[2], t.box_min_g[2])
        mem = SceneMemory()
        mem.update([o for o, _ in pairs], 0.0, frame.gravity)
        scene_ = mem.snapshot()
        can, box = scene_.by_id("can_1"), scene_.by_id("base_1")
        assert not evaluate("on_top_of", can, box, scene_).holds


def test_seen_bottom_check_keeps_resting_and_occluded_objects_down():
    """Resting objects in random scenes (some hidden behind others) keep their bottoms on the table: the
    check finds no gap under them, so the rest rule is unchanged for them."""
    for seed in range(4):
        frame = scene("HIGH", seed, noisy=True)
        for o, t in lifted(frame)[0]:
            if t.distance <= 1.5 and not t.truncated and t.box_min_g[2] < 1e-6:
                assert abs(o.box_min[2] - t.box_min_g[2]) < 0.006, (seed, t.label)


def test_undercut_slope_tells_a_rounded_bottom_from_an_upright_side():
    """Points on ten vertical lines (azimuths 0.01 rad apart) from 0 to 5 cm above the box bottom, 1 m from
    the camera: an upright side keeps its horizontal range (slope 0), a surface receding under the object
    (a ball below its equator) gains range going down, a part leaning out towards the camera loses it."""
    from spatial_vlm_ros.core.lifting.support import _undercut_slopes

    h, azimuth = np.meshgrid(np.linspace(0.0, 0.05, 21), 0.01 * np.arange(10), indexing="ij")
    h, azimuth = h.ravel(), azimuth.ravel()
    bottom, top, off = np.array([0.0]), np.array([0.1]), np.array([0, h.size])
    for lean, expected in ((0.0, 0.0), (0.5, 0.5), (-0.4, -0.4)):
        rng = 1.0 + lean * (0.05 - h)
        pts_g = np.stack([rng * np.sin(azimuth), rng * np.cos(azimuth), h]).astype(np.float32)
        slope = _undercut_slopes(pts_g, off, bottom, top, 0.005)
        assert slope[0] == pytest.approx(expected, abs=1e-3), lean
    line = pts_g[:, azimuth == 0.0]                                          # one vertical line: no verdict
    assert _undercut_slopes(line, np.array([0, line.shape[1]]), bottom, top, 0.005)[0] == np.inf


def test_a_rounded_hidden_bottom_far_above_the_table_still_rests_on_it():
    """A large ball seen from above shows nothing of its lowest part: its box bottom comes out 6.5 cm above
    the table, beyond ``rest_snap_m``. Its lowest visible surface recedes under it (positive undercut
    slope), so the bottom rests on the table when within ``rest_snap_rounded_fraction`` of the visible
    height; an upright side as far up stays (its bottom is not rounded away), and so does the ball with
    the fraction 0 (only ``rest_snap_m``)."""
    from types import SimpleNamespace

    from spatial_vlm_ros.core.lifting.support import _snap_to_support

    camera = CameraModel.from_camera_info_fields(64, 48, [50.0, 0, 32, 0, 50.0, 24, 0, 0, 1], [], "plumb_bob", "c")
    gravity = GravityFrame.camera_default()
    h, azimuth = np.meshgrid(np.linspace(0.065, 0.2, 28), 0.01 * np.arange(10), indexing="ij")
    h, azimuth = h.ravel(), azimuth.ravel()
    sels = [SimpleNamespace(rim_cols=None, rim_rows=None)]               # no rim readings: bottom hidden
    for lean, fraction, rests in ((0.5, 0.6, True), (0.0, 0.6, False), (0.5, 0.0, False), (0.5, 0.4, False)):
        rng = 1.0 + lean * np.clip(0.095 - h, 0.0, None)                  # recedes below 9.5 cm (or not)
        pts_g = np.stack([rng * np.sin(azimuth), rng * np.cos(azimuth), h]).astype(np.float32)
        bmin, bmax = np.array([[-0.1, 0.9, 0.065]]), np.array([[0.1, 1.1, 0.2]])
        p = LiftingParams(rest_snap_rounded_fraction=fraction)
        _snap_to_support(bmin, bmax, 0.0, np.array([0.005]), np.array([0.001]), np.array([1.0]), sels,
                         np.zeros((48, 64), np.float32), camera, gravity, pts_g, np.array([0, h.size]), p)
        assert bmin[0, 2] == (0.0 if rests else 0.065), (lean, fraction)
    with pytest.raises(InputError, match="rest_snap_rounded_fraction"):
        LiftingParams(rest_snap_rounded_fraction=-0.1)


def test_a_stray_cluster_is_cut_off_wherever_the_histogram_bins_fall():
    """Three strays 1.8 cm above a surface sampled every 2 mm are cut off (a 1.5 cm gap) whatever the
    offset of the points (the bins' alignment); one bin 1.5 cm wide found them only at some offsets. A
    stretch narrower than the gap cuts nothing."""
    from spatial_vlm_ros.core.lifting.box import _detached_counts

    found = []
    for shift in np.linspace(0.0, 0.015, 16):
        for stray_gap, expected in ((0.018, 3), (0.012, 0)):
            z = np.concatenate([np.arange(0.0, 0.1, 0.002), 0.098 + stray_gap + np.array([0.0, 0.001, 0.002])])
            pts = np.stack([np.zeros_like(z), np.zeros_like(z), z + shift]).astype(np.float32)
            counts = _detached_counts(pts, np.zeros(z.size, np.intp), np.array([0, z.size]), np.array([0.015]),
                                      np.array([5]))
            found.append(int(counts[2, 0, 0]) == expected)
            assert counts[2, 0, 1] == 0 and not counts[:2].any()
    assert all(found)


def test_mixed_pixels_next_to_a_nearer_instance_are_dropped():
    """A can stands in front of a block. The block's mask pixels next to the can read depths between the two
    surfaces (ToF / stereo flying pixels). Lifted, they raise the block's top; the occlusion band drops them.
    The can, the occluder, lifts the same with and without the band, and so does a frame without mixing."""
    import cv2
    objects = [BoxObject("block", (0.0, 0.10), (0.12, 0.10, 0.06)), CylinderObject("can", (0.0, -0.02), 0.035, 0.15)]
    frame = render(objects, CameraPose())
    ids = dict(zip(frame.labels, frame.ids))
    block, can = frame.mask == ids["block"], frame.mask == ids["can"]
    ring = block & cv2.dilate(can.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert ring.sum() > 50
    nearest_can = cv2.erode(np.where(can, frame.depth, 9.0).astype(np.float32), np.ones((5, 5), np.uint8))
    mixed = frame.depth.copy()
    t = np.random.default_rng(0).uniform(0.0, 1.0, ring.sum())
    mixed[ring] = nearest_can[ring] + t * (frame.depth[ring] - nearest_can[ring])

    def boxes(depth, band):
        obs, _ = lift_instances(depth, frame.camera, frame.instances(), frame.gravity,
                                LiftingParams(occluded_band_px=band))
        return {o.label: (o, frame.truth(o.instance_id)) for o in obs}

    with_band, without = boxes(mixed, 2), boxes(mixed, 0)
    top_error = {name: {k: float(o.box_max[2] - t.visible_max_g[2]) for k, (o, t) in lifted.items()}
                 for name, lifted in (("with", with_band), ("without", without))}
    assert top_error["without"]["block"] > 0.006                 # the mixed pixels raise the top ...
    assert abs(top_error["with"]["block"]) < 0.002               # ... unless dropped
    for name in ("can",):
        np.testing.assert_allclose(with_band[name][0].box_max, without[name][0].box_max, atol=1e-9)
        np.testing.assert_allclose(with_band[name][0].box_min, without[name][0].box_min, atol=1e-9)
    clean_with, clean_without = boxes(frame.depth, 2), boxes(frame.depth, 0)
    for name in ("block", "can"):
        assert abs(clean_with[name][0].box_max[2] - clean_without[name][0].box_max[2]) < 0.002
