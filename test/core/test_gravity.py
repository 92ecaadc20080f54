"""Gravity: support-plane RANSAC, static poses and the per-frame estimator with smoothing and fallbacks."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity import (
    GravityEstimator,
    fit_support_plane,
    gravity_from_plane,
    gravity_from_static,
    highest_support,
)
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.sim.analytic import CameraPose, random_tabletop, render


def pitch_deg(up_c):
    """Downward pitch of the optical axis implied by an up vector in camera coordinates."""
    return float(np.degrees(np.arcsin(-up_c[2])))


def angle_deg(a, b):
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


@pytest.mark.parametrize("pitch, roll, noisy", [(20, 0, False), (35, 0, True), (50, 8, True), (35, -12, False)])
def test_estimator_recovers_a_known_pitch(pitch, roll, noisy):
    noise = dict(noise=DepthNoiseModel(), edge_holes=0.3, seed=pitch) if noisy else {}
    frame = render(random_tabletop(6, seed=3), CameraPose(height=0.7, pitch_deg=pitch, roll_deg=roll), **noise)
    g = GravityEstimator().update(frame.depth, frame.camera)
    assert g.source == "plane"
    assert abs(pitch_deg(g.up) - pitch) < 1.0
    assert angle_deg(g.up, frame.gravity.up) < 1.0                 # roll too
    assert abs(g.support_height - (-0.7)) < 0.01                   # the table is 0.7 m below the camera


@pytest.mark.parametrize("pitch", [15, 20])
def test_support_is_the_table_not_the_larger_floor(pitch):
    # Shallow views: two to three times as many floor pixels as table pixels; the table is the support.
    frame = render(random_tabletop(4, seed=1), CameraPose(height=0.7, pitch_deg=pitch))
    floor = np.isfinite(frame.depth) & ~frame.table_mask & (frame.mask == 0)
    assert floor.mean() > 2 * frame.table_mask.mean()
    g = GravityEstimator().update(frame.depth, frame.camera)
    assert abs(g.support_height - (-0.7)) < 0.01


def test_fit_support_plane_orients_the_normal_up_and_skips_walls(rng):
    # A large wall facing the camera (normal -z) and a smaller floor 0.5 m below it (normal -y, up).
    wall = np.column_stack([rng.uniform(-2, 2, 6000), rng.uniform(-1.0, 0.5, 6000), np.full(6000, 3.0)])
    floor = np.column_stack([rng.uniform(-1, 1, 2000), np.full(2000, 0.5), rng.uniform(0.5, 3.0, 2000)])
    pts = np.vstack([wall, floor]) + rng.normal(0.0, 0.002, (8000, 3))
    plane = fit_support_plane(pts)
    assert plane is not None
    assert angle_deg(plane.normal_c, [0.0, -1.0, 0.0]) < 1.0      # up, towards the camera's side
    assert abs(plane.offset - 0.5) < 0.005                        # the camera is 0.5 m above the floor
    assert plane.inlier_mask[6000:].mean() > 0.95 and plane.inlier_mask[:6000].mean() < 0.05
    g = gravity_from_plane(plane)
    assert g.source == "plane" and abs(g.support_height + 0.5) < 0.005
    assert fit_support_plane(wall) is None                        # no horizontal plane at all
    assert fit_support_plane(np.full((50, 3), np.nan)) is None



def test_a_wall_seen_by_a_pitched_camera_is_skipped_for_the_table_behind_its_dropouts(rng):
    # A ToF camera pitched 35 deg down over a dark table: most table returns are lost, the wall behind it
    # has more points. One orientation of the wall's normal lies 55 deg from a level camera's up (inside the
    # 75 deg tilt window), but the side facing the camera points down: it is not a support.
    theta = np.radians(35.0)
    axes = np.array([[1.0, 0.0, 0.0], [0.0, -np.sin(theta), -np.cos(theta)], [0.0, np.cos(theta), -np.sin(theta)]])
    table = np.column_stack([rng.uniform(-0.5, 0.5, 1500), rng.uniform(0.5, 1.3, 1500), np.full(1500, -0.6)])
    wall = np.column_stack([rng.uniform(-1.0, 1.0, 4000), np.full(4000, 1.6), rng.uniform(-0.6, 0.8, 4000)])
    pts = (np.vstack([table, wall]) + rng.normal(0.0, 0.002, (5500, 3))) @ axes.T   # world -> camera optical
    plane = fit_support_plane(pts, max_tilt_deg=75.0)
    assert plane is not None
    assert angle_deg(plane.normal_c, axes @ [0.0, 0.0, 1.0]) < 1.0   # world up, in the camera frame
    assert abs(plane.offset - 0.6) < 0.005
    assert plane.inlier_mask[:1500].mean() > 0.95

def test_highest_support_prefers_the_table_over_a_box_top_and_the_floor(rng):
    up = np.array([0.0, -1.0, 0.0])
    table = np.column_stack([rng.uniform(-0.5, 0.5, 3000), np.full(3000, 0.6), rng.uniform(0.5, 1.5, 3000)])
    floor = np.column_stack([rng.uniform(-2, 2, 8000), np.full(8000, 1.4), rng.uniform(1.0, 4.0, 8000)])
    box_top = np.column_stack([rng.uniform(0, 0.1, 300), np.full(300, 0.4), rng.uniform(0.8, 0.9, 300)])
    h = highest_support(np.vstack([table, floor, box_top]), up)
    assert abs(h - (-0.6)) < 0.002


def test_static_pose_from_quaternion_or_matrix():
    pose = CameraPose(height=0.7, pitch_deg=40, roll_deg=5, yaw_deg=30)
    truth = render([], pose).gravity
    R_wc = pose.rotation()
    for orientation in (Rotation.from_matrix(R_wc).as_quat(), R_wc):
        g = gravity_from_static(orientation, support_height=-0.7)
        assert g.source == "static" and g.support_height == -0.7
        np.testing.assert_allclose(g.rotation, truth.rotation, atol=1e-9)
    with pytest.raises(InputError, match="quaternion"):
        gravity_from_static([0.0, 0.0, 0.0, 0.0])
    with pytest.raises(InputError, match="shape"):
        gravity_from_static([1.0, 2.0, 3.0])


def plane_depth(camera, pitch_deg: float, height: float = 0.7) -> np.ndarray:
    """Depth image (metres, NaN where the ray misses) of an endless horizontal plane ``height`` below a level-
    rolled camera pitched ``pitch_deg`` down."""
    up = np.array([0.0, -np.cos(np.radians(pitch_deg)), -np.sin(np.radians(pitch_deg))])
    rx, ry = camera.ray_grid()
    denom = rx * up[0] + ry * up[1] + up[2]                     # up . ray (ray z = 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(denom < -1e-6, -height / denom, np.nan)
    return z.astype(np.float32)


def test_estimator_follows_a_turning_camera():
    """One frame's fit is good to ~0.2 deg, so a new fit weighs ~0.92 (variance fusion with the defaults:
    plane_sigma 0.3 deg, motion_sigma 1 deg per frame), not the old fixed 0.3 that lagged behind a moving
    camera; a static camera (small motion_sigma) averages more; smoothing is a floor on the weight."""
    frames = {p: render(random_tabletop(4, seed=5), CameraPose(height=0.7, pitch_deg=p)) for p in (35, 37)}

    def second_pitch(**kw):
        est = GravityEstimator(**kw)
        est.update(frames[35].depth, frames[35].camera)
        return pitch_deg(est.update(frames[37].depth, frames[37].camera).up)

    assert abs(second_pitch() - (35 + 0.92 * 2)) < 0.1
    assert abs(second_pitch(motion_sigma_deg=0.05) - (35 + 0.51 * 2)) < 0.1
    assert abs(second_pitch(motion_sigma_deg=0.05, smoothing=0.8) - (35 + 0.8 * 2)) < 0.1
    assert abs(second_pitch(smoothing=1.0) - 37) < 0.1


def test_a_moved_camera_is_taken_at_once():
    """An 18 deg jump of the fitted up whose table the old up no longer explains (the camera was re-placed)
    is taken in the same frame; the old estimator held the old up for two frames."""
    frames = {p: render(random_tabletop(4, seed=5), CameraPose(height=0.7, pitch_deg=p)) for p in (35, 55)}
    est = GravityEstimator(max_jump_deg=10.0, jump_confirm_frames=3)
    est.update(frames[35].depth, frames[35].camera)
    g = est.update(frames[55].depth, frames[55].camera)
    assert abs(pitch_deg(g.up) - 55) < 0.3 and "jumped" not in est.status


def test_a_wrong_plane_is_held_while_the_current_up_still_fits():
    """A frame whose largest plane (60 % of the pixels) is tilted 20 deg while the rest still lies on the
    table of the current up: the fit is an outlier, held until it repeats jump_confirm_frames times."""
    camera = render([], CameraPose()).camera
    table, slope = plane_depth(camera, 35.0), plane_depth(camera, 55.0)
    mixed = table.copy()
    mixed[: int(0.6 * table.shape[0])] = slope[: int(0.6 * table.shape[0])]
    est = GravityEstimator(max_jump_deg=10.0, jump_confirm_frames=3)
    assert abs(pitch_deg(est.update(table, camera).up) - 35) < 0.1
    for _ in range(2):
        g = est.update(mixed, camera)
        assert abs(pitch_deg(g.up) - 35) < 0.1 and "still fits" in est.status
    g = est.update(mixed, camera)                                   # it persisted: taken
    assert abs(pitch_deg(g.up) - 55) < 0.5


def test_reset_forgets_the_estimate():
    frames = {p: render(random_tabletop(4, seed=5), CameraPose(height=0.7, pitch_deg=p)) for p in (35, 41)}
    est = GravityEstimator()
    est.update(frames[35].depth, frames[35].camera)
    est.reset()
    assert est.current is None and est.status == "no estimate yet"
    g = est.update(frames[41].depth, frames[41].camera)             # a 6 deg change: no blending after reset
    assert abs(pitch_deg(g.up) - 41) < 0.3


def test_estimator_falls_back_to_previous_then_default():
    good = render(random_tabletop(4, seed=2), CameraPose(height=0.7, pitch_deg=35))
    blind = np.full_like(good.depth, np.nan)
    est = GravityEstimator(max_hold_frames=2)
    g = est.update(blind, good.camera)                              # nothing yet: level camera
    assert g.source == "camera" and "level camera" in est.status
    est.update(good.depth, good.camera)
    for _ in range(2):                                              # held for max_hold_frames
        g = est.update(blind, good.camera)
        assert g.source == "plane" and "kept the previous" in est.status
        assert abs(pitch_deg(g.up) - 35) < 1.0
    g = est.update(blind, good.camera)
    assert g.source == "camera"
    static = GravityEstimator(static_orientation=Rotation.from_matrix(good.pose.rotation()).as_quat())
    g = static.update(blind, good.camera)                           # plane mode, static pose as fallback
    assert g.source == "static" and abs(pitch_deg(g.up) - 35) < 1e-6


def test_estimator_modes_and_bad_configuration():
    frame = render([], CameraPose(height=0.7, pitch_deg=35))
    assert GravityEstimator(mode="camera").update(frame.depth, frame.camera).source == "camera"
    q = Rotation.from_matrix(frame.pose.rotation()).as_quat()
    g = GravityEstimator(mode="static", static_orientation=tuple(q)).update(frame.depth, frame.camera)
    assert g.source == "static"
    with pytest.raises(InputError, match="static_orientation"):
        GravityEstimator(mode="static")
    with pytest.raises(InputError, match="unknown mode"):
        GravityEstimator(mode="imu")
    with pytest.raises(InputError, match="unknown setting"):
        GravityEstimator(smoothness=0.2)
    with pytest.raises(InputError, match="plane_sigma_deg"):
        GravityEstimator(plane_sigma_deg=0.0)
    with pytest.raises(InputError, match="decode_depth"):
        GravityEstimator().update((frame.depth * 1000).astype(np.uint16), frame.camera)
    with pytest.raises(InputError, match=r"depth image: expected 640x480 \(camera_info\), got 640x100"):
        GravityEstimator().update(frame.depth[:100], frame.camera)
    with pytest.raises(InputError, match=r"gravity exclude mask: expected 640x480 \(camera_info\), got 10x10"):
        GravityEstimator().update(frame.depth, frame.camera, exclude_mask=np.zeros((10, 10), bool))
